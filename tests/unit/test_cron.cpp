// Cron parsing and next-tick search (SPEC.md §10.8) across time zones and DST.
// Instants are written and compared as "YYYY-MM-DD HH:MM:SS +hh:mm" in the
// zone under test, so the offset shows which side of a transition a tick is on.
#include "catch_compat.hpp"

#include <chrono>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include "common/cron.hpp"
#include "common/errors.hpp"

using durable::UserError;
using durable::cron::load_zone;
using durable::cron::Schedule;
using durable::cron::TimePoint;
using durable::cron::validate;

namespace {

constexpr const char *kFormat = "%Y-%m-%d %H:%M:%S %Ez";

// "2026-03-29 01:30:00 +01:00" -> instant; the explicit offset picks one side
// of a DST overlap.
TimePoint instant(const std::string &text) {
    TimePoint tp;
    INFO("instant text: " << text);
    REQUIRE(cctz::parse(kFormat, text, cctz::utc_time_zone(), &tp));
    return tp;
}

std::string format_in(TimePoint tp, const std::string &zone) {
    return cctz::format(kFormat, tp, load_zone(zone));
}

std::string next(const std::string &expr, const std::string &zone, const std::string &after) {
    auto tick = Schedule::parse(expr).next_after(instant(after), load_zone(zone));
    return tick ? format_in(*tick, zone) : "none";
}

// The next `count` ticks, each computed from the previous one, as a daemon
// persisting one tick at a time would.
std::vector<std::string> ticks(const std::string &expr, const std::string &zone,
                               const std::string &after, int count) {
    const Schedule schedule = Schedule::parse(expr);
    const cctz::time_zone tz = load_zone(zone);
    std::vector<std::string> out;
    TimePoint t = instant(after);
    for (int i = 0; i < count; ++i) {
        auto tick = schedule.next_after(t, tz);
        if (!tick) {
            out.push_back("none");
            break;
        }
        out.push_back(format_in(*tick, zone));
        t = *tick;
    }
    return out;
}

// The message of the UserError `f` throws; fails the test if it throws
// anything else or nothing.
template <class F>
std::string user_error_of(F &&f) {
    try {
        f();
    } catch (const UserError &e) {
        CHECK(std::string(e.sqlstate()) == "22023");
        return e.what();
    } catch (const std::exception &e) {
        FAIL("unexpected exception: " << e.what());
    }
    FAIL("no exception thrown");
    return {};
}

std::string parse_error(const std::string &expr) {
    return user_error_of([&] { Schedule::parse(expr); });
}

}  // namespace

// ------------------------------------------------------------------ zones --

TEST_CASE("load_zone accepts IANA names", "[cron]") {
    for (const char *name : {"UTC", "Etc/UTC", "Europe/Berlin", "America/New_York",
                             "Australia/Lord_Howe", "Asia/Kolkata", "America/Argentina/Buenos_Aires",
                             "America/Port-au-Prince", "Etc/GMT+5"}) {
        INFO(name);
        CHECK_NOTHROW(load_zone(name));
    }
    // The zone really is the named one, not cctz's UTC fallback.
    CHECK(format_in(instant("2026-07-01 12:00:00 +00:00"), "Asia/Kolkata") ==
          "2026-07-01 17:30:00 +05:30");
    CHECK(format_in(instant("2026-07-01 12:00:00 +00:00"), "America/New_York") ==
          "2026-07-01 08:00:00 -04:00");
}

TEST_CASE("load_zone rejects unknown names, paths and host-dependent zones", "[cron]") {
    for (const char *name : {"", "Mars/Olympus", "Europe/Berlinn", "Europe/Berlin ", " UTC", "utc",
                             "/etc/localtime", "/usr/share/zoneinfo/UTC", "../zoneinfo/UTC",
                             "Europe/../UTC", "file:UTC", "localtime", "Fixed/UTC+01:00",
                             "Europe", "zone.tab"}) {
        INFO("'" << name << "'");
        CHECK(user_error_of([&] { load_zone(name); }) ==
              std::string("Invalid time zone '") + name + "'");
    }
}

// ---------------------------------------------------------------- parsing --

