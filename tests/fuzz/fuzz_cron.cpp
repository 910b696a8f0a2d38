// Cron (§10.8): parsing, the DSL-time check and the next tick. The input is
// NUL-separated: the expression, a zone name (one of a few real zones when
// the field is one byte, else the text itself) and 8 bytes of start time.
// Properties: only UserError escapes; a next tick is strictly after the
// start, matches the schedule in its zone, and is found again from just
// before it.
#include <cstring>

#include "common/cron.hpp"
#include "fuzz_common.hpp"

namespace {

const char *const kZones[] = {"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                              "Asia/Kathmandu", "Pacific/Apia"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    using namespace durable;
    const auto fields = pgd::fuzz::fields_of(pgd::fuzz::text_of(data, size), 3);
    const std::string &expr = fields[0];
    std::string zone = "UTC";
    if (fields.size() > 1)
        zone = fields[1].size() == 1 ? kZones[static_cast<unsigned char>(fields[1][0]) % std::size(kZones)]
                                     : fields[1];
    // Start times within 1970..2200: cctz handles more, the engine never asks.
    std::int64_t seconds = 1767225600;  // 2026-01-01
    if (fields.size() > 2 && fields[2].size() >= sizeof(std::uint64_t)) {
        std::uint64_t raw;
        std::memcpy(&raw, fields[2].data(), sizeof raw);
        seconds = static_cast<std::int64_t>(raw % 7258118400ULL);
    }
    const cron::TimePoint after{std::chrono::seconds(seconds)};

    pgd::fuzz::allowing_user_errors([&] { cron::validate(expr, zone, after); });
    pgd::fuzz::allowing_user_errors([&] {
        const cron::Schedule schedule = cron::Schedule::parse(expr);
        const cctz::time_zone tz = cron::load_zone(zone);
        const auto next = schedule.next_after(after, tz);
        if (!next) return;
        pgd::fuzz::require(*next > after);
        pgd::fuzz::require(schedule.matches_civil(cctz::convert(*next, tz)));
        pgd::fuzz::require(schedule.next_after(*next - std::chrono::seconds(1), tz) == next);
    });
    return 0;
}
