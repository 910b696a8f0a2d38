// Substitution (SPEC §11).
#include "common/substitute.hpp"

#include <algorithm>
#include <cstdint>

#include "common/errors.hpp"
#include "common/limits.hpp"

namespace durable {

// ===========================================================================
// Substitution
// ===========================================================================

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
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