TEST_CASE("every parse error names its field with an exact message", "[cron]") {
    struct Case {
        const char *expr;
        const char *reason;
    };
    const Case cases[] = {
        {"", "expression is empty"},
        {"   \t ", "expression is empty"},
        {"* * *", "expected 5 or 6 fields, got 3"},
        {"* * * *", "expected 5 or 6 fields, got 4"},
        {"* * * * * * *", "expected 5 or 6 fields, got 7"},
        {"60 * * * *", "minute field: value 60 out of range 0-59"},
        {"* 24 * * *", "hour field: value 24 out of range 0-23"},
        {"* * 0 * *", "day-of-month field: value 0 out of range 1-31"},
        {"* * 32 * *", "day-of-month field: value 32 out of range 1-31"},
        {"* * * 0 *", "month field: value 0 out of range 1-12"},
        {"* * * 13 *", "month field: value 13 out of range 1-12"},
        {"* * * * 8", "day-of-week field: value 8 out of range 0-7"},
        {"60 * * * * *", "second field: value 60 out of range 0-59"},
        {"0 60 * * * *", "minute field: value 60 out of range 0-59"},
        {"99999999999 * * * *", "minute field: value 99999999999 out of range 0-59"},
        {"1-60 * * * *", "minute field: value 60 out of range 0-59"},
        {"*/0 * * * *", "minute field: step 0 out of range 1-60"},
        {"*/61 * * * *", "minute field: step 61 out of range 1-60"},
        {"* */25 * * *", "hour field: step 25 out of range 1-24"},
        {"* * 1-31/0 * *", "day-of-month field: step 0 out of range 1-31"},
        {"* * * */13 *", "month field: step 13 out of range 1-12"},
        {"* * * * */8", "day-of-week field: step 8 out of range 1-7"},
        {"*/0 * * * * *", "second field: step 0 out of range 1-60"},
        {"*/ * * * *", "minute field: invalid step ''"},
        {"*/x * * * *", "minute field: invalid step 'x'"},
        {"*/2/3 * * * *", "minute field: invalid step '2/3'"},
        {"30-10 * * * *", "minute field: reversed range '30-10'"},
        {"* 23-1 * * *", "hour field: reversed range '23-1'"},
        {"* * * DEC-JAN *", "month field: reversed range 'DEC-JAN'"},
        {"* * * * FRI-MON", "day-of-week field: reversed range 'FRI-MON'"},
        {"* * * * 7-0", "day-of-week field: reversed range '7-0'"},
        {"1-2-3 * * * *", "minute field: invalid range '1-2-3'"},
        {"-5 * * * *", "minute field: invalid range '-5'"},
        {"5- * * * *", "minute field: invalid range '5-'"},
        {"*-5 * * * *", "minute field: invalid value '*'"},
        {"abc * * * *", "minute field: invalid value 'abc'"},
        {"1.5 * * * *", "minute field: invalid value '1.5'"},
        {"+5 * * * *", "minute field: invalid value '+5'"},
        {"? * * * *", "minute field: invalid value '?'"},
        {"JAN * * * *", "minute field: invalid value 'JAN'"},
        {"* * L * *", "day-of-month field: invalid value 'L'"},
        {"* * * FOO *", "month field: invalid value 'FOO'"},
        {"* * * MON *", "month field: invalid value 'MON'"},
        {"* * * * MONDAY", "day-of-week field: invalid value 'MONDAY'"},
        {"* * * * JAN", "day-of-week field: invalid value 'JAN'"},
        {"* * * * 5#2", "day-of-week field: invalid value '5#2'"},
        {"1, * * * *", "minute field: empty list element"},
        {",1 * * * *", "minute field: empty list element"},
        {"* 1,,2 * * *", "hour field: empty list element"},
        {"* * * * 1,", "day-of-week field: empty list element"},
        {"x, * * * * *", "second field: invalid value 'x'"},
    };
    for (const Case &c : cases) {
        INFO("expr: '" << c.expr << "'");
        CHECK(parse_error(c.expr) ==
              std::string("Invalid cron expression '") + c.expr + "': " + c.reason);
    }
}

TEST_CASE("valid syntax forms parse", "[cron]") {
    for (const char *expr :
         {"* * * * *", "0 0 1 1 0", "59 23 31 12 7", "*/5 * * * *", "0-59/15 * * * *", "5/15 * * * *",
          "1,2,3-5,*/20 * * * *", "0 0 * jan-MAR,Dec sun-sat", "0 0 * * Mon,wEd,FRI",
          "  0   9\t* * 1-5  ", "0 0 0 * * *", "*/10 * * * * *", "0 0 29 2 *"}) {
        INFO(expr);
        CHECK_NOTHROW(Schedule::parse(expr));
    }
    CHECK(Schedule::parse("  0 9 * * 1-5 ").expression() == "  0 9 * * 1-5 ");
}

// --------------------------------------------------------- basic semantics --

TEST_CASE("next_after is strictly after and successive ticks are consecutive", "[cron]") {
    // On a tick exactly: the next one, never the same.
    CHECK(next("* * * * *", "UTC", "2026-05-04 12:00:00 +00:00") == "2026-05-04 12:01:00 +00:00");
    CHECK(next("* * * * *", "UTC", "2026-05-04 12:00:01 +00:00") == "2026-05-04 12:01:00 +00:00");
    CHECK(next("* * * * *", "UTC", "2026-05-04 12:00:59 +00:00") == "2026-05-04 12:01:00 +00:00");
    CHECK(next("0 12 * * *", "UTC", "2026-05-04 12:00:00 +00:00") == "2026-05-05 12:00:00 +00:00");
    CHECK(next("0 12 * * *", "UTC", "2026-05-04 11:59:59 +00:00") == "2026-05-04 12:00:00 +00:00");

    // Sub-second parts: just before a tick reaches it, just after skips it.
    const Schedule every_minute = Schedule::parse("* * * * *");
    const auto utc = load_zone("UTC");
    const TimePoint noon = instant("2026-05-04 12:00:00 +00:00");
    CHECK(every_minute.next_after(noon - std::chrono::milliseconds(1), utc) == noon);
    CHECK(every_minute.next_after(noon + std::chrono::milliseconds(500), utc) ==
          noon + std::chrono::minutes(1));

    // Two successive `* * * * *` waits end on consecutive minutes, across an
    // hour, a day, a month and a year boundary.
    CHECK(ticks("* * * * *", "UTC", "2026-12-31 23:58:30 +00:00", 4) ==
          std::vector<std::string>{"2026-12-31 23:59:00 +00:00", "2027-01-01 00:00:00 +00:00",
                                   "2027-01-01 00:01:00 +00:00", "2027-01-01 00:02:00 +00:00"});
    TimePoint t = instant("2026-02-28 23:00:00 +00:00");
    for (int i = 0; i < 180; ++i) {
        auto tick = every_minute.next_after(t, utc);
        REQUIRE(tick);
        REQUIRE(*tick - t == std::chrono::minutes(1));
        t = *tick;
    }
}

