// JsonText, the read-only view of stored result JSON that substitution
// (substitute.hpp) and condition truthiness (truthiness.hpp) share.
//
// Pure C++: no PostgreSQL headers, no I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace durable {

// ---------------------------------------------------------------------------
// JsonText: a view of one valid JSON value, every part a slice of the source.
//
// Stored results carry details a JSON DOM loses (nlohmann::json included):
//  * rows keep the SELECT's column order and duplicate column names (§10.2);
//    `$name` means the first column in that order;
//  * numbers must reach SQL text exactly as PostgreSQL wrote them: 1.50 stays
//    1.50, 12345678901234567890 and 1e3 keep their digits, and a numeric far
//    beyond double range (which nlohmann rejects as "number overflow") is
//    still a number.
// So JsonText validates the text itself (RFC 8259, UTF-8, escapes, surrogate
// pairs) and then walks it lazily. The walk is iterative, so deeply nested
// input cannot exhaust the stack.
//
// Duplicate keys: members() keeps every pair in source order; member() returns
// the LAST pair with the key, which is what PostgreSQL's json functions
// ("the last value is considered the operative one") and jsonb do.
//
// A JsonText borrows the text it was parsed from: keep that string alive and
// unchanged while the view (or any view taken from it) is in use.
class JsonText {
public:
    enum class Kind { Null, Boolean, Number, String, Array, Object };
    using Member = std::pair<std::string, JsonText>;  // decoded key, value

    // The view of `text` when it is exactly one valid JSON value, optionally
    // surrounded by JSON whitespace; nullopt otherwise.
    static std::optional<JsonText> parse(std::string_view text);

    Kind kind() const noexcept;
    bool is_null() const noexcept { return kind() == Kind::Null; }
    bool is_object() const noexcept { return kind() == Kind::Object; }

    // The value's exact source text (no surrounding whitespace), e.g. `1.50`,
    // `"it's"` or `{"a": [1, 2]}`.
    std::string_view text() const noexcept { return text_; }

    // Boolean: its value. Other kinds: false.
    bool boolean() const noexcept;
    // Number: whether its value is zero, judged on the digits, so 1e-400 is
    // not zero and -0.0e5 is. Other kinds: false.
    bool number_is_zero() const noexcept;
    // String: the decoded characters. Other kinds: empty.
    std::string string() const;
    // Array: the elements in order. Other kinds: empty.
    std::vector<JsonText> elements() const;
    // Object: the members in source order, duplicates kept. Other kinds: empty.
    std::vector<Member> members() const;
    // Object: the value of the last member named `key`; nullopt when absent
    // or when this is not an object.
    std::optional<JsonText> member(std::string_view key) const;
    // The `rows` array when this is a row set — an object with a `rows`
    // array, the SQL step result shape {"rows":[...],"row_count":N} (§10.2) —
    // else nullopt.
    std::optional<JsonText> rows() const;

private:
    explicit JsonText(std::string_view validated) noexcept : text_(validated) {}
    std::string_view text_;
};

}  // namespace durable
