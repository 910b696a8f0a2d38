// Condition truthiness (SPEC §12): how IF and LOOP judge a condition's result.
//
// Pure C++: no PostgreSQL headers, no I/O.
#pragma once

#include <string_view>

namespace durable {

// Judges a condition's stored result text.
//
// The text is read as JSON (through JsonText, json_text.hpp, so column order,
// duplicate names and number digits are as stored). A row set — an object
// with a `rows` array, the SQL result {"rows":[...],"row_count":N} — is false
// when `rows` is empty, else its first row's first column (SELECT order) is
// judged. Anything else is judged whole; text that is not JSON is judged as a
// string. Verdicts:
//   boolean    as is
//   number     true unless zero (judged on the digits: 0, -0.0, 0e5 are zero;
//              1e-400 is not)
//   null       false
//   array, object   true unless empty
//   string     trimmed of ASCII whitespace: empty -> false; true, t, yes ->
//              true and false, f, no -> false (ASCII case-insensitive); a
//              numeric string ([+-]digits[.digits][e[+-]digits], e.g. "0.0",
//              " -0 ", "1e3") -> true unless zero; any other text -> true.
// Rows that no SQL step produces are still judged, never rejected: a first
// row that is not an object is judged itself, and a zero-column first row
// (SELECT FROM t) is true, since a row exists.
//
// Judging never fails: every text gets a verdict (only std::bad_alloc can
// escape).
bool is_truthy(std::string_view result_text);

}  // namespace durable