TEST_CASE("ranges, steps and lists", "[cron]") {
    // a-b/n
    CHECK(ticks("10-30/10 * * * *", "UTC", "2026-05-04 12:00:00 +00:00", 4) ==
          std::vector<std::string>{"2026-05-04 12:10:00 +00:00", "2026-05-04 12:20:00 +00:00",
                                   "2026-05-04 12:30:00 +00:00", "2026-05-04 13:10:00 +00:00"});
    // a/n runs from a to the field's maximum.
    CHECK(ticks("50/5 * * * *", "UTC", "2026-05-04 12:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-05-04 12:50:00 +00:00", "2026-05-04 12:55:00 +00:00",
                                   "2026-05-04 13:50:00 +00:00"});
    // */n starts at the field's minimum: day-of-month 1, 11, 21, 31.
    CHECK(ticks("0 0 */10 * *", "UTC", "2026-01-01 00:00:00 +00:00", 5) ==
          std::vector<std::string>{"2026-01-11 00:00:00 +00:00", "2026-01-21 00:00:00 +00:00",
                                   "2026-01-31 00:00:00 +00:00", "2026-02-01 00:00:00 +00:00",
                                   "2026-02-11 00:00:00 +00:00"});
    // A list mixing a value, a range and a step; duplicates collapse.
    CHECK(ticks("5,10-11,*/30,30 * * * *", "UTC", "2026-05-04 12:00:00 +00:00", 6) ==
          std::vector<std::string>{"2026-05-04 12:05:00 +00:00", "2026-05-04 12:10:00 +00:00",
                                   "2026-05-04 12:11:00 +00:00", "2026-05-04 12:30:00 +00:00",
                                   "2026-05-04 13:00:00 +00:00", "2026-05-04 13:05:00 +00:00"});
    // Hours every 7 from 0: 0, 7, 14, 21, then the next day.
    CHECK(ticks("0 */7 * * *", "UTC", "2026-05-04 00:00:00 +00:00", 4) ==
          std::vector<std::string>{"2026-05-04 07:00:00 +00:00", "2026-05-04 14:00:00 +00:00",
                                   "2026-05-04 21:00:00 +00:00", "2026-05-05 00:00:00 +00:00"});
    // Month steps and a 31st that skips the short months.
    CHECK(ticks("0 0 1 */4 *", "UTC", "2026-02-15 00:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-05-01 00:00:00 +00:00", "2026-09-01 00:00:00 +00:00",
                                   "2027-01-01 00:00:00 +00:00"});
    CHECK(ticks("0 0 31 * *", "UTC", "2026-01-31 00:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-03-31 00:00:00 +00:00", "2026-05-31 00:00:00 +00:00",
                                   "2026-07-31 00:00:00 +00:00"});
    // Once a year.
    CHECK(next("59 23 31 12 *", "UTC", "2026-01-01 00:00:00 +00:00") ==
          "2026-12-31 23:59:00 +00:00");
    CHECK(next("59 23 31 12 *", "UTC", "2026-12-31 23:59:00 +00:00") ==
          "2027-12-31 23:59:00 +00:00");
}

TEST_CASE("month and weekday names are case-insensitive", "[cron]") {
    CHECK(ticks("0 0 1 jan,Jul *", "UTC", "2026-03-01 00:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-07-01 00:00:00 +00:00", "2027-01-01 00:00:00 +00:00",
                                   "2027-07-01 00:00:00 +00:00"});
    CHECK(ticks("0 0 1 JAN,JUL *", "UTC", "2026-03-01 00:00:00 +00:00", 3) ==
          ticks("0 0 1 1,7 *", "UTC", "2026-03-01 00:00:00 +00:00", 3));
    CHECK(ticks("0 0 1 Oct-dec *", "UTC", "2026-03-01 00:00:00 +00:00", 4) ==
          std::vector<std::string>{"2026-10-01 00:00:00 +00:00", "2026-11-01 00:00:00 +00:00",
                                   "2026-12-01 00:00:00 +00:00", "2027-10-01 00:00:00 +00:00"});
    // 2026-05-04 is a Monday.
    CHECK(ticks("0 12 * * Mon-fri", "UTC", "2026-05-06 13:00:00 +00:00", 4) ==
          std::vector<std::string>{"2026-05-07 12:00:00 +00:00", "2026-05-08 12:00:00 +00:00",
                                   "2026-05-11 12:00:00 +00:00", "2026-05-12 12:00:00 +00:00"});
    CHECK(ticks("0 12 * * tue,THU", "UTC", "2026-05-04 00:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-05-05 12:00:00 +00:00", "2026-05-07 12:00:00 +00:00",
                                   "2026-05-12 12:00:00 +00:00"});
    CHECK(ticks("0 0 * DEC SUN", "UTC", "2026-01-01 00:00:00 +00:00", 2) ==
          std::vector<std::string>{"2026-12-06 00:00:00 +00:00", "2026-12-13 00:00:00 +00:00"});
}

TEST_CASE("Sunday is both 0 and 7", "[cron]") {
    const std::vector<std::string> sundays = {"2026-05-10 08:00:00 +00:00",
                                              "2026-05-17 08:00:00 +00:00"};
    CHECK(ticks("0 8 * * 0", "UTC", "2026-05-04 00:00:00 +00:00", 2) == sundays);
    CHECK(ticks("0 8 * * 7", "UTC", "2026-05-04 00:00:00 +00:00", 2) == sundays);
    CHECK(ticks("0 8 * * SUN", "UTC", "2026-05-04 00:00:00 +00:00", 2) == sundays);
    // 5-7 is Friday to Sunday; 0-7 is every day.
    CHECK(ticks("0 8 * * 5-7", "UTC", "2026-05-04 00:00:00 +00:00", 4) ==
          std::vector<std::string>{"2026-05-08 08:00:00 +00:00", "2026-05-09 08:00:00 +00:00",
                                   "2026-05-10 08:00:00 +00:00", "2026-05-15 08:00:00 +00:00"});
    CHECK(ticks("0 8 * * 0-7", "UTC", "2026-05-04 00:00:00 +00:00", 2) ==
          std::vector<std::string>{"2026-05-04 08:00:00 +00:00", "2026-05-05 08:00:00 +00:00"});
    // 6/1 runs Saturday, 7 = Sunday.
    CHECK(ticks("0 8 * * 6/1", "UTC", "2026-05-04 00:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-05-09 08:00:00 +00:00", "2026-05-10 08:00:00 +00:00",
                                   "2026-05-16 08:00:00 +00:00"});
}

