// Shared by the fuzz targets: the input as text, and the one rule they all
// enforce: a function documented to throw durable::UserError (GraphError,
// NotAGraphError) may do so; any other exception escapes the target, and
// libFuzzer reports it as a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"

namespace pgd::fuzz {

inline std::string text_of(const std::uint8_t *data, std::size_t size) {
    return std::string(reinterpret_cast<const char *>(data), size);
}

// The input cut at NUL bytes: several fields from one input.
inline std::vector<std::string> fields_of(std::string_view input, std::size_t max_fields) {
    std::vector<std::string> fields;
    while (fields.size() + 1 < max_fields) {
        const auto nul = input.find('\0');
        if (nul == std::string_view::npos) break;
        fields.emplace_back(input.substr(0, nul));
        input.remove_prefix(nul + 1);
    }
    fields.emplace_back(input);
    return fields;
}

// Whether `bytes` is valid UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF) without NUL, as PostgreSQL text takes it.
inline bool valid_utf8_text(std::string_view bytes) {
    for (std::size_t i = 0; i < bytes.size();) {
        const unsigned char c = static_cast<unsigned char>(bytes[i]);
        std::size_t n = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
        if (c == 0) return false;
        if (c < 0x80) n = 1;
        else if (c >= 0xC2 && c <= 0xDF) n = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return false;
        if (i + n > bytes.size()) return false;
        for (std::size_t k = 1; k < n; ++k) {
            const unsigned char b = static_cast<unsigned char>(bytes[i + k]);
            if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return false;
        }
        i += n;
    }
    return true;
}

// Runs `body`; a UserError is an accepted answer to hostile input.
template <typename Body>
void allowing_user_errors(Body &&body) {
    try {
        body();
    } catch (const durable::UserError &) {
    }
}

// A property the target checks; failing it is a finding.
inline void require(bool condition) {
    if (!condition) __builtin_trap();
}

}  // namespace pgd::fuzz
