// JsonText: a strict RFC 8259 validator and a read-only view over the text.
#include "common/json_text.hpp"

#include <cstdint>

namespace durable {

// ===========================================================================
// JsonText: validation
// ===========================================================================

namespace {

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Strict RFC 8259 validator. Iterative: containers are tracked on an explicit
// stack so nesting depth is bounded by memory, not by the call stack.
class JsonValidator {
public:
    explicit JsonValidator(std::string_view text) : text_(text) {}

    bool valid() {
        std::vector<char> open;  // '[' or '{' per enclosing container
        skip_space();
        while (true) {
            // A value is expected here.
            const char c = peek();
            bool value_done = false;
            if (c == '{' || c == '[') {
                ++pos_;
                skip_space();
                const char close = c == '{' ? '}' : ']';
                if (peek() == close) {
                    ++pos_;
                    value_done = true;
                } else {
                    open.push_back(c);
                    if (c == '{' && !member_key()) return false;
                }
            } else {
                if (!scalar()) return false;
                value_done = true;
            }
            if (!value_done) continue;

            // After a value: close containers until one continues with ','.
            while (true) {
                skip_space();
                if (open.empty()) return pos_ == text_.size();
                const char container = open.back();
                if (peek() == ',') {
                    ++pos_;
                    skip_space();
                    if (container == '{' && !member_key()) return false;
                    break;
                }
                if (peek() != (container == '{' ? '}' : ']')) return false;
                ++pos_;
                open.pop_back();
            }
        }
    }

private:
    // The next byte, or NUL at the end: NUL is invalid everywhere in JSON
    // text outside strings (and raw inside them), so it safely means "stop".
    char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
    unsigned char byte_at(std::size_t i) const {
        return i < text_.size() ? static_cast<unsigned char>(text_[i]) : 0;
    }
    void skip_space() {
        while (pos_ < text_.size() && is_json_space(text_[pos_])) ++pos_;
    }

    // `"key" :` with the whitespace after the colon skipped.
    bool member_key() {
        if (peek() != '"' || !string()) return false;
        skip_space();
        if (peek() != ':') return false;
        ++pos_;
        skip_space();
        return true;
    }

    bool scalar() {
        const char c = peek();
        if (c == '"') return string();
        if (c == '-' || is_digit(c)) return number();
        return literal("true") || literal("false") || literal("null");
    }