TEST_CASE("seconds field", "[cron]") {
    CHECK(ticks("*/15 * * * * *", "UTC", "2026-05-04 12:00:00 +00:00", 5) ==
          std::vector<std::string>{"2026-05-04 12:00:15 +00:00", "2026-05-04 12:00:30 +00:00",
                                   "2026-05-04 12:00:45 +00:00", "2026-05-04 12:01:00 +00:00",
                                   "2026-05-04 12:01:15 +00:00"});
    CHECK(ticks("30 0 12 * * *", "UTC", "2026-05-04 12:00:30 +00:00", 2) ==
          std::vector<std::string>{"2026-05-05 12:00:30 +00:00", "2026-05-06 12:00:30 +00:00"});
    CHECK(ticks("58-59,5 59 23 31 12 *", "UTC", "2026-12-31 23:59:58 +00:00", 3) ==
          std::vector<std::string>{"2026-12-31 23:59:59 +00:00", "2027-12-31 23:59:05 +00:00",
                                   "2027-12-31 23:59:58 +00:00"});
    // "0 <five fields>" is the five-field expression.
    CHECK(ticks("0 */20 * * * *", "UTC", "2026-05-04 12:00:00 +00:00", 3) ==
          ticks("*/20 * * * *", "UTC", "2026-05-04 12:00:00 +00:00", 3));
    // Every second: consecutive seconds.
    CHECK(ticks("* * * * * *", "UTC", "2026-05-04 12:00:58 +00:00", 3) ==
          std::vector<std::string>{"2026-05-04 12:00:59 +00:00", "2026-05-04 12:01:00 +00:00",
                                   "2026-05-04 12:01:01 +00:00"});
}

TEST_CASE("Vixie day rule: both day fields restricted means either", "[cron]") {
    // 13th of the month OR any Friday. 2026-02-13 and 2026-03-13 are Fridays;
    // 2026-04-13 is a Monday.
    CHECK(ticks("0 0 13 * 5", "UTC", "2026-03-14 00:00:00 +00:00", 5) ==
          std::vector<std::string>{"2026-03-20 00:00:00 +00:00", "2026-03-27 00:00:00 +00:00",
                                   "2026-04-03 00:00:00 +00:00", "2026-04-10 00:00:00 +00:00",
                                   "2026-04-13 00:00:00 +00:00"});
    // Names count as restricted too; month still applies to both.
    CHECK(ticks("0 0 1 FEB MON", "UTC", "2026-01-01 00:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-02-01 00:00:00 +00:00", "2026-02-02 00:00:00 +00:00",
                                   "2026-02-09 00:00:00 +00:00"});
    const Schedule either = Schedule::parse("0 0 13 * 5");
    CHECK(either.matches_day(cctz::civil_day(2026, 4, 13)));   // Monday the 13th
    CHECK(either.matches_day(cctz::civil_day(2026, 4, 17)));   // Friday the 17th
    CHECK_FALSE(either.matches_day(cctz::civil_day(2026, 4, 14)));
}

TEST_CASE("Vixie day rule: a starred day field leaves only the other", "[cron]") {
    // Weekdays at 09:00, from Friday 2026-05-08 10:00.
    CHECK(ticks("0 9 * * 1-5", "UTC", "2026-05-08 10:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-05-11 09:00:00 +00:00", "2026-05-12 09:00:00 +00:00",
                                   "2026-05-13 09:00:00 +00:00"});
    // Only the 13th, whatever the weekday.
    CHECK(ticks("0 0 13 * *", "UTC", "2026-03-14 00:00:00 +00:00", 2) ==
          std::vector<std::string>{"2026-04-13 00:00:00 +00:00", "2026-05-13 00:00:00 +00:00"});
    // Only Fridays.
    CHECK(ticks("0 0 * * 5", "UTC", "2026-03-14 00:00:00 +00:00", 2) ==
          std::vector<std::string>{"2026-03-20 00:00:00 +00:00", "2026-03-27 00:00:00 +00:00"});
    // A field *starting* with '*' counts as unrestricted even with a step, as in
    // Vixie cron: then both fields must hold (odd days that are Mondays).
    CHECK(ticks("0 0 */2 * 1", "UTC", "2026-05-01 00:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-05-11 00:00:00 +00:00", "2026-05-25 00:00:00 +00:00",
                                   "2026-06-01 00:00:00 +00:00"});
    // Without the leading '*' the same days are restricted: odd days OR Mondays.
    CHECK(ticks("0 0 1-31/2 * 1", "UTC", "2026-05-01 00:00:00 +00:00", 3) ==
          std::vector<std::string>{"2026-05-03 00:00:00 +00:00", "2026-05-04 00:00:00 +00:00",
                                   "2026-05-05 00:00:00 +00:00"});
}

TEST_CASE("February 29 and expressions that never match", "[cron]") {
    CHECK(next("0 0 29 2 *", "UTC", "2026-01-01 00:00:00 +00:00") == "2028-02-29 00:00:00 +00:00");
    CHECK(next("0 0 29 2 *", "UTC", "2028-02-29 00:00:00 +00:00") == "2032-02-29 00:00:00 +00:00");
    // 2100 is not a leap year: eight years between 2096 and 2104, still found.
    CHECK(next("0 0 29 2 *", "UTC", "2096-02-29 00:00:00 +00:00") == "2104-02-29 00:00:00 +00:00");
    CHECK(next("0 0 29 2 *", "Europe/Berlin", "2096-03-01 00:00:00 +01:00") ==
          "2104-02-29 00:00:00 +01:00");
    // Feb 29 OR a Sunday in February.
    CHECK(next("0 0 29 2 0", "UTC", "2026-01-01 00:00:00 +00:00") == "2026-02-01 00:00:00 +00:00");

    for (const char *never : {"0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30-31 2 *"}) {
        INFO(never);
        CHECK(next(never, "UTC", "2026-01-01 00:00:00 +00:00") == "none");
        CHECK(next(never, "Europe/Berlin", "2026-01-01 00:00:00 +01:00") == "none");
    }
}

