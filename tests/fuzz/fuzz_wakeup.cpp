// The daemon's NOTIFY df_wakeup payload parser and the inbox that coalesces
// payloads. The input is NUL-separated payloads. Properties: nothing throws;
// a parsed id is 8 lowercase hex digits; the inbox counts every payload,
// holds only the ids of valid ones, and notes a schedule change ('schedule',
// no id) without counting it as malformed.
#include "daemon/wakeup.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    using namespace pgd::daemon;
    const auto payloads = pgd::fuzz::fields_of(pgd::fuzz::text_of(data, size), 64);
    WakeupInbox inbox;
    std::size_t valid = 0;
    std::size_t schedule_changes = 0;
    for (const auto &payload : payloads) {
        if (payload == kScheduleWakeup) ++schedule_changes;
        const auto wakeup = parse_wakeup(payload);
        if (wakeup) {
            ++valid;
            pgd::fuzz::require(wakeup->instance_id.size() == 8);
            for (char c : wakeup->instance_id)
                pgd::fuzz::require((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
            (void)to_string(wakeup->kind);
        }
        inbox.add(payload);
    }
    WakeupBatch batch = inbox.take();
    pgd::fuzz::require(batch.received == payloads.size());
    pgd::fuzz::require(batch.malformed == payloads.size() - valid - schedule_changes);
    pgd::fuzz::require(batch.schedules == (schedule_changes > 0));
    pgd::fuzz::require(batch.ids.size() <= valid);
    WakeupInbox merged;
    merged.merge(std::move(batch));
    WakeupBatch again = merged.take();
    pgd::fuzz::require(again.received == payloads.size());
    pgd::fuzz::require(again.schedules == (schedule_changes > 0));
    return 0;
}
