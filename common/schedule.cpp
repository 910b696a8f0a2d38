#include "common/schedule.hpp"

#include <algorithm>
#include <cctype>

#include "common/cron.hpp"
#include "common/errors.hpp"

namespace durable::schedule {

const char *to_string(Overlap overlap) noexcept {
    switch (overlap) {
        case Overlap::skip: return "skip";
        case Overlap::allow: return "allow";
        case Overlap::cancel_previous: return "cancel_previous";
    }
    return "skip";
}

std::optional<Overlap> parse_overlap(std::string_view text) noexcept {
    std::string lower;
    if (text.size() > 32) return std::nullopt;
    for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "skip") return Overlap::skip;
    if (lower == "allow") return Overlap::allow;
    if (lower == "cancel_previous") return Overlap::cancel_previous;
    return std::nullopt;
}

void validate_name(const std::string &name) {
    if (name.empty()) throw UserError("Schedule name cannot be empty");
    // Characters, not bytes (UTF-8 continuation bytes do not count).
    std::size_t chars = 0;
    for (unsigned char c : name)
        if ((c & 0xC0) != 0x80) ++chars;
    if (chars > kMaxNameLength) throw UserError("Schedule name exceeds 200 characters");
}

Overlap validate_overlap(const std::string &overlap) {
    if (auto parsed = parse_overlap(overlap)) return *parsed;
    throw UserError("invalid overlap \"" + overlap +
                    "\" for df.schedule(): expected 'skip', 'allow' or 'cancel_previous'");
}

std::optional<TimePoint> next_tick(const std::string &cron_expr, const std::string &timezone, TimePoint after) {
    const auto parsed = cron::Schedule::parse(cron_expr);
    const auto zone = cron::load_zone(timezone);
    return parsed.next_after(after, zone);
}

TickDecision decide_tick(const DueTick &tick, TimePoint now, TimePoint attached_at) {
    TickDecision decision;
    try {
        decision.next_run_at = next_tick(tick.cron_expr, tick.timezone, std::max(tick.due, now));
    } catch (const std::exception &) {
        decision.next_run_at = std::nullopt;
    }
    if (tick.due < attached_at) {
        decision.action = TickAction::missed;
        return decision;
    }
    const Overlap overlap = parse_overlap(tick.overlap).value_or(Overlap::skip);
    if (!tick.previous_live) {
        decision.action = TickAction::run;
        return decision;
    }
    switch (overlap) {
        case Overlap::skip: decision.action = TickAction::skip_overlap; break;
        case Overlap::allow: decision.action = TickAction::run; break;
        case Overlap::cancel_previous:
            decision.action = TickAction::run;
            decision.cancel_previous = true;
            break;
    }
    return decision;
}

}  // namespace durable::schedule