TEST_CASE("never-matching expressions parse and validate() rejects them", "[cron]") {
    const TimePoint reference = instant("2026-01-01 00:00:00 +00:00");
    for (const char *never : {"0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"}) {
        INFO(never);
        CHECK_NOTHROW(Schedule::parse(never));
        CHECK(user_error_of([&] { validate(never, "", reference); }) ==
              std::string("Invalid cron expression '") + never +
                  "': no matching time in the next 8 years");
        CHECK(user_error_of([&] { validate(never, "Europe/Berlin"); }) ==
              std::string("Invalid cron expression '") + never +
                  "': no matching time in the next 8 years");
    }
}

TEST_CASE("validate() checks expression, zone and reachability", "[cron]") {
    CHECK_NOTHROW(validate("0 9 * * 1-5", ""));
    CHECK_NOTHROW(validate("0 9 * * 1-5", "Europe/Berlin"));
    CHECK_NOTHROW(validate("*/10 * * * * *", "Australia/Lord_Howe"));
    // Feb 29 from just after 2096's: 2104 is within the window.
    CHECK_NOTHROW(validate("0 0 29 2 *", "", instant("2096-03-01 00:00:00 +00:00")));
    CHECK(user_error_of([] { validate("0 9 * * 1-5", "Nowhere/Land"); }) ==
          "Invalid time zone 'Nowhere/Land'");
    // The expression is checked before the zone.
    CHECK(user_error_of([] { validate("61 * * * *", "Nowhere/Land"); }) ==
          "Invalid cron expression '61 * * * *': minute field: value 61 out of range 0-59");
    CHECK(user_error_of([] { validate("* * *", ""); }) ==
          "Invalid cron expression '* * *': expected 5 or 6 fields, got 3");
}

TEST_CASE("matches_civil tests every field", "[cron]") {
    const Schedule s = Schedule::parse("15 30 9 * * 1-5");
    CHECK(s.matches_civil(cctz::civil_second(2026, 5, 4, 9, 30, 15)));  // Monday
    CHECK_FALSE(s.matches_civil(cctz::civil_second(2026, 5, 4, 9, 30, 16)));
    CHECK_FALSE(s.matches_civil(cctz::civil_second(2026, 5, 4, 9, 31, 15)));
    CHECK_FALSE(s.matches_civil(cctz::civil_second(2026, 5, 4, 10, 30, 15)));
    CHECK_FALSE(s.matches_civil(cctz::civil_second(2026, 5, 3, 9, 30, 15)));  // Sunday
    const Schedule five = Schedule::parse("30 9 * * *");
    CHECK(five.matches_civil(cctz::civil_second(2026, 5, 3, 9, 30, 0)));
    CHECK_FALSE(five.matches_civil(cctz::civil_second(2026, 5, 3, 9, 30, 1)));
}

// ------------------------------------------------------------ time zones --

TEST_CASE("ticks are wall-clock times of the zone", "[cron]") {
    // Weekdays at 09:00 New York: 13:00Z in summer, 14:00Z in winter.
    const auto summer = Schedule::parse("0 9 * * 1-5")
                            .next_after(instant("2026-07-01 00:00:00 +00:00"),
                                        load_zone("America/New_York"));
    REQUIRE(summer);
    CHECK(format_in(*summer, "UTC") == "2026-07-01 13:00:00 +00:00");
    CHECK(next("0 9 * * 1-5", "America/New_York", "2026-12-31 12:00:00 -05:00") ==
          "2027-01-01 09:00:00 -05:00");
    CHECK(format_in(instant("2027-01-01 09:00:00 -05:00"), "UTC") == "2027-01-01 14:00:00 +00:00");
    // Kolkata is +05:30 all year: 09:30 there is 04:00Z.
    CHECK(next("30 9 * * *", "Asia/Kolkata", "2026-01-01 00:00:00 +00:00") ==
          "2026-01-01 09:30:00 +05:30");
    CHECK(next("30 9 * * *", "Asia/Kolkata", "2026-01-01 04:00:00 +00:00") ==
          "2026-01-02 09:30:00 +05:30");
    // Midnight on the 1st, Kolkata: the UTC instant is still the previous day.
    const auto new_year = Schedule::parse("0 0 1 1 *").next_after(
        instant("2026-06-01 00:00:00 +00:00"), load_zone("Asia/Kolkata"));
    REQUIRE(new_year);
    CHECK(format_in(*new_year, "UTC") == "2026-12-31 18:30:00 +00:00");
}

