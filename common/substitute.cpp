// Substitution (SPEC §11) and the JsonText view it reads results through.
#include "common/substitute.hpp"

#include <algorithm>
#include <cstdint>

#include "common/errors.hpp"
#include "common/limits.hpp"

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

// ===========================================================================
// Substitution
// ===========================================================================

namespace {

bool is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }

// Length of the identifier starting at `pos` (0 when there is none).
std::size_t identifier_length(std::string_view s, std::size_t pos) {
    if (pos >= s.size() || !is_ident_start(s[pos])) return 0;
    std::size_t end = pos + 1;
    while (end < s.size() && is_ident_char(s[end])) ++end;
    return end - pos;
}

// --- Pass 1: braces ---------------------------------------------------------

std::optional<std::string_view> brace_value(std::string_view name, const SubstitutionContext &ctx) {
    if (name == "sys_instance_id") return std::string_view(ctx.instance_id);
    if (name == "sys_label") return ctx.label ? std::string_view(*ctx.label) : std::string_view();
    if (ctx.vars) {
        const auto var = ctx.vars->find(std::string(name));
        if (var != ctx.vars->end()) return std::string_view(var->second);
    }
    return std::nullopt;
}

std::string substitute_braces(std::string_view text, const SubstitutionContext &ctx) {
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0;
    while (true) {
        const std::size_t open = text.find('{', pos);
        out.append(text.substr(pos, open - pos));
        if (open == std::string_view::npos) return out;
        const std::size_t length = identifier_length(text, open + 1);
        const std::size_t close = open + 1 + length;
        if (length > 0 && close < text.size() && text[close] == '}') {
            if (const auto value = brace_value(text.substr(open + 1, length), ctx)) {
                out.append(*value);
                pos = close + 1;
                continue;
            }
        }
        out += '{';  // not a substitution: keep it, and rescan from the next byte
        pos = open + 1;
    }
}

// --- Rendering ----------------------------------------------------------------

std::string quoted(std::string_view text, char quote) {
    std::string out;
    out.reserve(text.size() + 2);
    out += quote;
    for (const char c : text) {
        if (c == quote) out += quote;
        out += c;
    }
    out += quote;
    return out;
}

std::string sql_literal(std::string_view text) { return quoted(text, '\''); }
std::string sql_identifier(std::string_view name) { return quoted(name, '"'); }

// A non-null value for `$name` or `$name.col`.
std::string render_value(const JsonText &value, SubstitutionMode mode) {
    const bool sql = mode == SubstitutionMode::Sql;
    switch (value.kind()) {
        case JsonText::Kind::String: return sql ? sql_literal(value.string()) : value.string();
        case JsonText::Kind::Array:
        case JsonText::Kind::Object: return sql ? sql_literal(value.text()) : std::string(value.text());
        case JsonText::Kind::Null: return "NULL";
        case JsonText::Kind::Number:
        case JsonText::Kind::Boolean: break;
    }
    return std::string(value.text());
}

// One value inside the VALUES list of `$name.*`: text-like values are cast so
// every row agrees on the column type.
std::string render_row_set_value(const JsonText &value) {
    switch (value.kind()) {
        case JsonText::Kind::String: return sql_literal(value.string()) + "::text";
        case JsonText::Kind::Array:
        case JsonText::Kind::Object: return sql_literal(value.text()) + "::text";
        case JsonText::Kind::Null: return "NULL";
        case JsonText::Kind::Number:
        case JsonText::Kind::Boolean: break;
    }
    return std::string(value.text());
}

// A result used whole: no rows, or not JSON at all.
std::string render_whole(std::string_view stored, SubstitutionMode mode) {
    return mode == SubstitutionMode::Sql ? sql_literal(stored) : std::string(stored);
}

std::string join(const std::vector<std::string> &parts, std::string_view separator) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i > 0) out.append(separator);
        out.append(parts[i]);
    }
    return out;
}

// --- Pass 2: `$` references ---------------------------------------------------

enum class ReferenceForm { RowSet, Field, FirstColumn };

// One `$...` reference found in the text, naming a known result.
struct Reference {
    std::string_view name;
    std::string_view stored;  // the result's stored JSON text
    ReferenceForm form = ReferenceForm::FirstColumn;
    std::string_view column;  // Field only
    bool null_safe = false;   // trailing `?`
    std::size_t end = 0;      // one past the reference in the scanned text
};

