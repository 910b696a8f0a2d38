// Substitution of vars and named results into step text (SPEC §11). Stored
// results are read through JsonText (json_text.hpp).
//
// Pure C++: no PostgreSQL headers, no I/O.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json_text.hpp"

namespace durable {

// ---------------------------------------------------------------------------
// Substitution (§11)

// Where the substituted text goes, which decides how values are rendered.
enum class SubstitutionMode {
    Sql,  // SQL step text: values become SQL literals ('x', 42, NULL, ...)
    Raw,  // HTTP url, body and header values, break values: values unquoted
};

// What a substitution may refer to. The maps are borrowed, never copied;
// a null pointer means "none".
struct SubstitutionContext {
    std::string instance_id;           // {sys_instance_id}
    std::optional<std::string> label;  // {sys_label}; none -> empty
    // The immutable start-time vars snapshot: name -> raw value.
    const std::map<std::string, std::string> *vars = nullptr;
    // The named results visible at this point: name -> stored result JSON text.
    const std::map<std::string, std::string> *results = nullptr;
};

// Applies §11 to `text` and returns the result.
//
// Pass 1, braces (one left-to-right pass; inserted text is not rescanned for
// braces): `{sys_instance_id}`, `{sys_label}` (label or empty) and `{name}`
// with `name` an identifier ([A-Za-z_][A-Za-z0-9_]*) present in vars become
// the raw value. The system names win over a var of the same name. Anything
// else stays verbatim: unknown names, non-identifiers such as `{"a":1}`,
// an unclosed `{`. Only the innermost `{identifier}` counts, so a var inside
// JSON (`{"id": {id}}`) is still substituted.
//
// Pass 2, `$` references to named results, over the output of pass 1 (so
// also inside brace-inserted text); text a reference inserts is not rescanned.
// After `$` the longest identifier is read (names are identifiers, so this is
// "longest name first, word boundary after"); when it names no result the `$`
// stays as it is (`$1`, `$$`, `$$body$$`, `$unknown`). Forms:
//   $name.*           row-set expansion
//   $name.col[?]      a field of the first row, or a top-level field of a
//                     result that is an object without rows (HTTP envelope,
//                     signal result). `.col` counts only when an identifier
//                     follows the dot: `$a.` and `$n.5` are `$a` / `$n` then
//                     a literal dot.
//   $name[?]          the first column (SELECT order) of the first row; a
//                     result without rows, or not JSON, is used whole
// `?` turns "no rows" and "NULL value" into NULL instead of an error.
//
// Rendering. Sql mode: strings '...' with ' doubled, numbers exactly as in
// the JSON, booleans true/false, objects/arrays as their JSON text quoted
// like a string, NULL; a whole result is one quoted literal of its text.
// Raw mode: the same values unquoted (strings decoded, objects/arrays and
// whole results as their JSON text); NULL for a `?` null.
// One safeguard beyond the letter of §11: in Sql mode a negative number that
// lands right after a `-` (`10-$n`) gets a space first, since `10--5` would
// turn the rest of the line into a comment.
//
// `$name.*` refuses results with more than limits::kMaxRowSetRows (10000) rows.
// Sql mode: (VALUES (1,'a'::text), (2,NULL)) AS "name"("c1", "c2")
// with the first row's columns, each row's values in that order (by name when
// a row's columns differ), strings and objects/arrays as '...'::text; no rows
// -> (SELECT NULL WHERE false) AS "name". Raw mode: the rows array's JSON text.
//
// Missing field: Sql mode leaves the reference verbatim (PostgreSQL then
// reports it); Raw mode fails, listing the available fields sorted.
//
// Throws durable::UserError (common/errors.hpp) with the §11 message, e.g.
//   $q has no rows — query returned zero results          (em dash U+2014)
//   $q is NULL — first column of first row is NULL
//   $q.col is NULL
//   $q.col: result has no field 'col' (available: a, b)
//   $q.col: result is neither a row set nor a JSON object
//   $q.* — invalid result format
//   $q.* — result has N rows, exceeding the maximum of 10000 for row-set expansion. Use pagination or intermediate tables for large result sets.
// and, for row sets no SQL step produces (hand-made break values):
//   $q: first row is not a JSON object / $q.col: first row is not a JSON object
//   $q: first row has no columns
std::string substitute(std::string_view text, const SubstitutionContext &ctx,
                       SubstitutionMode mode);

}  // namespace durable
