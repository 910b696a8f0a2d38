// Cron schedules for WAIT_SCHEDULE (SPEC.md §10.8): parsing the expression and
// finding the next tick in an IANA time zone, with DST gaps skipped and DST
// overlaps firing once. Pure C++: the only I/O is cctz reading zoneinfo files.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

namespace durable::cron {

// Ticks have second precision; sub-second parts of inputs are ignored.
using TimePoint = std::chrono::system_clock::time_point;

// How far ahead next_after() looks. Eight years is the longest gap between two
// February 29ths (2096 -> 2104), so every expression that can match at all
// matches within this window, whatever the starting point.
inline constexpr int kSearchYears = 8;

// Loads an IANA zone ("UTC", "Europe/Berlin", ...). Throws durable::UserError
// "Invalid time zone '<name>'" for unknown names, the empty name, paths, and
// names whose meaning depends on the host ("localtime").
cctz::time_zone load_zone(const std::string &name);

class Schedule {
public:
    // Throws durable::UserError "Invalid cron expression '<expr>': <reason>",
    // the reason naming the offending field, e.g.
    // "minute field: value 60 out of range 0-59" or
    // "expected 5 or 6 fields, got 3".
    static Schedule parse(const std::string &expr);

    // The first matching instant strictly after `after`, evaluated in `tz`.
    // A local time that does not exist (DST gap) is skipped; one that occurs
    // twice (DST overlap) fires only at its first occurrence. std::nullopt when
    // nothing matches within kSearchYears.
    std::optional<TimePoint> next_after(TimePoint after, const cctz::time_zone &tz) const;

    // Whether a wall-clock time matches every field (Vixie day rule included).
    bool matches_civil(const cctz::civil_second &local) const;
    // Whether a calendar day matches the month, day-of-month and day-of-week
    // fields under the Vixie rule.
    bool matches_day(const cctz::civil_day &day) const;

    const std::string &expression() const noexcept { return expression_; }

private:
    // One bit per allowed value; bit i stands for value i (days of week 0-6,
    // Sunday = 0, with 7 folded onto 0). 64 bits cover every field.
    using ValueSet = std::uint64_t;

    Schedule() = default;

    // The first wall-clock time >= from that matches, if any is <= limit.
    std::optional<cctz::civil_second> next_civil_match(cctz::civil_second from,
                                                       cctz::civil_second limit) const;

    std::string expression_;
    ValueSet seconds_ = 0;
    ValueSet minutes_ = 0;
    ValueSet hours_ = 0;
    ValueSet days_of_month_ = 0;
    ValueSet months_ = 0;
    ValueSet days_of_week_ = 0;
    // Vixie rule: a day field whose text starts with '*' does not widen the
    // match; the day must then satisfy both fields (which for a plain '*'
    // means only the other one counts). Otherwise either field suffices.
    bool day_of_month_starred_ = false;
    bool day_of_week_starred_ = false;
};

// DSL-time check for df.wait_for_schedule: parses expr, loads tz when it is not
// empty, and rejects expressions that never match ("Invalid cron expression
// '<expr>': no matching time in the next 8 years"), searching from `reference`
// (now by default) in tz, or in UTC when tz is empty.
void validate(const std::string &expr, const std::string &tz_or_empty);
void validate(const std::string &expr, const std::string &tz_or_empty, TimePoint reference);

}  // namespace durable::cron
