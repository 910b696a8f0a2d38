// Cron parsing and next-tick search. The search walks wall-clock time field by
// field (month, day, hour, minute, second), jumping over whole non-matching
// units, and only then maps the candidate to an instant in the zone, where DST
// decides whether it exists once, twice, or not at all.
#include "common/cron.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>
#include <vector>

#include "common/errors.hpp"

namespace durable::cron {

namespace {

using cctz::civil_day;
using cctz::civil_hour;
using cctz::civil_minute;
using cctz::civil_month;
using cctz::civil_second;
using Seconds = std::chrono::seconds;
using SecondsPoint = cctz::time_point<Seconds>;

// ---------------------------------------------------------------- parsing --

// What one field accepts. `step_max` is the number of distinct values, so a
// step that could select at most one value by accident ("*/90" for minutes,
// most likely meant as "every 90 minutes") is rejected instead of misread.
struct FieldSpec {
    const char *name;
    int min;
    int max;
    int step_max;
    const char *const *value_names;  // three-letter names for min.., or nullptr
    int value_name_count;
    bool max_is_min;  // the top value is another spelling of the bottom one
};

constexpr std::array<const char *, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                      "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char *, 7> kWeekdayNames = {"SUN", "MON", "TUE", "WED",
                                                       "THU", "FRI", "SAT"};

constexpr FieldSpec kSecondField{"second", 0, 59, 60, nullptr, 0, false};
constexpr FieldSpec kMinuteField{"minute", 0, 59, 60, nullptr, 0, false};
constexpr FieldSpec kHourField{"hour", 0, 23, 24, nullptr, 0, false};
constexpr FieldSpec kDayOfMonthField{"day-of-month", 1, 31, 31, nullptr, 0, false};
constexpr FieldSpec kMonthField{"month", 1, 12, 12, kMonthNames.data(), 12, false};
// 0 and 7 are both Sunday.
constexpr FieldSpec kDayOfWeekField{"day-of-week", 0, 7, 7, kWeekdayNames.data(), 7, true};

// A problem inside one field; parse() adds the field name and the expression.
struct FieldError {
    std::string reason;
};

[[noreturn]] void fail_expression(const std::string &expr, const std::string &reason) {
    throw UserError("Invalid cron expression '" + expr + "': " + reason);
}

bool all_digits(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Digits as an int, or nullopt when too long to be meaningful (and to fit).
std::optional<int> small_number(std::string_view digits) {
    constexpr std::size_t kMaxDigits = 9;
    if (digits.size() > kMaxDigits) return std::nullopt;
    int value = 0;
    for (char c : digits) value = value * 10 + (c - '0');
    return value;
}

std::string out_of_range(const char *what, std::string_view text, int low, int high) {
    return std::string(what) + " " + std::string(text) + " out of range " + std::to_string(low) +
           "-" + std::to_string(high);
}

int parse_value(const FieldSpec &field, std::string_view text) {
    if (all_digits(text)) {
        auto value = small_number(text);
        if (!value || *value < field.min || *value > field.max)
            throw FieldError{out_of_range("value", text, field.min, field.max)};
        return *value;
    }
    if (field.value_names != nullptr && text.size() == 3) {
        std::string upper(text);
        for (char &c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        for (int i = 0; i < field.value_name_count; ++i)
            if (upper == field.value_names[i]) return field.min + i;
    }
    throw FieldError{"invalid value '" + std::string(text) + "'"};
}

int parse_step(const FieldSpec &field, std::string_view text) {
    if (!all_digits(text)) throw FieldError{"invalid step '" + std::string(text) + "'"};
    auto step = small_number(text);
    if (!step || *step < 1 || *step > field.step_max)
        throw FieldError{out_of_range("step", text, 1, field.step_max)};
    return *step;
}

int bit_for(const FieldSpec &field, int value) {
    return (field.max_is_min && value == field.max) ? field.min : value;
}

// One list element: `*`, `v`, `a-b`, `*/n`, `a-b/n` or `a/n` (a to max).
std::uint64_t parse_element(const FieldSpec &field, std::string_view element) {
    if (element.empty()) throw FieldError{"empty list element"};

    std::string_view range = element;
    int step = 1;
    bool has_step = false;
    if (auto slash = element.find('/'); slash != std::string_view::npos) {
        range = element.substr(0, slash);
        step = parse_step(field, element.substr(slash + 1));
        has_step = true;
    }

    int low = field.min;
    int high = field.max;
    if (range != "*") {
        auto dash = range.find('-');
        if (dash == std::string_view::npos) {
            low = parse_value(field, range);
            // A lone value is itself; with a step it starts a run to the max.
            high = has_step ? field.max : low;
        } else {
            std::string_view first = range.substr(0, dash);
            std::string_view last = range.substr(dash + 1);
            if (first.empty() || last.empty() || last.find('-') != std::string_view::npos)
                throw FieldError{"invalid range '" + std::string(range) + "'"};
            low = parse_value(field, first);
            high = parse_value(field, last);
            if (low > high) throw FieldError{"reversed range '" + std::string(range) + "'"};
        }
    }

    std::uint64_t bits = 0;
    for (int value = low; value <= high; value += step)
        bits |= std::uint64_t{1} << bit_for(field, value);
    return bits;
}

std::uint64_t parse_field(const FieldSpec &field, std::string_view text) {
    std::uint64_t bits = 0;
    std::size_t start = 0;
    while (true) {
        auto comma = text.find(',', start);
        bits |= parse_element(field, text.substr(start, comma - start));
        if (comma == std::string_view::npos) return bits;
        start = comma + 1;
    }
}

std::vector<std::string_view> split_fields(std::string_view expr) {
    std::vector<std::string_view> fields;
    std::size_t pos = 0;
    auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    while (pos < expr.size()) {
        while (pos < expr.size() && is_space(expr[pos])) ++pos;
        std::size_t end = pos;
        while (end < expr.size() && !is_space(expr[end])) ++end;
        if (end > pos) fields.push_back(expr.substr(pos, end - pos));
        pos = end;
    }
    return fields;
}

// ----------------------------------------------------------------- search --

bool has(std::uint64_t set, int value) { return ((set >> value) & 1U) != 0; }

// The smallest member of `set` in [from, max], if any.
std::optional<int> next_member(std::uint64_t set, int from, int max) {
    for (int value = from; value <= max; ++value)
        if (has(set, value)) return value;
    return std::nullopt;
}

// cctz numbers weekdays Monday = 0; cron numbers them Sunday = 0.
int cron_weekday(const civil_day &day) {
    return (static_cast<int>(cctz::get_weekday(day)) + 1) % 7;
}

civil_second civil_of(SecondsPoint instant, const cctz::time_zone &tz) {
    return tz.lookup(instant).cs;
}

}  // namespace

// ----------------------------------------------------------------- public --

cctz::time_zone load_zone(const std::string &name) {
    // cctz maps a name to a file under the zoneinfo directory (or takes an
    // absolute path, or builds fixed offsets from "Fixed/UTC+hh:mm"), so keep
    // to the characters IANA names use: no '.', ':' or leading '/' means no
    // path tricks. "localtime" is a symlink to the host's zone: the extension
    // and the daemon could see different ones, so it is not a zone name here.
    auto iana_char = [](unsigned char c) {
        return std::isalnum(c) || c == '/' || c == '_' || c == '-' || c == '+';
    };
    bool plausible = !name.empty() && name.front() != '/' && name != "localtime" &&
                     std::all_of(name.begin(), name.end(), iana_char);
    cctz::time_zone zone;
    if (!plausible || !cctz::load_time_zone(name, &zone))
        throw UserError("Invalid time zone '" + name + "'");
    return zone;
}

Schedule Schedule::parse(const std::string &expr) {
    auto fields = split_fields(expr);
    if (fields.empty()) fail_expression(expr, "expression is empty");
    if (fields.size() != 5 && fields.size() != 6)
        fail_expression(expr, "expected 5 or 6 fields, got " + std::to_string(fields.size()));

    // With five fields the second is implicitly 0.
    const bool with_seconds = fields.size() == 6;
    const std::size_t first = with_seconds ? 1 : 0;
    struct Target {
        const FieldSpec &spec;
        std::string_view text;
        ValueSet &bits;
    };

    Schedule schedule;
    schedule.expression_ = expr;
    schedule.seconds_ = 1;  // second 0, unless a seconds field says otherwise
    std::vector<Target> targets;
    if (with_seconds) targets.push_back({kSecondField, fields[0], schedule.seconds_});
    targets.push_back({kMinuteField, fields[first], schedule.minutes_});
    targets.push_back({kHourField, fields[first + 1], schedule.hours_});
    targets.push_back({kDayOfMonthField, fields[first + 2], schedule.days_of_month_});
    targets.push_back({kMonthField, fields[first + 3], schedule.months_});
    targets.push_back({kDayOfWeekField, fields[first + 4], schedule.days_of_week_});

    for (const Target &target : targets) {
        try {
            target.bits = parse_field(target.spec, target.text);
        } catch (const FieldError &error) {
            fail_expression(expr, std::string(target.spec.name) + " field: " + error.reason);
        }
    }
    schedule.day_of_month_starred_ = fields[first + 2].front() == '*';
    schedule.day_of_week_starred_ = fields[first + 4].front() == '*';
    return schedule;
}

bool Schedule::matches_day(const civil_day &day) const {
    if (!has(months_, day.month())) return false;
    bool by_month_day = has(days_of_month_, day.day());
    bool by_weekday = has(days_of_week_, cron_weekday(day));
    if (day_of_month_starred_ || day_of_week_starred_) return by_month_day && by_weekday;
    return by_month_day || by_weekday;
}

bool Schedule::matches_civil(const civil_second &local) const {
    return matches_day(civil_day(local)) && has(hours_, local.hour()) &&
           has(minutes_, local.minute()) && has(seconds_, local.second());
}

std::optional<civil_second> Schedule::next_civil_match(civil_second from,
                                                       civil_second limit) const {
    civil_second t = from;
    while (t <= limit) {
        if (!has(months_, t.month())) {
            auto month = next_member(months_, t.month() + 1, 12);
            t = month ? civil_second(t.year(), *month, 1, 0, 0, 0)
                      : civil_second(civil_month(t.year() + 1, 1));
            continue;
        }
        const civil_day day(t);
        if (!matches_day(day)) {
            t = civil_second(day + 1);
            continue;
        }
        auto hour = next_member(hours_, t.hour(), 23);
        if (!hour) {
            t = civil_second(day + 1);
            continue;
        }
        if (*hour != t.hour()) t = civil_second(t.year(), t.month(), t.day(), *hour, 0, 0);
        auto minute = next_member(minutes_, t.minute(), 59);
        if (!minute) {
            t = civil_second(civil_hour(t) + 1);
            continue;
        }
        if (*minute != t.minute())
            t = civil_second(t.year(), t.month(), t.day(), t.hour(), *minute, 0);
        auto second = next_member(seconds_, t.second(), 59);
        if (!second) {
            t = civil_second(civil_minute(t) + 1);
            continue;
        }
        t = civil_second(t.year(), t.month(), t.day(), t.hour(), t.minute(), *second);
        if (t > limit) break;
        return t;
    }
    return std::nullopt;
}

std::optional<TimePoint> Schedule::next_after(TimePoint after, const cctz::time_zone &tz) const {
    const SecondsPoint after_s = std::chrono::floor<Seconds>(after);
    const civil_second start = civil_of(after_s, tz);
    const civil_second limit(start.year() + kSearchYears, start.month(), start.day(), start.hour(),
                             start.minute(), start.second());
    // TimePoint counts nanoseconds and ends in 2262; a tick beyond that cannot
    // be represented.
    const SecondsPoint representable_max = std::chrono::floor<Seconds>(TimePoint::max());

    // Wall-clock times at or before `start` never qualify: each one either is
    // `after` itself or first occurred before it.
    civil_second from = start + 1;
    while (auto candidate = next_civil_match(from, limit)) {
        const auto found = tz.lookup(*candidate);
        std::optional<SecondsPoint> tick;
        switch (found.kind) {
        case cctz::time_zone::civil_lookup::UNIQUE:
            if (found.pre > after_s) tick = found.pre;
            break;
        case cctz::time_zone::civil_lookup::SKIPPED:
            // Clocks jumped over the whole gap: resume where they landed.
            from = civil_of(found.trans, tz);
            break;
        case cctz::time_zone::civil_lookup::REPEATED:
            // `pre` is the first occurrence. If that is already past, `after`
            // lies in the second pass of this overlap, so every remaining
            // repeated time has had its turn: resume after the overlap.
            if (found.pre > after_s) tick = found.pre;
            else from = civil_of(found.trans - Seconds(1), tz) + 1;
            break;
        }
        if (tick) {
            if (*tick > representable_max) return std::nullopt;
            return TimePoint(std::chrono::duration_cast<TimePoint::duration>(tick->time_since_epoch()));
        }
        from = std::max(from, *candidate + 1);  // always move forward
    }
    return std::nullopt;
}

void validate(const std::string &expr, const std::string &tz_or_empty) {
    validate(expr, tz_or_empty, std::chrono::system_clock::now());
}

void validate(const std::string &expr, const std::string &tz_or_empty, TimePoint reference) {
    const Schedule schedule = Schedule::parse(expr);
    const cctz::time_zone zone = tz_or_empty.empty() ? cctz::utc_time_zone() : load_zone(tz_or_empty);
    if (!schedule.next_after(reference, zone))
        fail_expression(expr, "no matching time in the next " + std::to_string(kSearchYears) + " years");
}

}  // namespace durable::cron
