#include "catch_compat.hpp"

#include "common/extension_version.hpp"

using durable::ExtensionVersion;
using durable::parse_extension_version;

TEST_CASE("extension versions parse as <major>.<minor> and compare numerically", "[version]") {
    CHECK(parse_extension_version("1.0") == std::optional<ExtensionVersion>(ExtensionVersion{1, 0}));
    CHECK(parse_extension_version("1.1") == std::optional<ExtensionVersion>(ExtensionVersion{1, 1}));
    CHECK(parse_extension_version("2.10") == std::optional<ExtensionVersion>(ExtensionVersion{2, 10}));
    CHECK(ExtensionVersion{1, 9} < ExtensionVersion{1, 10});
    CHECK(ExtensionVersion{1, 10} < ExtensionVersion{2, 0});
    CHECK(ExtensionVersion{1, 1} >= durable::kOldestExtensionVersion);
    CHECK(durable::to_string(durable::kExtensionVersion) == "1.1");
    // The daemon's range is the build's (CMakeLists.txt, sql/pg_durable.control).
    CHECK(durable::to_string(durable::kExtensionVersion) == PGD_EXTENSION_VERSION);
    CHECK(durable::to_string(durable::kOldestExtensionVersion) == PGD_PREVIOUS_EXTENSION_VERSION);
    for (const char *bad : {"", "1", "1.", ".1", "1.1.1", "a.b", "-1.0", "+1.0", "1.0 ", "1234567.0", "1,0"})
        CHECK_FALSE(parse_extension_version(bad));
}
