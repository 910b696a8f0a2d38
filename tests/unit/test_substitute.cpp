// Unit tests for common/substitute: braces, `$` references, SQL and raw
// rendering, every SPEC §11 error text, and the JsonText view underneath.
#include "catch_compat.hpp"

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "common/errors.hpp"
#include "common/substitute.hpp"

using durable::JsonText;
using durable::SubstitutionContext;
using durable::SubstitutionMode;

namespace {

using StringMap = std::map<std::string, std::string>;

// Results as the daemon stores them (§10.2, §10.9, §14).
const std::string kRow =
    R"({"rows":[{"id":7,"name":"O'Brien","price":1.50,"ok":true,"tags":["a", "b"],"meta":{"k": "v"},"note":null}],"row_count":1})";
const std::string kTwoRows = R"({"rows":[{"id":1,"name":"a"},{"id":2,"name":"b'c"}],"row_count":2})";
const std::string kNoRows = R"({"rows":[],"row_count":0})";
const std::string kNullFirst = R"({"rows":[{"v":null,"w":1}],"row_count":1})";
const std::string kHttp =
    R"({"status":200,"body":"{\"x\":1}","encoding":"text","headers":{"content-type":"application/json"},"ok":true,"duration_ms":12,"attempts":1})";
const std::string kSignal = R"({"signal_name":"go","timed_out":false,"data":{"n":5}})";
const std::string kSignalTimeout = R"({"signal_name":"go","timed_out":true,"data":null})";
const std::string kJoin = R"([{"rows":[{"a":1}],"row_count":1},{"rows":[],"row_count":0}])";
const std::string kBreak = R"("done")";
const std::string kNotJson = "hello 'world'";

// A one-row, one-column SQL result whose value has the JSON text `value`.
std::string scalar_result(const std::string &value) {
    return R"({"rows":[{"v":)" + value + R"(}],"row_count":1})";
}

std::string run(std::string_view text, const StringMap &results, SubstitutionMode mode,
                const StringMap &vars = {}) {
    SubstitutionContext ctx;
    ctx.instance_id = "inst-1";
    ctx.label = "nightly";
    ctx.vars = &vars;
    ctx.results = &results;
    return durable::substitute(text, ctx, mode);
}

std::string sql(std::string_view text, const StringMap &results, const StringMap &vars = {}) {
    return run(text, results, SubstitutionMode::Sql, vars);
}

std::string raw(std::string_view text, const StringMap &results, const StringMap &vars = {}) {
    return run(text, results, SubstitutionMode::Raw, vars);
}

// The message of the UserError the substitution throws ("<no error>" if it
// succeeds; any other exception type fails the test).
std::string error_of(std::string_view text, const StringMap &results, SubstitutionMode mode) {
    try {
        run(text, results, mode);
    } catch (const durable::UserError &e) {
        return e.what();
    }
    return "<no error>";
}

std::string sql_error(std::string_view text, const StringMap &results) {
    return error_of(text, results, SubstitutionMode::Sql);
}

std::string raw_error(std::string_view text, const StringMap &results) {
    return error_of(text, results, SubstitutionMode::Raw);
}

}  // namespace

// ---------------------------------------------------------------------------
// Braces
// ---------------------------------------------------------------------------

TEST_CASE("braces: system names", "[substitute]") {
    CHECK(sql("id={sys_instance_id} l={sys_label}", {}) == "id=inst-1 l=nightly");

    SubstitutionContext no_label;
    no_label.instance_id = "i9";
    CHECK(durable::substitute("[{sys_label}]", no_label, SubstitutionMode::Sql) == "[]");
    CHECK(durable::substitute("{sys_instance_id}", no_label, SubstitutionMode::Raw) == "i9");
}

TEST_CASE("braces: vars insert the raw value, unquoted, in both modes", "[substitute]") {
    const StringMap vars{{"tbl", "orders"}, {"cond", "id > 5 AND s = 'x'"}};
    CHECK(sql("SELECT * FROM {tbl} WHERE {cond}", {}, vars) == "SELECT * FROM orders WHERE id > 5 AND s = 'x'");
    CHECK(raw("https://h/{tbl}", {}, vars) == "https://h/orders");
}