// The reference starting with the `$` at `dollar`, or nullopt when the
// identifier after it names no result (the `$` is then ordinary text).
std::optional<Reference> read_reference(std::string_view s, std::size_t dollar,
                                        const std::map<std::string, std::string> &results) {
    const std::size_t name_begin = dollar + 1;
    const std::size_t name_length = identifier_length(s, name_begin);
    if (name_length == 0) return std::nullopt;
    const auto result = results.find(std::string(s.substr(name_begin, name_length)));
    if (result == results.end()) return std::nullopt;

    Reference ref;
    ref.name = result->first;
    ref.stored = result->second;
    std::size_t pos = name_begin + name_length;
    if (s.substr(pos, 2) == ".*") {
        ref.form = ReferenceForm::RowSet;
        ref.end = pos + 2;
        return ref;
    }
    if (pos < s.size() && s[pos] == '.') {
        if (const std::size_t column_length = identifier_length(s, pos + 1)) {
            ref.form = ReferenceForm::Field;
            ref.column = s.substr(pos + 1, column_length);
            pos += 1 + column_length;
        }
    }
    if (pos < s.size() && s[pos] == '?') {
        ref.null_safe = true;
        ++pos;
    }
    ref.end = pos;
    return ref;
}

UserError substitution_error(const std::string &message) {
    return UserError(message, sqlstate::kDataException);
}

std::string dollar(std::string_view name) { return "$" + std::string(name); }

std::string field_reference(const Reference &ref) {
    return dollar(ref.name) + "." + std::string(ref.column);
}

UserError no_rows_error(const Reference &ref) {
    return substitution_error(dollar(ref.name) + " has no rows — query returned zero results");
}

std::string available_fields(const JsonText &object) {
    std::vector<std::string> keys;
    for (auto &member : object.members()) keys.push_back(std::move(member.first));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return join(keys, ", ");
}

// Resolves references against the named results, parsing each stored result
// at most once per substitution.
class ResultResolver {
public:
    explicit ResultResolver(SubstitutionMode mode) : mode_(mode) {}

    // The replacement text, or nullopt to leave the reference verbatim.
    std::optional<std::string> resolve(const Reference &ref) {
        switch (ref.form) {
            case ReferenceForm::RowSet: return expand_row_set(ref);
            case ReferenceForm::Field: return field(ref);
            case ReferenceForm::FirstColumn: return first_column(ref);
        }
        return std::nullopt;
    }

private:
    const std::optional<JsonText> &parsed(const Reference &ref) {
        auto cached = cache_.find(ref.name);
        if (cached == cache_.end()) cached = cache_.emplace(ref.name, JsonText::parse(ref.stored)).first;
        return cached->second;
    }

    std::string expand_row_set(const Reference &ref) {
        const auto &result = parsed(ref);
        const auto rows = result ? result->rows() : std::nullopt;
        const auto invalid = [&] {
            return substitution_error(dollar(ref.name) + ".* — invalid result format");
        };
        if (!rows) throw invalid();
        const std::vector<JsonText> row_list = rows->elements();
        if (row_list.size() > limits::kMaxRowSetRows) {
            throw UserError(dollar(ref.name) + ".* — result has " + std::to_string(row_list.size()) +
                                " rows, exceeding the maximum of " + std::to_string(limits::kMaxRowSetRows) +
                                " for row-set expansion. Use pagination or intermediate tables for large "
                                "result sets.",
                            sqlstate::kProgramLimitExceeded);
        }
        if (mode_ == SubstitutionMode::Raw) return std::string(rows->text());
        if (row_list.empty()) return "(SELECT NULL WHERE false) AS " + sql_identifier(ref.name);

        if (!row_list.front().is_object()) throw invalid();
        std::vector<std::string> columns;
        for (auto &member : row_list.front().members()) columns.push_back(std::move(member.first));

        std::vector<std::string> tuples;
        tuples.reserve(row_list.size());
        for (const JsonText &row : row_list) {
            if (!row.is_object()) throw invalid();
            tuples.push_back("(" + join(row_values(row, columns), ",") + ")");
        }
        std::vector<std::string> quoted_columns;
        for (const auto &column : columns) quoted_columns.push_back(sql_identifier(column));
        return "(VALUES " + join(tuples, ", ") + ") AS " + sql_identifier(ref.name) + "(" +
               join(quoted_columns, ", ") + ")";
    }