TEST_CASE("Europe/Berlin spring gap: nonexistent local times are skipped", "[cron]") {
    // 2026-03-29 02:00 CET -> 03:00 CEST: 02:00-02:59 do not exist that day.
    CHECK(ticks("30 2 * * *", "Europe/Berlin", "2026-03-28 03:00:00 +01:00", 2) ==
          std::vector<std::string>{"2026-03-30 02:30:00 +02:00", "2026-03-31 02:30:00 +02:00"});
    CHECK(next("0 2 * * *", "Europe/Berlin", "2026-03-28 12:00:00 +01:00") ==
          "2026-03-30 02:00:00 +02:00");
    CHECK(ticks("0 * * * *", "Europe/Berlin", "2026-03-29 00:30:00 +01:00", 3) ==
          std::vector<std::string>{"2026-03-29 01:00:00 +01:00", "2026-03-29 03:00:00 +02:00",
                                   "2026-03-29 04:00:00 +02:00"});
    // 01:45 -> 03:00 is fifteen real minutes.
    CHECK(ticks("*/15 * * * *", "Europe/Berlin", "2026-03-29 01:40:00 +01:00", 2) ==
          std::vector<std::string>{"2026-03-29 01:45:00 +01:00", "2026-03-29 03:00:00 +02:00"});
    CHECK(ticks("59 59 1 * * *", "Europe/Berlin", "2026-03-29 00:00:00 +01:00", 2) ==
          std::vector<std::string>{"2026-03-29 01:59:59 +01:00", "2026-03-30 01:59:59 +02:00"});
    CHECK(ticks("* * * * *", "Europe/Berlin", "2026-03-29 01:58:00 +01:00", 2) ==
          std::vector<std::string>{"2026-03-29 01:59:00 +01:00", "2026-03-29 03:00:00 +02:00"});
    // The same wall time, a different UTC offset either side.
    const auto before = Schedule::parse("0 9 * * *").next_after(
        instant("2026-03-28 00:00:00 +01:00"), load_zone("Europe/Berlin"));
    const auto after = Schedule::parse("0 9 * * *").next_after(*before, load_zone("Europe/Berlin"));
    REQUIRE(after);
    CHECK(*after - *before == std::chrono::hours(23));
}

TEST_CASE("Europe/Berlin autumn overlap: repeated local times fire once, first", "[cron]") {
    // 2026-10-25 03:00 CEST -> 02:00 CET: 02:00-02:59 happen twice.
    CHECK(ticks("30 2 * * *", "Europe/Berlin", "2026-10-24 12:00:00 +02:00", 2) ==
          std::vector<std::string>{"2026-10-25 02:30:00 +02:00", "2026-10-26 02:30:00 +01:00"});
    CHECK(ticks("*/30 * * * *", "Europe/Berlin", "2026-10-25 01:45:00 +02:00", 4) ==
          std::vector<std::string>{"2026-10-25 02:00:00 +02:00", "2026-10-25 02:30:00 +02:00",
                                   "2026-10-25 03:00:00 +01:00", "2026-10-25 03:30:00 +01:00"});
    // Starting inside the second pass: its repeated times already fired.
    CHECK(next("*/30 * * * *", "Europe/Berlin", "2026-10-25 02:10:00 +01:00") ==
          "2026-10-25 03:00:00 +01:00");
    CHECK(next("15 2 * * *", "Europe/Berlin", "2026-10-25 02:20:00 +02:00") ==
          "2026-10-26 02:15:00 +01:00");
    CHECK(next("15 2 * * *", "Europe/Berlin", "2026-10-25 02:10:00 +02:00") ==
          "2026-10-25 02:15:00 +02:00");
    CHECK(next("15 2 * * *", "Europe/Berlin", "2026-10-25 02:10:00 +01:00") ==
          "2026-10-26 02:15:00 +01:00");
    CHECK(next("0 3 * * *", "Europe/Berlin", "2026-10-25 02:50:00 +02:00") ==
          "2026-10-25 03:00:00 +01:00");
    // Consecutive wall-clock minutes, 61 real minutes apart at the fold.
    CHECK(ticks("* * * * *", "Europe/Berlin", "2026-10-25 02:58:00 +02:00", 2) ==
          std::vector<std::string>{"2026-10-25 02:59:00 +02:00", "2026-10-25 03:00:00 +01:00"});
    CHECK(ticks("*/20 * * * * *", "Europe/Berlin", "2026-10-25 02:59:30 +02:00", 3) ==
          std::vector<std::string>{"2026-10-25 02:59:40 +02:00", "2026-10-25 03:00:00 +01:00",
                                   "2026-10-25 03:00:20 +01:00"});
    CHECK(next("*/20 * * * * *", "Europe/Berlin", "2026-10-25 02:59:30 +01:00") ==
          "2026-10-25 03:00:00 +01:00");
}

TEST_CASE("America/New_York transitions", "[cron]") {
    // 2026-03-08 02:00 EST -> 03:00 EDT.
    CHECK(next("0 2 * * *", "America/New_York", "2026-03-07 12:00:00 -05:00") ==
          "2026-03-09 02:00:00 -04:00");
    CHECK(ticks("30 * * * *", "America/New_York", "2026-03-08 01:00:00 -05:00", 2) ==
          std::vector<std::string>{"2026-03-08 01:30:00 -05:00", "2026-03-08 03:30:00 -04:00"});
    // 2026-11-01 02:00 EDT -> 01:00 EST.
    CHECK(ticks("30 1 * * *", "America/New_York", "2026-10-31 12:00:00 -04:00", 2) ==
          std::vector<std::string>{"2026-11-01 01:30:00 -04:00", "2026-11-02 01:30:00 -05:00"});
    CHECK(ticks("0 * * * *", "America/New_York", "2026-11-01 00:30:00 -04:00", 3) ==
          std::vector<std::string>{"2026-11-01 01:00:00 -04:00", "2026-11-01 02:00:00 -05:00",
                                   "2026-11-01 03:00:00 -05:00"});
}