TEST_CASE("braces: system names win over a var of the same name", "[substitute]") {
    CHECK(sql("{sys_label}", {}, {{"sys_label", "from-var"}}) == "nightly");
}

TEST_CASE("braces: unknown names, non-identifiers and unclosed braces stay verbatim", "[substitute]") {
    const StringMap vars{{"a", "A"}};
    CHECK(sql("{nope}", {}, vars) == "{nope}");
    CHECK(sql(R"(SELECT '{"a":1}'::jsonb)", {}, vars) == R"(SELECT '{"a":1}'::jsonb)");
    CHECK(sql("{1a} { a } {} {a-b} {a.b}", {}, vars) == "{1a} { a } {} {a-b} {a.b}");
    CHECK(sql("x {a", {}, vars) == "x {a");
    CHECK(sql("x {", {}, vars) == "x {");
    CHECK(sql("{a}{", {}, vars) == "A{");
}

TEST_CASE("braces: the innermost {identifier} counts", "[substitute]") {
    const StringMap vars{{"id", "42"}};
    CHECK(raw(R"({"id": {id}})", {}, vars) == R"({"id": 42})");
    CHECK(raw(R"({"user": "{id}"})", {}, vars) == R"({"user": "42"})");
    CHECK(raw("{{id}}", {}, vars) == "{42}");
}

TEST_CASE("braces: one pass, inserted text is not rescanned for braces", "[substitute]") {
    const StringMap vars{{"a", "{b}"}, {"b", "B"}, {"c", "{sys_instance_id}"}};
    CHECK(sql("{a} {c} {b}", {}, vars) == "{b} {sys_instance_id} B");
}

TEST_CASE("braces: no vars at all", "[substitute]") {
    SubstitutionContext ctx;  // vars and results are null
    ctx.instance_id = "i";
    CHECK(durable::substitute("{x} {sys_instance_id} $q", ctx, SubstitutionMode::Sql) == "{x} i $q");
}

// ---------------------------------------------------------------------------
// `$` scanning
// ---------------------------------------------------------------------------

TEST_CASE("dollar: unknown names and non-names leave $ untouched", "[substitute]") {
    const StringMap results{{"q", kRow}};
    CHECK(sql("SELECT $1, $2", results) == "SELECT $1, $2");
    CHECK(sql("SELECT $$ x $$", results) == "SELECT $$ x $$");
    CHECK(sql("DO $$body$$ BEGIN NULL; END $$body$$", results) == "DO $$body$$ BEGIN NULL; END $$body$$");
    CHECK(sql("$unknown $qq $ q $", results) == "$unknown $qq $ q $");
    CHECK(sql("cost: 5$", results) == "cost: 5$");
}

TEST_CASE("dollar: a word boundary is required after the name", "[substitute]") {
    const StringMap results{{"a", scalar_result("1")}, {"ab", scalar_result("2")}};
    CHECK(sql("$ab", results) == "2");
    CHECK(sql("$a", results) == "1");
    CHECK(sql("$abc $a_b $a1 $ab9", results) == "$abc $a_b $a1 $ab9");
    CHECK(sql("($a),$ab;$a+$ab", results) == "(1),2;1+2");
    CHECK(sql("$a\xC3\xA9", results) == "1\xC3\xA9");  // non-ASCII is not an identifier character
}

TEST_CASE("dollar: names are tried longest first", "[substitute]") {
    const StringMap results{{"total", scalar_result("1")}, {"total_count", scalar_result("99")}};
    CHECK(sql("$total_count", results) == "99");
    CHECK(sql("$total_count_x", results) == "$total_count_x");
    CHECK(sql("$total.x", results) == "$total.x");  // SQL mode: missing field verbatim
}

