// Reconnect backoff and wake-up payloads.
#include "catch_compat.hpp"

#include "daemon/backoff.hpp"
#include "daemon/wakeup.hpp"

using namespace pgd::daemon;
using std::chrono::milliseconds;

TEST_CASE("jitter spreads a delay by at most the jitter fraction", "[daemon]") {
    CHECK(apply_jitter(milliseconds(1000), 0.2, 0.0) == milliseconds(800));
    CHECK(apply_jitter(milliseconds(1000), 0.2, 0.5) == milliseconds(1000));
    CHECK(apply_jitter(milliseconds(1000), 0.2, 0.999999) == milliseconds(1200));
    CHECK(apply_jitter(milliseconds(1000), 0.0, 0.9) == milliseconds(1000));
}

TEST_CASE("backoff grows exponentially within jitter bounds up to the cap", "[daemon]") {
    BackoffPolicy policy;
    policy.initial = milliseconds(100);
    policy.multiplier = 2.0;
    policy.max = milliseconds(1000);
    policy.jitter = 0.2;
    Backoff backoff(policy, 42);
    const long expected_base[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (long base : expected_base) {
        const auto delay = backoff.next().count();
        CHECK(delay >= base * 8 / 10);
        CHECK(delay <= base * 12 / 10);
    }
    CHECK(backoff.attempts() == 7);
}

TEST_CASE("backoff delays are jittered, not identical across daemons", "[daemon]") {
    Backoff a(BackoffPolicy{}, 1), b(BackoffPolicy{}, 2);
    bool differ = false;
    for (int i = 0; i < 5; ++i) differ = differ || a.next() != b.next();
    CHECK(differ);
}

TEST_CASE("reset returns to the initial delay", "[daemon]") {
    BackoffPolicy policy;
    policy.initial = milliseconds(100);
    policy.jitter = 0.0;
    Backoff backoff(policy, 7);
    backoff.next();
    backoff.next();
    CHECK(backoff.next() == milliseconds(400));
    backoff.reset();
    CHECK(backoff.attempts() == 0);
    CHECK(backoff.next() == milliseconds(100));
}

TEST_CASE("wake-up payloads: <kind>:<instance_id>", "[daemon]") {
    const auto start = parse_wakeup("start:0123abcd");
    REQUIRE(start);
    CHECK(start->kind == WakeupKind::start);
    CHECK(start->instance_id == "0123abcd");
    CHECK(parse_wakeup("signal:ffffffff")->kind == WakeupKind::signal);
    CHECK(parse_wakeup("cancel:00000000")->kind == WakeupKind::cancel);
    CHECK(std::string(to_string(WakeupKind::cancel)) == "cancel");

    CHECK_FALSE(parse_wakeup(""));
    CHECK_FALSE(parse_wakeup("start"));
    CHECK_FALSE(parse_wakeup("start:0123ABCD"));   // ids are lowercase hex
    CHECK_FALSE(parse_wakeup("start:0123abc"));    // too short
    CHECK_FALSE(parse_wakeup("start:0123abcde"));  // too long
    CHECK_FALSE(parse_wakeup("resume:0123abcd"));
    CHECK_FALSE(parse_wakeup(":0123abcd"));
}
