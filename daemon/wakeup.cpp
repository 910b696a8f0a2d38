#include "daemon/wakeup.hpp"

#include "common/protocol.hpp"

namespace pgd::daemon {

using durable::protocol::is_instance_id;

std::optional<Wakeup> parse_wakeup(std::string_view payload) {
    const auto colon = payload.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    const auto kind_text = payload.substr(0, colon);
    const auto id = payload.substr(colon + 1);
    if (!is_instance_id(id)) return std::nullopt;
    WakeupKind kind;
    if (kind_text == "start")
        kind = WakeupKind::start;
    else if (kind_text == "signal")
        kind = WakeupKind::signal;
    else if (kind_text == "cancel")
        kind = WakeupKind::cancel;
    else
        return std::nullopt;
    return Wakeup{kind, std::string(id)};
}

void WakeupInbox::add_id(std::string id) {
    if (batch_.overflow) return;
    if (batch_.ids.size() >= kMaxIds && !batch_.ids.count(id)) {
        look_at_everything();
        return;
    }
    batch_.ids.insert(std::move(id));
}

void WakeupInbox::look_at_everything() {
    batch_.overflow = true;
    batch_.ids.clear();  // a rescan covers them all
}

void WakeupInbox::add(std::string_view payload) {
    ++batch_.received;
    if (payload == kScheduleWakeup) {
        batch_.schedules = true;
        return;
    }
    // The wake-up relay's kinds (common/protocol.hpp): its ring overflowed,
    // or the ids of many committed starts. Either is a hint like any other:
    // a rescan reads every live instance's row, an id costs one index probe.
    if (payload == durable::protocol::kWakeupRescan) {
        ++batch_.rescans;
        look_at_everything();
        return;
    }
    if (auto ids = durable::protocol::parse_start_batch(payload)) {
        for (auto &id : *ids) add_id(std::move(id));
        return;
    }
    const auto wakeup = parse_wakeup(payload);
    if (!wakeup) {
        if (batch_.malformed++ == 0) batch_.malformed_sample = std::string(payload.substr(0, 64));
        return;
    }
    add_id(wakeup->instance_id);
}

void WakeupInbox::merge(WakeupBatch batch) {
    batch_.received += batch.received;
    if (batch_.malformed == 0) batch_.malformed_sample = std::move(batch.malformed_sample);
    batch_.malformed += batch.malformed;
    batch_.schedules = batch_.schedules || batch.schedules;
    batch_.rescans += batch.rescans;
    if (batch.overflow) look_at_everything();
    for (const auto &id : batch.ids) add_id(id);
}

WakeupBatch WakeupInbox::take() {
    WakeupBatch out = std::move(batch_);
    batch_ = WakeupBatch{};
    return out;
}

const char *to_string(WakeupKind kind) {
    switch (kind) {
        case WakeupKind::start: return "start";
        case WakeupKind::signal: return "signal";
        case WakeupKind::cancel: return "cancel";
    }
    return "unknown";
}

}  // namespace pgd::daemon