    bool literal(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    bool number() {
        if (peek() == '-') ++pos_;
        if (peek() == '0') {
            ++pos_;
        } else if (!digits()) {
            return false;
        }
        if (peek() == '.') {
            ++pos_;
            if (!digits()) return false;
        }
        if (peek() == 'e' || peek() == 'E') {
            ++pos_;
            if (peek() == '+' || peek() == '-') ++pos_;
            if (!digits()) return false;
        }
        return true;
    }

    bool digits() {
        const std::size_t start = pos_;
        while (is_digit(peek())) ++pos_;
        return pos_ > start;
    }

    bool string() {
        ++pos_;  // opening quote
        while (true) {
            if (pos_ >= text_.size()) return false;
            const auto c = static_cast<unsigned char>(text_[pos_]);
            if (c == '"') {
                ++pos_;
                return true;
            }
            if (c < 0x20) return false;
            if (c == '\\') {
                if (!escape()) return false;
            } else if (c >= 0x80) {
                if (!utf8_sequence()) return false;
            } else {
                ++pos_;
            }
        }
    }

    bool escape() {
        const char kind = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
        if (kind != '\0' && std::string_view("\"\\/bfnrt").find(kind) != std::string_view::npos) {
            pos_ += 2;
            return true;
        }
        if (kind != 'u') return false;
        const long unit = code_unit(pos_ + 2);
        if (unit < 0) return false;
        pos_ += 6;
        if (unit >= 0xDC00 && unit <= 0xDFFF) return false;  // lone low surrogate
        if (unit >= 0xD800 && unit <= 0xDBFF) {             // needs its low half
            if (text_.substr(pos_, 2) != "\\u") return false;
            const long low = code_unit(pos_ + 2);
            if (low < 0xDC00 || low > 0xDFFF) return false;
            pos_ += 6;
        }
        return true;
    }

    // The four hex digits at `at` as a number, or -1.
    long code_unit(std::size_t at) const {
        if (at + 4 > text_.size()) return -1;
        long unit = 0;
        for (std::size_t i = at; i < at + 4; ++i) {
            const int h = hex_value(text_[i]);
            if (h < 0) return -1;
            unit = unit * 16 + h;
        }
        return unit;
    }

    // One well-formed UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF).
    bool utf8_sequence() {
        const unsigned char lead = byte_at(pos_);
        int continuation = 0;
        unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
        if (lead >= 0xC2 && lead <= 0xDF) {
            continuation = 1;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            continuation = 2;
            if (lead == 0xE0) low = 0xA0;
            if (lead == 0xED) high = 0x9F;
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            continuation = 3;
            if (lead == 0xF0) low = 0x90;
            if (lead == 0xF4) high = 0x8F;
        } else {
            return false;
        }
        for (int i = 1; i <= continuation; ++i) {
            const unsigned char b = byte_at(pos_ + i);
            const unsigned char min = i == 1 ? low : 0x80;
            const unsigned char max = i == 1 ? high : 0xBF;
            if (b < min || b > max) return false;
        }
        pos_ += 1 + continuation;
        return true;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

// ===========================================================================
// JsonText: walking validated text. Bounds hold because the text is valid:
// every string has its closing quote, every container its closing bracket.
// ===========================================================================

std::size_t skip_space(std::string_view s, std::size_t pos) {
    while (pos < s.size() && is_json_space(s[pos])) ++pos;
    return pos;
}

// One past the closing quote of the string that starts at `pos`.
std::size_t string_end(std::string_view s, std::size_t pos) {
    ++pos;
    while (s[pos] != '"') pos += s[pos] == '\\' ? 2 : 1;
    return pos + 1;
}

// One past the end of the value that starts at `pos`.
std::size_t value_end(std::string_view s, std::size_t pos) {
    const char first = s[pos];
    if (first == '"') return string_end(s, pos);
    if (first == '{' || first == '[') {
        std::size_t depth = 0;
        while (true) {
            const char c = s[pos];
            if (c == '"') {
                pos = string_end(s, pos);
                continue;
            }
            if (c == '{' || c == '[') {
                ++depth;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                return pos + 1;
            }
            ++pos;
        }
    }
    while (pos < s.size() && !is_json_space(s[pos]) && s[pos] != ',' && s[pos] != ']' &&
           s[pos] != '}') {
        ++pos;
    }
    return pos;
}

// Calls visit(element) for each element of the array `s`.
template <class Visit>
void for_each_element(std::string_view s, Visit &&visit) {
    std::size_t pos = skip_space(s, 1);
    if (s[pos] == ']') return;
    while (true) {
        const std::size_t end = value_end(s, pos);
        visit(s.substr(pos, end - pos));
        pos = skip_space(s, end);
        if (s[pos] == ']') return;
        pos = skip_space(s, pos + 1);  // past ','
    }
}

// Calls visit(quoted_key, value) for each member of the object `s`.
template <class Visit>
void for_each_member(std::string_view s, Visit &&visit) {
    std::size_t pos = skip_space(s, 1);
    if (s[pos] == '}') return;
    while (true) {
        const std::size_t key_end = string_end(s, pos);
        const std::string_view key = s.substr(pos, key_end - pos);
        pos = skip_space(s, skip_space(s, key_end) + 1);  // past ':'
        const std::size_t end = value_end(s, pos);
        visit(key, s.substr(pos, end - pos));
        pos = skip_space(s, end);
        if (s[pos] == '}') return;
        pos = skip_space(s, pos + 1);  // past ','
    }
}

void append_utf8(std::string &out, std::uint32_t code_point) {
    if (code_point < 0x80) {
        out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
        out += static_cast<char>(0xC0 | (code_point >> 6));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else if (code_point < 0x10000) {
        out += static_cast<char>(0xE0 | (code_point >> 12));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (code_point >> 18));
        out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
}

std::uint32_t read_code_unit(std::string_view s, std::size_t at) {
    std::uint32_t unit = 0;
    for (std::size_t i = at; i < at + 4; ++i) unit = unit * 16 + static_cast<std::uint32_t>(hex_value(s[i]));
    return unit;
}

// The characters of the validated, quoted JSON string `quoted`.
std::string decode_string(std::string_view quoted) {
    const std::string_view body = quoted.substr(1, quoted.size() - 2);
    if (body.find('\\') == std::string_view::npos) return std::string(body);
    std::string out;
    out.reserve(body.size());
    for (std::size_t i = 0; i < body.size(); ++i) {
        if (body[i] != '\\') {
            out += body[i];
            continue;
        }
        const char kind = body[++i];
        switch (kind) {
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                std::uint32_t code_point = read_code_unit(body, i + 1);
                i += 4;
                if (code_point >= 0xD800 && code_point <= 0xDBFF) {  // validated: a low half follows
                    const std::uint32_t low = read_code_unit(body, i + 3);
                    code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
                    i += 6;
                }
                append_utf8(out, code_point);
                break;
            }
            default: out += kind; break;  // " \ /
        }
    }
    return out;
}

// Whether the validated, quoted JSON string `quoted` spells `key`.
bool key_equals(std::string_view quoted, std::string_view key) {
    const std::string_view body = quoted.substr(1, quoted.size() - 2);
    if (body.find('\\') == std::string_view::npos) return body == key;
    return decode_string(quoted) == key;
}

}  // namespace

std::optional<JsonText> JsonText::parse(std::string_view text) {
    if (!JsonValidator(text).valid()) return std::nullopt;
    const std::size_t begin = skip_space(text, 0);
    std::size_t end = text.size();
    while (end > begin && is_json_space(text[end - 1])) --end;
    return JsonText(text.substr(begin, end - begin));
}

JsonText::Kind JsonText::kind() const noexcept {
    switch (text_.front()) {
        case 'n': return Kind::Null;
        case 't':
        case 'f': return Kind::Boolean;
        case '"': return Kind::String;
        case '[': return Kind::Array;
        case '{': return Kind::Object;
        default: return Kind::Number;
    }
}

bool JsonText::boolean() const noexcept { return text_ == "true"; }

bool JsonText::number_is_zero() const noexcept {
    if (kind() != Kind::Number) return false;
    for (const char c : text_) {
        if (c == 'e' || c == 'E') break;  // the exponent cannot make zero non-zero
        if (c >= '1' && c <= '9') return false;
    }
    return true;
}

std::string JsonText::string() const {
    return kind() == Kind::String ? decode_string(text_) : std::string();
}

std::vector<JsonText> JsonText::elements() const {
    std::vector<JsonText> out;
    if (kind() == Kind::Array) {
        for_each_element(text_, [&](std::string_view element) { out.push_back(JsonText(element)); });
    }
    return out;
}

std::vector<JsonText::Member> JsonText::members() const {
    std::vector<Member> out;
    if (kind() == Kind::Object) {
        for_each_member(text_, [&](std::string_view key, std::string_view value) {
            out.emplace_back(decode_string(key), JsonText(value));
        });
    }
    return out;
}

std::optional<JsonText> JsonText::member(std::string_view key) const {
    std::optional<JsonText> found;
    if (kind() == Kind::Object) {
        for_each_member(text_, [&](std::string_view quoted_key, std::string_view value) {
            if (key_equals(quoted_key, key)) found = JsonText(value);  // last one wins
        });
    }
    return found;
}

std::optional<JsonText> JsonText::rows() const {
    std::optional<JsonText> rows = member("rows");
    if (rows && rows->kind() == Kind::Array) return rows;
    return std::nullopt;
}

}  // namespace durable