TEST_CASE("Australia/Lord_Howe: thirty-minute DST shifts", "[cron]") {
    // 2026-04-05 02:00 +11:00 -> 01:30 +10:30: 01:30-01:59 happen twice.
    CHECK(ticks("45 1 * * *", "Australia/Lord_Howe", "2026-04-04 12:00:00 +11:00", 2) ==
          std::vector<std::string>{"2026-04-05 01:45:00 +11:00", "2026-04-06 01:45:00 +10:30"});
    CHECK(ticks("*/10 * * * *", "Australia/Lord_Howe", "2026-04-05 01:45:00 +11:00", 3) ==
          std::vector<std::string>{"2026-04-05 01:50:00 +11:00", "2026-04-05 02:00:00 +10:30",
                                   "2026-04-05 02:10:00 +10:30"});
    // 2026-10-04 02:00 +10:30 -> 02:30 +11:00: 02:00-02:29 do not exist.
    CHECK(next("15 2 * * *", "Australia/Lord_Howe", "2026-10-03 12:00:00 +10:30") ==
          "2026-10-05 02:15:00 +11:00");
    CHECK(next("45 2 * * *", "Australia/Lord_Howe", "2026-10-03 12:00:00 +10:30") ==
          "2026-10-04 02:45:00 +11:00");
    CHECK(ticks("*/10 * * * *", "Australia/Lord_Howe", "2026-10-04 01:55:00 +10:30", 2) ==
          std::vector<std::string>{"2026-10-04 02:30:00 +11:00", "2026-10-04 02:40:00 +11:00"});
}

TEST_CASE("extreme instants neither overflow nor crash", "[cron]") {
    const Schedule every_minute = Schedule::parse("* * * * *");
    const auto utc = load_zone("UTC");
    CHECK_FALSE(every_minute.next_after(TimePoint::max(), utc));
    // Past 2262 a tick cannot be a TimePoint: none rather than a wrapped value.
    CHECK_FALSE(Schedule::parse("0 0 1 1 *").next_after(instant("2262-01-01 00:00:00 +00:00"), utc));
    const auto early = every_minute.next_after(TimePoint::min(), utc);
    REQUIRE(early);
    CHECK(*early > TimePoint::min());
    CHECK(*early - TimePoint::min() <= std::chrono::minutes(1));
}

// --------------------------------------------------- brute-force oracles --