TEST_CASE("dollar: references inside brace-inserted text are substituted", "[substitute]") {
    const StringMap results{{"q", kRow}};
    const StringMap vars{{"filter", "id = $q"}, {"col", "q"}};
    CHECK(sql("WHERE {filter}", results, vars) == "WHERE id = 7");
    CHECK(sql("${col}.name", results, vars) == "'O''Brien'");
}

TEST_CASE("dollar: text a reference inserts is not rescanned", "[substitute]") {
    const StringMap results{{"a", scalar_result(R"("$b {x}")")}, {"b", scalar_result("1")}};
    CHECK(sql("$a", results, {{"x", "X"}}) == "'$b {x}'");
    CHECK(raw("$a", results, {{"x", "X"}}) == "$b {x}");
}

TEST_CASE("dollar: several references to one result", "[substitute]") {
    const StringMap results{{"q", kRow}, {"t", kTwoRows}};
    CHECK(sql("$q + $q.price + $q? + $t.name", results) == "7 + 1.50 + 7 + 'a'");
}

// ---------------------------------------------------------------------------
// $name / $name?
// ---------------------------------------------------------------------------

TEST_CASE("$name: first column of the first row, in SELECT order", "[substitute]") {
    CHECK(sql("$q", {{"q", kRow}}) == "7");
    CHECK(sql("$q", {{"q", R"({"rows":[{"z":1,"a":2}],"row_count":1})"}}) == "1");
    CHECK(sql("$t", {{"t", kTwoRows}}) == "1");
}

