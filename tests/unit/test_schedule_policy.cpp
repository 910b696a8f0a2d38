// The schedule rules shared by df.schedule and the daemon (common/schedule,
// SPEC §19.4): names, overlap values, the next tick, and the per-tick
// decision (missed ticks are not caught up, overlap policies, no catch-up of
// overdue ticks).
#include "catch_compat.hpp"

#include <chrono>

#include "common/errors.hpp"
#include "common/schedule.hpp"

using namespace durable::schedule;
using durable::UserError;
using std::chrono::seconds;

namespace {

TimePoint at(long long unix_seconds) { return TimePoint{} + seconds(unix_seconds); }

// 2026-12-02 12:00:00 UTC
constexpr long long kNoon = 1796212800;

DueTick tick(const std::string &expr, TimePoint due, const std::string &overlap = "skip", bool live = false) {
    DueTick t;
    t.cron_expr = expr;
    t.timezone = "UTC";
    t.overlap = overlap;
    t.due = due;
    t.previous_live = live;
    return t;
}

}  // namespace

TEST_CASE("schedule names: empty and overlong are refused with the SPEC texts", "[schedule]") {
    CHECK_THROWS_WITH(validate_name(""), "Schedule name cannot be empty");
    CHECK_THROWS_AS(validate_name(""), UserError);
    CHECK_NOTHROW(validate_name("nightly-vacuum"));
    CHECK_NOTHROW(validate_name(std::string(200, 'x')));
    CHECK_THROWS_WITH(validate_name(std::string(201, 'x')), "Schedule name exceeds 200 characters");
    // Characters, not bytes: 200 two-byte characters are fine.
    std::string umlauts;
    for (int i = 0; i < 200; ++i) umlauts += "\xc3\xa4";
    CHECK_NOTHROW(validate_name(umlauts));
}

TEST_CASE("overlap values: three words, case-insensitive, others refused", "[schedule]") {
    CHECK(validate_overlap("skip") == Overlap::skip);
    CHECK(validate_overlap("ALLOW") == Overlap::allow);
    CHECK(validate_overlap("Cancel_Previous") == Overlap::cancel_previous);
    CHECK(std::string(to_string(Overlap::cancel_previous)) == "cancel_previous");
    CHECK_THROWS_WITH(validate_overlap("queue"),
                      "invalid overlap \"queue\" for df.schedule(): expected 'skip', 'allow' or 'cancel_previous'");
    CHECK_THROWS_WITH(validate_overlap(""),
                      "invalid overlap \"\" for df.schedule(): expected 'skip', 'allow' or 'cancel_previous'");
    CHECK_FALSE(parse_overlap(std::string(10000, 'a')).has_value());
}

TEST_CASE("next_tick: strictly after, seconds field, time zones", "[schedule]") {
    CHECK(next_tick("*/1 * * * * *", "UTC", at(kNoon)) == at(kNoon + 1));
    CHECK(next_tick("0 3 * * *", "UTC", at(kNoon)) == at(kNoon + 15 * 3600));
    // 03:00 in Berlin (UTC+1 in December) is 02:00 UTC.
    CHECK(next_tick("0 3 * * *", "Europe/Berlin", at(kNoon)) == at(kNoon + 14 * 3600));
    CHECK_FALSE(next_tick("0 0 30 2 *", "UTC", at(kNoon)).has_value());
    CHECK_THROWS_WITH(next_tick("bad", "UTC", at(kNoon)), Catch::Contains("Invalid cron expression 'bad'"));
    CHECK_THROWS_WITH(next_tick("* * * * *", "Mars/Base", at(kNoon)), "Invalid time zone 'Mars/Base'");
}

TEST_CASE("decide_tick: a tick due after attaching runs once and moves to the next", "[schedule]") {
    const auto attached = at(kNoon - 10);
    const auto d = decide_tick(tick("* * * * *", at(kNoon)), at(kNoon) + std::chrono::milliseconds(3), attached);
    CHECK(d.action == TickAction::run);
    CHECK_FALSE(d.cancel_previous);
    CHECK(d.next_run_at == at(kNoon + 60));
}

TEST_CASE("decide_tick: a tick that came due before attaching is missed, not caught up", "[schedule]") {
    // The daemon was down from before 12:00 until 12:05:30.
    const auto attached = at(kNoon + 330);
    const auto d = decide_tick(tick("* * * * *", at(kNoon)), at(kNoon + 330), attached);
    CHECK(d.action == TickAction::missed);
    // The next future tick, not 12:01.
    CHECK(d.next_run_at == at(kNoon + 360));
}

TEST_CASE("decide_tick: overdue ticks while attached run once, the rest are not run later", "[schedule]") {
    // The daemon was busy for 5 s on an every-second schedule.
    const auto d = decide_tick(tick("*/1 * * * * *", at(kNoon)), at(kNoon + 5), at(kNoon - 100));
    CHECK(d.action == TickAction::run);
    CHECK(d.next_run_at == at(kNoon + 6));
}

TEST_CASE("decide_tick: overlap policies with a live previous run", "[schedule]") {
    const auto attached = at(kNoon - 10);
    const auto now = at(kNoon);
    auto skip = decide_tick(tick("* * * * *", now, "skip", true), now, attached);
    CHECK(skip.action == TickAction::skip_overlap);
    CHECK(skip.next_run_at == at(kNoon + 60));
    auto allow = decide_tick(tick("* * * * *", now, "allow", true), now, attached);
    CHECK(allow.action == TickAction::run);
    CHECK_FALSE(allow.cancel_previous);
    auto cancel = decide_tick(tick("* * * * *", now, "cancel_previous", true), now, attached);
    CHECK(cancel.action == TickAction::run);
    CHECK(cancel.cancel_previous);
    // No live previous run: every policy just runs, nothing to cancel.
    for (const char *overlap : {"skip", "allow", "cancel_previous"}) {
        auto d = decide_tick(tick("* * * * *", now, overlap, false), now, attached);
        CHECK(d.action == TickAction::run);
        CHECK_FALSE(d.cancel_previous);
    }
    // An unknown stored value (written around df.schedule) acts as 'skip'.
    CHECK(decide_tick(tick("* * * * *", now, "bogus", true), now, attached).action == TickAction::skip_overlap);
}

TEST_CASE("decide_tick: a row whose expression no longer parses gets no next tick", "[schedule]") {
    const auto d = decide_tick(tick("not cron", at(kNoon)), at(kNoon), at(kNoon - 1));
    CHECK(d.action == TickAction::run);
    CHECK_FALSE(d.next_run_at.has_value());
}
