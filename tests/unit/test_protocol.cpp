// The step protocol's shared definitions (common/protocol).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/protocol.hpp"

using namespace durable::protocol;

TEST_CASE("stamps are built and parsed by one definition", "[protocol]") {
    CHECK(root_stamp("abcd0001", 7) == "abcd0001::7");
    CHECK(child_stamp("abcd0001::7", "0000000a", 3) == "abcd0001::7::0000000a::3");
    CHECK(stamp_execution("abcd0001::7", "abcd0001") == 7);
    CHECK(stamp_execution("abcd0001::12::0000000a::3", "abcd0001") == 12);
    CHECK_FALSE(stamp_execution("abcd0002::7", "abcd0001"));
    CHECK_FALSE(stamp_execution("abcd0001::", "abcd0001"));
    CHECK_FALSE(stamp_execution("abcd0001::x", "abcd0001"));
    CHECK_FALSE(stamp_execution("abcd0001::7x", "abcd0001"));
    CHECK_FALSE(stamp_execution("abcd0001:7", "abcd0001"));
    CHECK_FALSE(stamp_execution("abcd0001::9999999999999999999999", "abcd0001"));
    CHECK_FALSE(stamp_execution("", "abcd0001"));
}

TEST_CASE("status words and error prefixes", "[protocol]") {
    CHECK(is_terminal("completed"));
    CHECK(is_terminal("cancelled"));
    CHECK_FALSE(is_terminal("running"));
    CHECK(is_live("pending"));
    CHECK_FALSE(is_live("failed"));
    CHECK(sql_failed("boom") == "SQL execution failed: boom");
    CHECK(cancelled("stop") == "Cancelled: stop");
}

TEST_CASE("the SIGNAL result is one shape for a delivered signal and a timeout", "[protocol]") {
    CHECK(durable::protocol::signal_result("go", false, R"({"a": 1})") ==
          R"({"signal_name":"go","timed_out":false,"data":{"a": 1}})");
    CHECK(durable::protocol::signal_result("go", true, "null") == R"({"signal_name":"go","timed_out":true,"data":null})");
    // A name is data, never JSON syntax.
    const std::string hostile = durable::protocol::signal_result("a\"},\"timed_out\":true,\"x\":{\"", false, "1");
    const auto parsed = nlohmann::json::parse(hostile);
    CHECK(parsed["signal_name"] == "a\"},\"timed_out\":true,\"x\":{\"");
    CHECK(parsed["timed_out"] == false);
    CHECK(parsed.size() == 3);
}
