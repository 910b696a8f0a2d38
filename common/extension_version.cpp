#include "common/extension_version.hpp"

namespace durable {

namespace {

std::optional<int> parse_number(std::string_view digits) {
    if (digits.empty() || digits.size() > 6) return std::nullopt;
    int value = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + (c - '0');
    }
    return value;
}

}  // namespace

std::optional<ExtensionVersion> parse_extension_version(std::string_view text) {
    const auto dot = text.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const auto major = parse_number(text.substr(0, dot));
    const auto minor = parse_number(text.substr(dot + 1));
    if (!major || !minor) return std::nullopt;
    return ExtensionVersion{*major, *minor};
}

std::string to_string(ExtensionVersion version) {
    return std::to_string(version.major) + "." + std::to_string(version.minor);
}

}  // namespace durable