    // The row's values in the order of `columns`: positional when the row has
    // exactly those columns (as every row of a SQL result does, duplicate
    // names included), else by name with a missing column as NULL.
    static std::vector<std::string> row_values(const JsonText &row, const std::vector<std::string> &columns) {
        const std::vector<JsonText::Member> members = row.members();
        const auto same_name = [](const JsonText::Member &member, const std::string &column) {
            return member.first == column;
        };
        const bool same_columns = members.size() == columns.size() &&
                                  std::equal(members.begin(), members.end(), columns.begin(), same_name);
        std::vector<std::string> values;
        values.reserve(columns.size());
        for (std::size_t i = 0; i < columns.size(); ++i) {
            if (same_columns) {
                values.push_back(render_row_set_value(members[i].second));
            } else {
                const auto value = row.member(columns[i]);
                values.push_back(value ? render_row_set_value(*value) : "NULL");
            }
        }
        return values;
    }

    std::optional<std::string> field(const Reference &ref) {
        const auto &result = parsed(ref);
        if (!result) throw neither_error(ref);
        std::optional<JsonText> fields;
        if (const auto rows = result->rows()) {
            const std::vector<JsonText> row_list = rows->elements();
            if (row_list.empty()) {
                if (ref.null_safe) return "NULL";
                throw no_rows_error(ref);
            }
            if (!row_list.front().is_object()) {
                throw substitution_error(field_reference(ref) + ": first row is not a JSON object");
            }
            fields = row_list.front();
        } else if (result->is_object()) {
            fields = result;
        } else {
            throw neither_error(ref);
        }

        const auto value = fields->member(ref.column);
        if (!value) {
            if (mode_ == SubstitutionMode::Sql) return std::nullopt;  // PostgreSQL reports it
            throw substitution_error(field_reference(ref) + ": result has no field '" +
                                     std::string(ref.column) + "' (available: " + available_fields(*fields) +
                                     ")");
        }
        if (value->is_null()) {
            if (ref.null_safe) return "NULL";
            throw substitution_error(field_reference(ref) + " is NULL");
        }
        return render_value(*value, mode_);
    }

    static UserError neither_error(const Reference &ref) {
        return substitution_error(field_reference(ref) + ": result is neither a row set nor a JSON object");
    }

    std::string first_column(const Reference &ref) {
        const auto &result = parsed(ref);
        const auto rows = result ? result->rows() : std::nullopt;
        if (!rows) return render_whole(ref.stored, mode_);
        const std::vector<JsonText> row_list = rows->elements();
        if (row_list.empty()) {
            if (ref.null_safe) return "NULL";
            throw no_rows_error(ref);
        }
        const JsonText &row = row_list.front();
        if (!row.is_object()) throw substitution_error(dollar(ref.name) + ": first row is not a JSON object");
        const std::vector<JsonText::Member> columns = row.members();
        if (columns.empty()) throw substitution_error(dollar(ref.name) + ": first row has no columns");
        const JsonText &value = columns.front().second;
        if (value.is_null()) {
            if (ref.null_safe) return "NULL";
            throw substitution_error(dollar(ref.name) + " is NULL — first column of first row is NULL");
        }
        return render_value(value, mode_);
    }

    SubstitutionMode mode_;
    std::map<std::string_view, std::optional<JsonText>> cache_;
};

// Appends a replacement. In SQL, `-` followed by a negative number would
// start a `--` comment, so the two are kept apart by a space.
void append_replacement(std::string &out, const std::string &replacement, SubstitutionMode mode) {
    if (mode == SubstitutionMode::Sql && !out.empty() && out.back() == '-' && !replacement.empty() &&
        replacement.front() == '-') {
        out += ' ';
    }
    out.append(replacement);
}

std::string substitute_results(std::string_view text, const std::map<std::string, std::string> &results,
                               SubstitutionMode mode) {
    ResultResolver resolver(mode);
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0;
    while (true) {
        const std::size_t dollar_pos = text.find('$', pos);
        out.append(text.substr(pos, dollar_pos - pos));
        if (dollar_pos == std::string_view::npos) return out;
        const auto ref = read_reference(text, dollar_pos, results);
        if (!ref) {
            out += '$';
            pos = dollar_pos + 1;
            continue;
        }
        if (const auto replacement = resolver.resolve(*ref)) {
            append_replacement(out, *replacement, mode);
        } else {
            out.append(text.substr(dollar_pos, ref->end - dollar_pos));
        }
        pos = ref->end;
    }
}

}  // namespace

std::string substitute(std::string_view text, const SubstitutionContext &ctx, SubstitutionMode mode) {
    std::string braced = substitute_braces(text, ctx);
    if (!ctx.results || ctx.results->empty()) return braced;
    return substitute_results(braced, *ctx.results, mode);
}

}  // namespace durable
