// The step protocol's shared definitions (common/protocol).
#include "catch_compat.hpp"
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

TEST_CASE("a stamp is taken apart into its instance, execution and child scopes", "[protocol]") {
    const auto stamp = parse_stamp("abcd0001::12::0000000a::3::0000000b::1");
    REQUIRE(stamp);
    CHECK(stamp->instance_id == "abcd0001");
    CHECK(stamp->execution == 12);
    REQUIRE(stamp->scopes.size() == 2);
    CHECK(stamp->scopes[0].child_root_id == "0000000a");
    CHECK(stamp->scopes[0].generation == 3);
    CHECK(stamp->scopes[1].child_root_id == "0000000b");
    CHECK(stamp->scopes[1].generation == 1);
    CHECK(parse_stamp("abcd0001::1")->scopes.empty());
    // Hostile or damaged stamps (rows the daemon and monitoring read) parse to nothing.
    for (const char *bad : {"", "::", "abcd0001", "abcd0001::", "::7", "abcd0001::7::", "abcd0001::7::a",
                            "abcd0001::7::a::", "abcd0001::7::::3", "abcd0001::7::a::-1", "abcd0001::7::a::1x",
                            "abcd0001::-7", "abcd0001::+7", "abcd0001::7 ", "abcd0001::1234567890123456789",
                            "abcd0001::7::a::99999999999999999999", "abcd0001:::7"})
        CHECK_FALSE(parse_stamp(bad));
    CHECK(parse_stamp("abcd0001::123456789012345678")->execution == 123456789012345678);
}

TEST_CASE("child scopes of a parent are found by generation, never by a look-alike prefix", "[protocol]") {
    const std::string loop = child_stamp(root_stamp("abcd0001", 2), "0000000a", 4);
    CHECK(child_generation(child_stamp(loop, "0000000b", 9), loop, "0000000b") == 9);
    CHECK(child_generation(child_stamp(child_stamp(loop, "0000000b", 9), "0000000c", 1), loop, "0000000b") == 9);
    CHECK_FALSE(child_generation(loop, loop, "0000000b"));                                 // the parent itself
    CHECK_FALSE(child_generation(child_stamp(loop, "0000000c", 9), loop, "0000000b"));    // another child
    CHECK_FALSE(child_generation(child_stamp(loop + "1", "0000000b", 9), loop, "0000000b"));  // look-alike parent
    CHECK_FALSE(child_generation(loop + "::0000000b::x", loop, "0000000b"));
    CHECK(descendant_prefix(loop) == loop + "::");
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

TEST_CASE("the wake-up relay's payloads are built and parsed by one definition", "[protocol][wakeup]") {
    CHECK(is_instance_id("0123abcd"));
    CHECK_FALSE(is_instance_id("0123ABCD"));
    CHECK_FALSE(is_instance_id("0123abc"));
    CHECK_FALSE(is_instance_id("0123abcde"));

    const std::vector<std::string> two{"0123abcd", "89abcdef"};
    CHECK(start_batch_payload(two) == "starts:0123abcd,89abcdef");
    CHECK(parse_start_batch("starts:0123abcd,89abcdef") == two);
    CHECK(parse_start_batch("starts:0123abcd") == std::vector<std::string>{"0123abcd"});
    for (const char *bad : {"starts:", "starts:0123abcd,", "starts:,0123abcd", "starts:0123abcd;89abcdef",
                            "starts:0123abcd,89ABCDEF", "starts:0123abcd,,89abcdef", "start:0123abcd",
                            "Starts:0123abcd", "starts:0123abcd89abcdef", "rescan", ""})
        CHECK_FALSE(parse_start_batch(bad));

    // The largest batch fits PostgreSQL's payload limit; one more id does not parse.
    std::vector<std::string> full;
    char id[9];
    for (std::size_t i = 0; i < kWakeupMaxIdsPerBatch; ++i) {
        std::snprintf(id, sizeof id, "%08zx", i);
        full.emplace_back(id);
    }
    const std::string payload = start_batch_payload(full);
    CHECK(payload.size() <= kWakeupMaxPayloadBytes);
    CHECK(payload.size() + kInstanceIdChars + 1 > kWakeupMaxPayloadBytes);
    CHECK(parse_start_batch(payload) == full);
    CHECK_FALSE(parse_start_batch(payload + ",00000000"));
}
