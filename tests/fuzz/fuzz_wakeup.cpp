// The daemon's NOTIFY df_wakeup payload parser and the inbox that coalesces
// payloads. The input is NUL-separated payloads. Properties: nothing throws;
// a parsed id is 8 lowercase hex digits; the inbox counts every payload,
// holds only the ids of valid ones, and notes a schedule change ('schedule',
// no id) without counting it as malformed; the wake-up relay's kinds
// (common/protocol.hpp): a 'starts:' batch parses whole or not at all, its
// ids are well formed and it formats back to itself; a 'rescan' empties the
// ids and sets overflow.
#include "common/protocol.hpp"
#include "daemon/wakeup.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    using namespace pgd::daemon;
    const auto payloads = pgd::fuzz::fields_of(pgd::fuzz::text_of(data, size), 64);
    WakeupInbox inbox;
    std::size_t valid = 0;
    std::size_t schedule_changes = 0;
    std::size_t batches = 0;
    std::size_t batch_ids = 0;
    std::size_t rescans = 0;
    for (const auto &payload : payloads) {
        if (payload == kScheduleWakeup) ++schedule_changes;
        if (payload == durable::protocol::kWakeupRescan) ++rescans;
        const auto batch_of = durable::protocol::parse_start_batch(payload);
        if (batch_of) {
            ++batches;
            batch_ids += batch_of->size();
            pgd::fuzz::require(!batch_of->empty() && batch_of->size() <= durable::protocol::kWakeupMaxIdsPerBatch);
            for (const auto &id : *batch_of) pgd::fuzz::require(durable::protocol::is_instance_id(id));
            pgd::fuzz::require(durable::protocol::start_batch_payload(*batch_of) == payload);
            pgd::fuzz::require(!parse_wakeup(payload));
        }
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
    pgd::fuzz::require(batch.malformed == payloads.size() - valid - schedule_changes - batches - rescans);
    pgd::fuzz::require(batch.schedules == (schedule_changes > 0));
    pgd::fuzz::require(batch.rescans == rescans);
    pgd::fuzz::require(batch.ids.size() <= valid + batch_ids);
    pgd::fuzz::require(batch.ids.size() <= WakeupInbox::kMaxIds);
    if (rescans > 0) pgd::fuzz::require(batch.overflow && batch.ids.empty());
    const bool overflow = batch.overflow;
    WakeupInbox merged;
    merged.merge(std::move(batch));
    WakeupBatch again = merged.take();
    pgd::fuzz::require(again.received == payloads.size());
    pgd::fuzz::require(again.schedules == (schedule_changes > 0));
    pgd::fuzz::require(again.rescans == rescans);
    pgd::fuzz::require(again.overflow == overflow);
    return 0;
}