TEST_CASE("$name: SQL-mode literals", "[substitute]") {
    CHECK(sql("$v", {{"v", scalar_result(R"("O'Brien")")}}) == "'O''Brien'");
    CHECK(sql("$v", {{"v", scalar_result(R"("''")")}}) == "''''''");
    CHECK(sql("$v", {{"v", scalar_result(R"("")")}}) == "''");
    CHECK(sql("$v", {{"v", scalar_result("true")}}) == "true");
    CHECK(sql("$v", {{"v", scalar_result("false")}}) == "false");
    CHECK(sql("$v", {{"v", scalar_result(R"({"a": "it's"})")}}) == R"('{"a": "it''s"}')");
    CHECK(sql("$v", {{"v", scalar_result(R"([1, "x"])")}}) == R"('[1, "x"]')");
    CHECK(sql("$v", {{"v", scalar_result(R"("line\nnext \u00e9")")}}) == "'line\nnext \xC3\xA9'");
}

TEST_CASE("$name: numbers render exactly as in the JSON", "[substitute]") {
    for (const std::string number : {"0", "-0", "1.50", "12345678901234567890", "1e3", "-2.5E-7", "1e400",
                                     "123456789012345678901234567890.000000000000000000001"}) {
        INFO(number);
        CHECK(sql("$v", {{"v", scalar_result(number)}}) == number);
        CHECK(raw("$v", {{"v", scalar_result(number)}}) == number);
    }
}

TEST_CASE("$name: raw mode is unquoted", "[substitute]") {
    CHECK(raw("$v", {{"v", scalar_result(R"("O'Brien")")}}) == "O'Brien");
    CHECK(raw("$v", {{"v", scalar_result(R"("tab\there \"q\" \ud83d\ude00 \\ \/")")}}) ==
          "tab\there \"q\" \xF0\x9F\x98\x80 \\ /");
    CHECK(raw("$v", {{"v", scalar_result("true")}}) == "true");
    CHECK(raw("$v", {{"v", scalar_result(R"({"a": [1, 2]})")}}) == R"({"a": [1, 2]})");
}

TEST_CASE("$name: NULL first column", "[substitute]") {
    const StringMap results{{"q", kNullFirst}};
    CHECK(sql_error("$q", results) == "$q is NULL — first column of first row is NULL");
    CHECK(raw_error("$q", results) == "$q is NULL — first column of first row is NULL");
    CHECK(sql("x=$q?", results) == "x=NULL");
    CHECK(raw("x=$q?", results) == "x=NULL");
}

TEST_CASE("$name: no rows", "[substitute]") {
    const StringMap results{{"e", kNoRows}};
    CHECK(sql_error("SELECT $e", results) == "$e has no rows — query returned zero results");
    CHECK(raw_error("$e", results) == "$e has no rows — query returned zero results");
    CHECK(sql("SELECT $e?", results) == "SELECT NULL");
    CHECK(raw("$e?", results) == "NULL");
}

TEST_CASE("$name?: a present value is unaffected by ?", "[substitute]") {
    CHECK(sql("$q?", {{"q", kRow}}) == "7");
    CHECK(sql("$q??", {{"q", kRow}}) == "7?");
}

TEST_CASE("$name: results without rows, or not JSON, are used whole", "[substitute]") {
    const StringMap results{{"j", kJoin}, {"b", kBreak}, {"s", kSignal}, {"h", kHttp},
                            {"n", kNotJson}, {"z", "null"},  {"o", R"({"rows": 5})"}};
    CHECK(sql("$j", results) == "'" + kJoin + "'");
    CHECK(raw("$j", results) == kJoin);
    CHECK(sql("$b", results) == R"('"done"')");
    CHECK(raw("$b", results) == R"("done")");
    CHECK(sql("$s", results) == "'" + kSignal + "'");
    CHECK(raw("$h", results) == kHttp);
    CHECK(sql("$n", results) == "'hello ''world'''");
    CHECK(raw("$n", results) == "hello 'world'");
    CHECK(sql("$z", results) == "'null'");
    CHECK(sql("$o?", results) == R"('{"rows": 5}')");
}

TEST_CASE("$name: row sets no SQL step produces", "[substitute]") {
    CHECK(sql_error("$r", {{"r", R"({"rows":[5]})"}}) == "$r: first row is not a JSON object");
    CHECK(sql_error("$r", {{"r", R"({"rows":[{}],"row_count":1})"}}) == "$r: first row has no columns");
}

TEST_CASE("$name: in SQL, a negative number after '-' is kept from forming a comment", "[substitute]") {
    const StringMap results{{"n", scalar_result("-5")}, {"p", scalar_result("5")},
                            {"r", R"({"rows":[{"x":-1}],"row_count":1})"}};
    CHECK(sql("SELECT 10-$n", results) == "SELECT 10- -5");
    CHECK(sql("SELECT 10-$r.x", results) == "SELECT 10- -1");
    CHECK(sql("SELECT 10 - $n", results) == "SELECT 10 - -5");
    CHECK(sql("SELECT 10-$p", results) == "SELECT 10-5");
    CHECK(sql("SELECT $n", results) == "SELECT -5");
    CHECK(raw("10-$n", results) == "10--5");
}

// ---------------------------------------------------------------------------
// $name.col / $name.col?
// ---------------------------------------------------------------------------

TEST_CASE("$name.col: field of the first row", "[substitute]") {
    const StringMap results{{"q", kRow}, {"t", kTwoRows}};
    CHECK(sql("$q.id", results) == "7");
    CHECK(sql("$q.name", results) == "'O''Brien'");
    CHECK(sql("$q.price", results) == "1.50");
    CHECK(sql("$q.ok", results) == "true");
    CHECK(sql("$q.tags", results) == R"('["a", "b"]')");
    CHECK(sql("$q.meta", results) == R"('{"k": "v"}')");
    CHECK(sql("$t.name", results) == "'a'");
    CHECK(raw("$q.name", results) == "O'Brien");
    CHECK(raw("$q.meta", results) == R"({"k": "v"})");
    CHECK(raw("/items/$q.id/$q.price", results) == "/items/7/1.50");
    CHECK(sql("$q.id?", results) == "7");
}

TEST_CASE("$name.col: NULL field", "[substitute]") {
    const StringMap results{{"q", kRow}};
    CHECK(sql_error("$q.note", results) == "$q.note is NULL");
    CHECK(raw_error("$q.note", results) == "$q.note is NULL");
    CHECK(sql("$q.note?", results) == "NULL");
    CHECK(raw("$q.note?", results) == "NULL");
}

TEST_CASE("$name.col: no rows", "[substitute]") {
    const StringMap results{{"e", kNoRows}};
    CHECK(sql_error("$e.x", results) == "$e has no rows — query returned zero results");
    CHECK(raw_error("$e.x", results) == "$e has no rows — query returned zero results");
    CHECK(sql("$e.x?", results) == "NULL");
    CHECK(raw("$e.x?", results) == "NULL");
}

TEST_CASE("$name.col: missing field", "[substitute]") {
    const StringMap results{{"q", kRow}, {"h", kHttp}};
    SECTION("SQL mode leaves the text verbatim") {
        CHECK(sql("SELECT $q.missing, $q.missing? FROM t", results) == "SELECT $q.missing, $q.missing? FROM t");
    }
    SECTION("raw mode fails, listing the fields sorted") {
        CHECK(raw_error("$q.missing", results) ==
              "$q.missing: result has no field 'missing' (available: id, meta, name, note, ok, price, tags)");
        CHECK(raw_error("$q.missing?", results) ==
              "$q.missing: result has no field 'missing' (available: id, meta, name, note, ok, price, tags)");
        CHECK(raw_error("$h.Status", results) ==
              "$h.Status: result has no field 'Status' (available: attempts, body, duration_ms, encoding, "
              "headers, ok, status)");
    }
    SECTION("a row set's top-level keys are not fields") {
        CHECK(sql("$q.row_count", results) == "$q.row_count");
        CHECK(raw_error("$q.rows", results).rfind("$q.rows: result has no field 'rows'", 0) == 0);
    }
}

TEST_CASE("$name.col: top-level field of an HTTP envelope", "[substitute]") {
    const StringMap results{{"h", kHttp}};
    CHECK(sql("$h.status", results) == "200");
    CHECK(sql("$h.body", results) == R"('{"x":1}')");
    CHECK(raw("$h.body", results) == R"({"x":1})");
    CHECK(sql("$h.ok", results) == "true");
    CHECK(sql("$h.headers", results) == R"('{"content-type":"application/json"}')");
    CHECK(raw("$h.encoding", results) == "text");
}

TEST_CASE("$name.col: top-level field of a signal result", "[substitute]") {
    const StringMap results{{"s", kSignal}, {"t", kSignalTimeout}};
    CHECK(sql("$s.signal_name", results) == "'go'");
    CHECK(sql("$s.timed_out", results) == "false");
    CHECK(sql("$s.data", results) == R"('{"n":5}')");
    CHECK(raw("$s.data", results) == R"({"n":5})");
    CHECK(sql_error("$t.data", results) == "$t.data is NULL");
    CHECK(sql("$t.data?", results) == "NULL");
    CHECK(sql("$t.timed_out", results) == "true");
}

TEST_CASE("$name.col: result neither a row set nor an object", "[substitute]") {
    const StringMap results{{"j", kJoin}, {"b", kBreak}, {"n", kNotJson}, {"z", "null"}};
    CHECK(sql_error("$j.x", results) == "$j.x: result is neither a row set nor a JSON object");
    CHECK(raw_error("$j.x", results) == "$j.x: result is neither a row set nor a JSON object");
    CHECK(sql_error("$b.x?", results) == "$b.x: result is neither a row set nor a JSON object");
    CHECK(sql_error("$n.x", results) == "$n.x: result is neither a row set nor a JSON object");
    CHECK(raw_error("$z.x", results) == "$z.x: result is neither a row set nor a JSON object");
    CHECK(sql_error("$r.x", {{"r", R"({"rows":[1]})"}}) == "$r.x: first row is not a JSON object");
}

TEST_CASE("$name.col: a dot counts only when an identifier follows", "[substitute]") {
    const StringMap results{{"q", kRow}};
    CHECK(sql("It was $q.", results) == "It was 7.");
    CHECK(sql("$q.5", results) == "7.5");
    CHECK(sql("$q..id", results) == "7..id");
    CHECK(sql("$q. id", results) == "7. id");
    CHECK(sql("$q.id.", results) == "7.");
    CHECK(sql("$q.id.name", results) == "7.name");
    CHECK(raw("$q.-", results) == "7.-");
    CHECK(sql("$q._x", results) == "$q._x");  // `_x` is an identifier: a (missing) field
}

TEST_CASE("$name.col: duplicate column names — the last one wins", "[substitute]") {
    const StringMap results{{"d", R"({"rows":[{"a":1,"b":2,"a":3}],"row_count":1})"}};
    CHECK(sql("$d", results) == "1");  // first column is still the first pair
    CHECK(sql("$d.a", results) == "3");
    CHECK(sql("$d.b", results) == "2");
    CHECK(raw_error("$d.c", results) == "$d.c: result has no field 'c' (available: a, b)");
}

TEST_CASE("$name.col: escaped keys match their decoded name", "[substitute]") {
    CHECK(sql("$q.ab", {{"q", R"({"rows":[{"\u0061b":1}],"row_count":1})"}}) == "1");
}

// ---------------------------------------------------------------------------
// $name.*
// ---------------------------------------------------------------------------

TEST_CASE("$name.*: SQL mode expands to a VALUES list", "[substitute]") {
    CHECK(sql("SELECT * FROM $t.* WHERE id > 1", {{"t", kTwoRows}}) ==
          R"(SELECT * FROM (VALUES (1,'a'::text), (2,'b''c'::text)) AS "t"("id", "name") WHERE id > 1)");
}

TEST_CASE("$name.*: every value type", "[substitute]") {
    CHECK(sql("$q.*", {{"q", kRow}}) ==
          R"((VALUES (7,'O''Brien'::text,1.50,true,'["a", "b"]'::text,'{"k": "v"}'::text,NULL)) AS "q")"
          R"(("id", "name", "price", "ok", "tags", "meta", "note"))");
}

TEST_CASE("$name.*: no rows", "[substitute]") {
    CHECK(sql("SELECT * FROM $e.*", {{"e", kNoRows}}) == "SELECT * FROM (SELECT NULL WHERE false) AS \"e\"");
    CHECK(raw("$e.*", {{"e", kNoRows}}) == "[]");
}

TEST_CASE("$name.*: raw mode gives the rows as a JSON array", "[substitute]") {
    CHECK(raw("$t.*", {{"t", kTwoRows}}) == R"([{"id":1,"name":"a"},{"id":2,"name":"b'c"}])");
    CHECK(raw("$t.*", {{"t", R"({"rows": [ {"n": 1.50} ] })"}}) == R"([ {"n": 1.50} ])");
}

TEST_CASE("$name.*: column names are quoted identifiers, duplicates kept", "[substitute]") {
    CHECK(sql("$q.*", {{"q", R"({"rows":[{"a\"b":1,"A":2}],"row_count":1})"}}) ==
          R"((VALUES (1,2)) AS "q"("a""b", "A"))");
    CHECK(sql("$d.*", {{"d", R"({"rows":[{"a":1,"b":2,"a":3}],"row_count":1})"}}) ==
          R"((VALUES (1,2,3)) AS "d"("a", "b", "a"))");
}

TEST_CASE("$name.*: rows with other columns are read by name", "[substitute]") {
    CHECK(sql("$h.*", {{"h", R"({"rows":[{"a":1,"b":2},{"b":3,"a":4},{"b":5}]})"}}) ==
          R"((VALUES (1,2), (4,3), (NULL,5)) AS "h"("a", "b"))");
}

TEST_CASE("$name.*: results without rows are an invalid format", "[substitute]") {
    const StringMap results{{"j", kJoin}, {"h", kHttp}, {"s", kSignal}, {"b", kBreak},
                            {"n", kNotJson}, {"r", R"({"rows":[1,2]})"}};
    for (const std::string name : {"j", "h", "s", "b", "n"}) {
        INFO(name);
        CHECK(sql_error("$" + name + ".*", results) == "$" + name + ".* — invalid result format");
        CHECK(raw_error("$" + name + ".*", results) == "$" + name + ".* — invalid result format");
    }
    CHECK(sql_error("$r.*", results) == "$r.* — invalid result format");
}

namespace {
std::string result_with_rows(std::size_t count) {
    std::string rows;
    for (std::size_t i = 0; i < count; ++i) rows += (i ? ",{\"n\":" : "{\"n\":") + std::to_string(i) + "}";
    return R"({"rows":[)" + rows + R"(],"row_count":)" + std::to_string(count) + "}";
}
}  // namespace

TEST_CASE("$name.*: at most 10000 rows", "[substitute]") {
    const StringMap results{{"big", result_with_rows(10001)}, {"max", result_with_rows(10000)}};
    const std::string message =
        "$big.* — result has 10001 rows, exceeding the maximum of 10000 for row-set expansion. "
        "Use pagination or intermediate tables for large result sets.";
    CHECK(sql_error("SELECT * FROM $big.*", results) == message);
    CHECK(raw_error("$big.*", results) == message);

    const std::string expanded = sql("$max.*", results);
    CHECK(expanded.rfind("(VALUES (0), (1), (2), ", 0) == 0);
    CHECK(expanded.find("(9999)) AS \"max\"(\"n\")") != std::string::npos);
    // Only `.*` is limited.
    CHECK(sql("$big", results) == "0");
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

TEST_CASE("errors: the dash is an em dash (U+2014) and SQLSTATEs are set", "[substitute]") {
    try {
        sql("$e", {{"e", kNoRows}});
        FAIL("expected a UserError");
    } catch (const durable::UserError &e) {
        CHECK(std::string(e.what()) == "$e has no rows \xE2\x80\x94 query returned zero results");
        CHECK(std::string(e.sqlstate()) == durable::sqlstate::kDataException);
    }
    try {
        sql("$big.*", {{"big", result_with_rows(10001)}});
        FAIL("expected a UserError");
    } catch (const durable::UserError &e) {
        CHECK(std::string(e.sqlstate()) == durable::sqlstate::kProgramLimitExceeded);
    }
}

// ---------------------------------------------------------------------------
// JsonText
// ---------------------------------------------------------------------------

TEST_CASE("JsonText: accepts exactly what RFC 8259 accepts", "[substitute]") {
    // nlohmann::json is the oracle for texts within its number range.
    const std::vector<std::string> texts{
        "0", "-0", "1.5", "-1.5e+10", "1E3", "01", "1.", ".5", "+1", "-", "1e", "1e+", "0x10", "NaN",
        "true", "false", "null", "True", "nul", "truex",
        R"("")", R"("a")", R"("\"\\\/\b\f\n\r\t")", R"("\u00e9\u20AC")", R"("\ud83d\ude00")",
        R"("\ud83d")", R"("\ude00")", R"("\ud83dx")", R"("\u12")", R"("\x")", "\"a", "\"tab\there\"",
        "\"\xC3\xA9\"", "\"\xC3\"", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"", "\"\xFF\"",
        "\"\xE2\x82\xAC\"", "\"\xF0\x9F\x98\x80\"",
        "[]", "[1,2]", "[1,]", "[,1]", "[1 2]", "[", "]", "[[[]]]", "[[]", "{}", R"({"a":1})", R"({"a":1,})",
        R"({"a"})", R"({a:1})", R"({"a":1 "b":2})", R"({"a":{"b":[1,{"c":null}]}})", R"({"a":1}})",
        " \t\n\r[ 1 , { \"k\" : \"v\" } ]\r\n ", "", "   ", "1 2", "[1] x", "{} {}", "\"a\" \"b\"",
        "/* c */ 1", "[1]\f",
    };
    for (const auto &text : texts) {
        INFO(text);
        CHECK(JsonText::parse(text).has_value() == nlohmann::json::accept(text));
    }
}

TEST_CASE("JsonText: numbers beyond double range are still numbers", "[substitute]") {
    const std::string huge = "1" + std::string(400, '0');
    for (const std::string &text : {std::string("1e400"), std::string("-1e-400"), huge}) {
        INFO(text);
        const auto json = JsonText::parse(text);
        REQUIRE(json);
        CHECK(json->kind() == JsonText::Kind::Number);
        CHECK(json->text() == text);
        CHECK_FALSE(json->number_is_zero());
    }
}

TEST_CASE("JsonText: kinds, exact text and zero numbers", "[substitute]") {
    const auto json = JsonText::parse(R"(  [null, true, false, 1.50, "s", [], {"a" : 1}, 0, -0.0e5, 0.001]  )");
    REQUIRE(json);
    CHECK(json->text() == R"([null, true, false, 1.50, "s", [], {"a" : 1}, 0, -0.0e5, 0.001])");
    const auto items = json->elements();
    REQUIRE(items.size() == 10);
    CHECK(items[0].kind() == JsonText::Kind::Null);
    CHECK(items[1].kind() == JsonText::Kind::Boolean);
    CHECK(items[1].boolean());
    CHECK_FALSE(items[2].boolean());
    CHECK(items[3].kind() == JsonText::Kind::Number);
    CHECK(items[3].text() == "1.50");
    CHECK(items[4].kind() == JsonText::Kind::String);
    CHECK(items[4].string() == "s");
    CHECK(items[5].kind() == JsonText::Kind::Array);
    CHECK(items[5].elements().empty());
    CHECK(items[6].kind() == JsonText::Kind::Object);
    CHECK(items[6].text() == R"({"a" : 1})");
    CHECK(items[7].number_is_zero());
    CHECK(items[8].number_is_zero());
    CHECK_FALSE(items[9].number_is_zero());
    CHECK_FALSE(items[3].number_is_zero());
}

TEST_CASE("JsonText: members keep order and duplicates; member() takes the last", "[substitute]") {
    const auto json = JsonText::parse(R"({"z":1,"a":{"x":[1,"}"]},"z":"two","q\"k":null})");
    REQUIRE(json);
    const auto members = json->members();
    REQUIRE(members.size() == 4);
    CHECK(members[0].first == "z");
    CHECK(members[0].second.text() == "1");
    CHECK(members[1].first == "a");
    CHECK(members[1].second.text() == R"({"x":[1,"}"]})");
    CHECK(members[2].first == "z");
    CHECK(members[3].first == "q\"k");
    REQUIRE(json->member("z"));
    CHECK(json->member("z")->string() == "two");
    REQUIRE(json->member("q\"k"));
    CHECK(json->member("q\"k")->is_null());
    CHECK_FALSE(json->member("x"));
    CHECK_FALSE(JsonText::parse("[1]")->member("0"));
}

TEST_CASE("JsonText: rows() only for an object with a rows array", "[substitute]") {
    CHECK(JsonText::parse(kTwoRows)->rows()->elements().size() == 2);
    CHECK(JsonText::parse(kNoRows)->rows()->elements().empty());
    CHECK_FALSE(JsonText::parse(R"({"rows":{}})")->rows());
    CHECK_FALSE(JsonText::parse(kJoin)->rows());
    CHECK_FALSE(JsonText::parse(kHttp)->rows());
}

TEST_CASE("JsonText: deep nesting does not exhaust the stack", "[substitute]") {
    const std::size_t depth = 200000;
    const std::string text = std::string(depth, '[') + std::string(depth, ']');
    const auto json = JsonText::parse(text);
    REQUIRE(json);
    CHECK(json->elements().size() == 1);
    CHECK_FALSE(JsonText::parse(std::string(depth, '[') + std::string(depth - 1, ']')));
}
