// Condition truthiness (SPEC §12).
#include "common/truthiness.hpp"

#include <initializer_list>
#include <optional>
#include <vector>

#include "common/substitute.hpp"

namespace durable {

namespace {

bool is_ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_ascii_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ascii_space(s.back())) s.remove_suffix(1);
    return s;
}

bool equals_ignoring_case(std::string_view s, std::string_view lower_word) {
    if (s.size() != lower_word.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
        if (c != lower_word[i]) return false;
    }
    return true;
}

bool is_any_of(std::string_view s, std::initializer_list<std::string_view> words) {
    for (const auto word : words) {
        if (equals_ignoring_case(s, word)) return true;
    }
    return false;
}

// Whether `s` is a decimal number, [+-](digits[.digits] | .digits)[e[+-]digits],
// whose value is zero. Zero-ness is read off the mantissa's digits, so no
// precision or range limit applies.
bool is_numeric_zero(std::string_view s) {
    std::size_t pos = 0;
    if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
    std::size_t mantissa_digits = 0;
    bool nonzero = false;
    bool seen_point = false;
    for (; pos < s.size(); ++pos) {
        const char c = s[pos];
        if (is_digit(c)) {
            ++mantissa_digits;
            nonzero = nonzero || c != '0';
        } else if (c == '.' && !seen_point) {
            seen_point = true;
        } else {
            break;
        }
    }
    if (mantissa_digits == 0) return false;  // not numeric
    if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
        ++pos;
        if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
        const std::size_t exponent_start = pos;
        while (pos < s.size() && is_digit(s[pos])) ++pos;
        if (pos == exponent_start) return false;  // "1e" is not numeric
    }
    return pos == s.size() && !nonzero;
}

bool is_truthy_string(std::string_view s) {
    const std::string_view trimmed = trim(s);
    if (trimmed.empty()) return false;
    if (is_any_of(trimmed, {"true", "t", "yes"})) return true;
    if (is_any_of(trimmed, {"false", "f", "no"})) return false;
    return !is_numeric_zero(trimmed);  // numeric: non-zero; any other text: true
}

bool is_truthy_value(const JsonText &value) {
    switch (value.kind()) {
        case JsonText::Kind::Boolean: return value.boolean();
        case JsonText::Kind::Number: return !value.number_is_zero();
        case JsonText::Kind::Null: return false;
        case JsonText::Kind::Array: return !value.elements().empty();
        case JsonText::Kind::Object: return !value.members().empty();
        case JsonText::Kind::String: return is_truthy_string(value.string());
    }
    return false;
}

}  // namespace

bool is_truthy(std::string_view result_text) {
    const std::optional<JsonText> result = JsonText::parse(result_text);
    if (!result) return is_truthy_string(result_text);
    const std::optional<JsonText> rows = result->rows();
    if (!rows) return is_truthy_value(*result);

    const std::vector<JsonText> row_list = rows->elements();
    if (row_list.empty()) return false;
    const JsonText &first_row = row_list.front();
    if (!first_row.is_object()) return is_truthy_value(first_row);
    const std::vector<JsonText::Member> columns = first_row.members();
    if (columns.empty()) return true;  // a zero-column row still is a row
    return is_truthy_value(columns.front().second);
}

}  // namespace durable
