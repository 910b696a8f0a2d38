// Versions of the SQL extension (pg_extension.extversion; docs/ARCHITECTURE.md
// "Extension versions"). One build of the library and the daemon serves every
// schema version from kOldestExtensionVersion to kExtensionVersion: a database
// keeps its schema until ALTER EXTENSION pg_durable UPDATE, so the daemon
// gates what needs newer objects on the version it finds.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace durable {

struct ExtensionVersion {
    int major = 0;
    int minor = 0;

    friend bool operator==(ExtensionVersion a, ExtensionVersion b) {
        return a.major == b.major && a.minor == b.minor;
    }
    friend bool operator!=(ExtensionVersion a, ExtensionVersion b) { return !(a == b); }
    friend bool operator<(ExtensionVersion a, ExtensionVersion b) {
        return a.major != b.major ? a.major < b.major : a.minor < b.minor;
    }
    friend bool operator>=(ExtensionVersion a, ExtensionVersion b) { return !(a < b); }
};

// The schema this build creates (default_version) and the oldest it serves.
inline constexpr ExtensionVersion kExtensionVersion{1, 1};
inline constexpr ExtensionVersion kOldestExtensionVersion{1, 0};

// "<major>.<minor>" with decimal numbers (no sign, no leading '+', at most 6
// digits each); nullopt for anything else.
std::optional<ExtensionVersion> parse_extension_version(std::string_view text);
std::string to_string(ExtensionVersion version);

}  // namespace durable