namespace {

// Steps real time minute by minute and keeps the first instant whose local
// time matches and is that local time's first occurrence: an independent
// statement of the DST rules for five-field expressions.
std::optional<TimePoint> minute_by_minute_next(const Schedule &schedule, TimePoint after,
                                               const cctz::time_zone &tz, TimePoint horizon) {
    using std::chrono::minutes;
    using std::chrono::seconds;
    for (auto t = std::chrono::floor<minutes>(after) + minutes(1); t <= horizon; t += minutes(1)) {
        const auto at = std::chrono::time_point_cast<seconds>(t);
        const cctz::civil_second local = tz.lookup(at).cs;
        if (!schedule.matches_civil(local)) continue;
        const auto occurrences = tz.lookup(local);
        if (occurrences.kind == cctz::time_zone::civil_lookup::REPEATED && occurrences.pre != at)
            continue;
        return TimePoint(t);
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("next_after agrees with a minute-by-minute search around DST changes", "[cron]") {
    struct Transition {
        const char *zone;
        const char *at;  // the instant of the change
    };
    const Transition transitions[] = {
        {"Europe/Berlin", "2026-03-29 01:00:00 +00:00"},
        {"Europe/Berlin", "2026-10-25 01:00:00 +00:00"},
        {"America/New_York", "2026-03-08 07:00:00 +00:00"},
        {"America/New_York", "2026-11-01 06:00:00 +00:00"},
        {"Australia/Lord_Howe", "2026-04-04 15:00:00 +00:00"},
        {"Australia/Lord_Howe", "2026-10-03 15:30:00 +00:00"},
        {"Asia/Kolkata", "2026-03-29 01:00:00 +00:00"},
        {"UTC", "2026-03-29 01:00:00 +00:00"},
    };
    const char *expressions[] = {"* * * * *",      "*/7 * * * *",   "30 * * * *",
                                 "0,30 1-3 * * *", "15 2 * * *",    "45 1 * * *",
                                 "0 */2 * * *",    "59 23 * * *",   "0 9 * * 1-5",
                                 "10-40/15 0-4 * * 0,1"};
    using namespace std::chrono;
    for (const Transition &transition : transitions) {
        const auto tz = load_zone(transition.zone);
        const TimePoint change = instant(transition.at);
        for (const char *expr : expressions) {
            const Schedule schedule = Schedule::parse(expr);
            // Dense near the change, where the interesting cases are.
            for (TimePoint start = change - hours(6); start < change + hours(6);
                 start += minutes(9) + seconds(13)) {
                const TimePoint horizon = start + hours(24 * 8);
                const auto expected = minute_by_minute_next(schedule, start, tz, horizon);
                const auto actual = schedule.next_after(start, tz);
                INFO(transition.zone << " '" << expr << "' after "
                                     << format_in(start, transition.zone));
                REQUIRE(expected);  // every expression here fires within a week
                REQUIRE(actual);
                REQUIRE(format_in(*actual, transition.zone) ==
                        format_in(*expected, transition.zone));
            }
        }
    }
}

namespace {

// A field generated at random together with the set of values it stands for,
// so parsing and matching are checked against an independent computation.
struct GeneratedField {
    std::string text;
    std::set<int> values;
};

struct FieldShape {
    int min;
    int max;
    int step_max;
    std::vector<std::string> names;  // for min, min+1, ...
};

int uniform(std::mt19937 &rng, int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(rng);
}

GeneratedField generate_field(std::mt19937 &rng, const FieldShape &shape) {
    GeneratedField field;
    auto spell = [&](int value) {
        if (!shape.names.empty() && value - shape.min < static_cast<int>(shape.names.size()) &&
            uniform(rng, 0, 2) == 0) {
            std::string name = shape.names[static_cast<std::size_t>(value - shape.min)];
            if (uniform(rng, 0, 1) == 0) name[1] = static_cast<char>(std::tolower(name[1]));
            return name;
        }
        return std::to_string(value);
    };
    auto add_run = [&](int low, int high, int step) {
        for (int v = low; v <= high; v += step) field.values.insert(v == 7 && shape.max == 7 ? 0 : v);
    };
    const int elements = uniform(rng, 1, 3);
    for (int i = 0; i < elements; ++i) {
        if (i > 0) field.text += ",";
        const int a = uniform(rng, shape.min, shape.max);
        const int b = uniform(rng, a, shape.max);
        const int step = uniform(rng, 1, shape.step_max);
        switch (uniform(rng, 0, 5)) {
        case 0:
            field.text += "*";
            add_run(shape.min, shape.max, 1);
            break;
        case 1:
            field.text += spell(a);
            add_run(a, a, 1);
            break;
        case 2:
            field.text += spell(a) + "-" + spell(b);
            add_run(a, b, 1);
            break;
        case 3:
            field.text += "*/" + std::to_string(step);
            add_run(shape.min, shape.max, step);
            break;
        case 4:
            field.text += spell(a) + "-" + spell(b) + "/" + std::to_string(step);
            add_run(a, b, step);
            break;
        default:
            field.text += spell(a) + "/" + std::to_string(step);
            add_run(a, shape.max, step);
            break;
        }
    }
    return field;
}

struct GeneratedSchedule {
    std::string text;
    GeneratedField second, minute, hour, day_of_month, month, day_of_week;

    bool matches_day(const cctz::civil_day &day) const {
        // 1970-01-04 was a Sunday.
        const auto since_sunday = (day - cctz::civil_day(1970, 1, 4)) % 7;
        const int weekday = static_cast<int>((since_sunday + 7) % 7);
        const bool by_month_day = day_of_month.values.count(day.day()) > 0;
        const bool by_weekday = day_of_week.values.count(weekday) > 0;
        if (month.values.count(day.month()) == 0) return false;
        if (day_of_month.text[0] == '*' || day_of_week.text[0] == '*')
            return by_month_day && by_weekday;
        return by_month_day || by_weekday;
    }

    bool matches(const cctz::civil_second &t) const {
        return matches_day(cctz::civil_day(t)) && hour.values.count(t.hour()) &&
               minute.values.count(t.minute()) && second.values.count(t.second());
    }

    // Day by day through the window, then every listed time of a matching day.
    std::optional<cctz::civil_second> next_after(const cctz::civil_second &start) const {
        const cctz::civil_second limit(start.year() + 8, start.month(), start.day(), start.hour(),
                                       start.minute(), start.second());
        for (cctz::civil_day day(start); day <= cctz::civil_day(limit); ++day) {
            if (!matches_day(day)) continue;
            for (int h : hour.values)
                for (int m : minute.values)
                    for (int s : second.values) {
                        const cctz::civil_second t(day.year(), day.month(), day.day(), h, m, s);
                        if (t > start) return t <= limit ? std::optional(t) : std::nullopt;
                    }
        }
        return std::nullopt;
    }
};

GeneratedSchedule generate_schedule(std::mt19937 &rng) {
    static const FieldShape kSecond{0, 59, 60, {}};
    static const FieldShape kMinute{0, 59, 60, {}};
    static const FieldShape kHour{0, 23, 24, {}};
    static const FieldShape kDayOfMonth{1, 31, 31, {}};
    static const FieldShape kMonth{1, 12, 12, {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                               "AUG", "SEP", "OCT", "NOV", "DEC"}};
    static const FieldShape kDayOfWeek{0, 7, 7, {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}};
    GeneratedSchedule s;
    const bool with_seconds = uniform(rng, 0, 3) == 0;
    s.second = with_seconds ? generate_field(rng, kSecond) : GeneratedField{"0", {0}};
    s.minute = generate_field(rng, kMinute);
    s.hour = generate_field(rng, kHour);
    s.day_of_month = generate_field(rng, kDayOfMonth);
    s.month = generate_field(rng, kMonth);
    s.day_of_week = generate_field(rng, kDayOfWeek);
    s.text = (with_seconds ? s.second.text + " " : std::string()) + s.minute.text + " " +
             s.hour.text + " " + s.day_of_month.text + " " + s.month.text + " " +
             s.day_of_week.text;
    return s;
}

}  // namespace

TEST_CASE("random expressions agree with an independent parser and search (UTC)", "[cron]") {
    std::mt19937 rng(20260329);  // fixed seed: reproducible
    const auto utc = load_zone("UTC");
    int never = 0;
    for (int i = 0; i < 1500; ++i) {
        const GeneratedSchedule generated = generate_schedule(rng);
        const Schedule schedule = Schedule::parse(generated.text);
        const cctz::civil_second start(uniform(rng, 2020, 2040), uniform(rng, 1, 12),
                                       uniform(rng, 1, 31), uniform(rng, 0, 23), uniform(rng, 0, 59),
                                       uniform(rng, 0, 59));
        INFO("'" << generated.text << "' after " << cctz::format(kFormat, utc.lookup(start).pre, utc));

        const auto expected = generated.next_after(start);
        const auto actual = schedule.next_after(TimePoint(utc.lookup(start).pre), utc);
        REQUIRE(expected.has_value() == actual.has_value());
        if (!expected) {
            ++never;
            continue;
        }
        REQUIRE(cctz::format(kFormat, *actual, utc) ==
                cctz::format(kFormat, utc.lookup(*expected).pre, utc));

        // Parsed sets agree with the generator's around the tick and at random.
        for (int probe = 0; probe < 40; ++probe) {
            const cctz::civil_second t =
                probe < 20 ? *expected + uniform(rng, -200000, 200000)
                           : cctz::civil_second(2026, uniform(rng, 1, 12), uniform(rng, 1, 31),
                                                uniform(rng, 0, 23), uniform(rng, 0, 59),
                                                uniform(rng, 0, 59));
            REQUIRE(schedule.matches_civil(t) == generated.matches(t));
        }
    }
    // The generator must exercise the "never" path without dominating.
    CHECK(never < 100);
}
