// Schedules (SPEC.md §19.4): the rules the extension (df.schedule) and the
// daemon (each tick) share — overlap policies, the name check, the next tick —
// and the daemon's pure per-tick decision. Pure C++ on top of common/cron.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace durable::schedule {

using TimePoint = std::chrono::system_clock::time_point;

enum class Overlap { skip, allow, cancel_previous };

// "skip", "allow", "cancel_previous".
const char *to_string(Overlap overlap) noexcept;
// Case-insensitive; nullopt for anything else (never throws).
std::optional<Overlap> parse_overlap(std::string_view text) noexcept;

// Names are at most this many characters (the instance label of every run).
inline constexpr std::size_t kMaxNameLength = 200;

// Throws durable::UserError with the SPEC texts:
//   "Schedule name cannot be empty", "Schedule name exceeds 200 characters",
//   "invalid overlap \"<v>\" for df.schedule(): expected 'skip', 'allow' or 'cancel_previous'".
void validate_name(const std::string &name);
Overlap validate_overlap(const std::string &overlap);

// The first tick of `cron_expr` in `timezone` strictly after `after` (§10.8
// rules), nullopt when none comes within 8 years. Throws durable::UserError
// for a bad expression or zone.
std::optional<TimePoint> next_tick(const std::string &cron_expr, const std::string &timezone, TimePoint after);

// One due schedule as the daemon reads it, locked, in the transaction that
// takes its tick.
struct DueTick {
    std::string cron_expr;
    std::string timezone;
    std::string overlap;           // as stored; an unknown value counts as 'skip'
    TimePoint due;                 // next_run_at: the tick being taken
    bool previous_live = false;    // the last run is pending or running
};

enum class TickAction {
    run,           // start a new instance for `due`
    skip_overlap,  // overlap 'skip' and the previous run is live: no instance
    missed,        // the tick came due before this daemon attached: not caught up
};

struct TickDecision {
    TickAction action = TickAction::missed;
    bool cancel_previous = false;          // cancel the live previous run first
    std::optional<TimePoint> next_run_at;  // the next tick strictly after max(due, now); nullopt: never again
};

// The per-tick policy (SPEC §19.4): a tick that came due before `attached_at`
// (the daemon was down, or another daemon was dying) is missed and not caught
// up; otherwise the overlap policy decides. Either way the schedule moves to
// its first tick after both `due` and `now`, so at most one run is started per
// call and ticks that passed meanwhile are not run later. A schedule whose
// expression or zone no longer parses (rows written around df.schedule) gets
// no next tick.
TickDecision decide_tick(const DueTick &tick, TimePoint now, TimePoint attached_at);

}  // namespace durable::schedule
