// Unit tests for common/truthiness: SPEC §12 for every JSON type, every
// string form, row-set results and results judged whole.
#include "catch_compat.hpp"

#include <string>

#include "common/truthiness.hpp"

using durable::is_truthy;

namespace {

// A one-row SQL result whose first column has the JSON text `value`.
std::string first_column(const std::string &value) {
    return R"({"rows":[{"c":)" + value + R"(,"other":true}],"row_count":1})";
}

// The JSON string literal of `text` (only what the tests below need escaped).
std::string json_string(const std::string &text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '\t') {
            out += "\\t";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out + "\"";
}

}  // namespace

TEST_CASE("truthiness: booleans as is", "[truthiness]") {
    CHECK(is_truthy("true"));
    CHECK_FALSE(is_truthy("false"));
    CHECK(is_truthy(first_column("true")));
    CHECK_FALSE(is_truthy(first_column("false")));
}

TEST_CASE("truthiness: numbers are true unless zero", "[truthiness]") {
    for (const std::string zero : {"0", "-0", "0.0", "-0.000", "0e10", "0E-3", "0.0e400"}) {
        INFO(zero);
        CHECK_FALSE(is_truthy(zero));
        CHECK_FALSE(is_truthy(first_column(zero)));
    }
    for (const std::string nonzero : {"1", "-1", "0.5", "1e3", "1e-400", "1e400", "12345678901234567890",
                                      "0.0000000000000000000000000000001"}) {
        INFO(nonzero);
        CHECK(is_truthy(nonzero));
        CHECK(is_truthy(first_column(nonzero)));
    }
}

TEST_CASE("truthiness: null is false", "[truthiness]") {
    CHECK_FALSE(is_truthy("null"));
    CHECK_FALSE(is_truthy(first_column("null")));
}

TEST_CASE("truthiness: arrays and objects are true unless empty", "[truthiness]") {
    CHECK_FALSE(is_truthy("[]"));
    CHECK_FALSE(is_truthy(" [ ] "));
    CHECK(is_truthy("[0]"));
    CHECK(is_truthy("[false]"));
    CHECK_FALSE(is_truthy("{}"));
    CHECK(is_truthy(R"({"a":false})"));
    CHECK_FALSE(is_truthy(first_column("[]")));
    CHECK(is_truthy(first_column("[null]")));
    CHECK_FALSE(is_truthy(first_column("{}")));
    CHECK(is_truthy(first_column(R"({"k":0})")));
}

TEST_CASE("truthiness: string forms", "[truthiness]") {
    const std::vector<std::string> false_strings{
        "", " ", " \t\n ", "false", "FALSE", "False", "f", "F", "no", "NO", "No", " no ", "\tfalse\n",
        "0", "-0", "+0", "0.0", " 0 ", "00", ".0", "0.", "0e5", "-0.0E+3",
    };
    const std::vector<std::string> true_strings{
        "true", "TRUE", "True", "t", "T", "yes", "YES", "Yes", " yes ", "1", "-1", "+2", "0.5", ".5", "1e3",
        "1e-400", "abc", "null", "nope", "off", "n", "y", "0x0", "1e", "e5", ".", "-", "0 0", "0a", "ja",
    };
    for (const auto &text : false_strings) {
        INFO("string '" << text << "'");
        CHECK_FALSE(is_truthy(json_string(text)));               // a JSON string, judged whole
        CHECK_FALSE(is_truthy(first_column(json_string(text))));  // the first column of a row
    }
    for (const auto &text : true_strings) {
        INFO("string '" << text << "'");
        CHECK(is_truthy(json_string(text)));
        CHECK(is_truthy(first_column(json_string(text))));
    }
}

TEST_CASE("truthiness: escaped JSON strings are judged decoded", "[truthiness]") {
    CHECK_FALSE(is_truthy(R"("\u0066alse")"));  // "false"
    CHECK_FALSE(is_truthy(R"("\u0020\u0030")"));  // " 0"
    CHECK(is_truthy(R"("\u0031")"));              // "1"
}

TEST_CASE("truthiness: non-JSON text is judged as a string", "[truthiness]") {
    for (const std::string text : {"", "   ", "FALSE", "False", "f", "no", "No", "00", "-0.", ".0", "+0", " 0 x"}) {
        INFO("text '" << text << "'");
        if (text == " 0 x") {
            CHECK(is_truthy(text));  // not numeric: other non-empty text
        } else {
            CHECK_FALSE(is_truthy(text));
        }
    }
    // Trimming covers all ASCII whitespace, \f and \v included (not JSON whitespace, so not JSON).
    CHECK_FALSE(is_truthy("\f0\v"));
    CHECK_FALSE(is_truthy("\v no\r\n"));
    for (const std::string text : {"TRUE", "True", "t", "yes", "Yes", "hello", "+1", ".5", "[1", "{", "\"a",
                                   "\xFF\xFE"}) {
        INFO("text '" << text << "'");
        CHECK(is_truthy(text));
    }
}

TEST_CASE("truthiness: a row set is false without rows", "[truthiness]") {
    CHECK_FALSE(is_truthy(R"({"rows":[],"row_count":0})"));
    CHECK_FALSE(is_truthy(R"({"row_count":0,"rows":[]})"));
}

TEST_CASE("truthiness: only the first column of the first row is judged", "[truthiness]") {
    // The first column in SELECT order, not the alphabetically first key.
    CHECK_FALSE(is_truthy(R"({"rows":[{"b":false,"a":true}],"row_count":1})"));
    CHECK(is_truthy(R"({"rows":[{"b":true,"a":false}],"row_count":1})"));
    // Later rows do not matter.
    CHECK_FALSE(is_truthy(R"({"rows":[{"a":0},{"a":1}],"row_count":2})"));
    CHECK(is_truthy(R"({"rows":[{"a":1},{"a":0}],"row_count":2})"));
    // A duplicate name: the first pair is the first column.
    CHECK_FALSE(is_truthy(R"({"rows":[{"a":false,"a":true}],"row_count":1})"));
    CHECK(is_truthy(R"({"rows":[{"a":true,"a":false}],"row_count":1})"));
}

TEST_CASE("truthiness: row sets no SQL step produces", "[truthiness]") {
    CHECK_FALSE(is_truthy(R"({"rows":[0]})"));  // a non-object row is judged itself
    CHECK(is_truthy(R"({"rows":[1]})"));
    CHECK(is_truthy(R"({"rows":[{}],"row_count":1})"));  // zero-column row: a row exists
    CHECK(is_truthy(R"({"rows":0})"));                   // `rows` not an array: the object, judged whole
    CHECK(is_truthy(R"({"rows":false})"));
}

TEST_CASE("truthiness: results without rows are judged whole", "[truthiness]") {
    // SIGNAL results are always true, timed out or not (§12).
    CHECK(is_truthy(R"({"signal_name":"go","timed_out":false,"data":null})"));
    CHECK(is_truthy(R"({"signal_name":"go","timed_out":true,"data":null})"));
    // HTTP envelope, JOIN array, SLEEP result.
    CHECK(is_truthy(R"({"status":500,"body":"","encoding":"text","headers":{},"ok":false,"duration_ms":1,"attempts":3})"));
    CHECK(is_truthy(R"([{"rows":[],"row_count":0}])"));
    CHECK(is_truthy(R"({"slept":true,"seconds":0})"));
    // Break values.
    CHECK(is_truthy(R"("done")"));
    CHECK_FALSE(is_truthy(R"("no")"));
    CHECK_FALSE(is_truthy(R"("")"));
    CHECK_FALSE(is_truthy("null"));
    CHECK_FALSE(is_truthy("0"));
}
