#include "daemon/wakeup.hpp"

namespace pgd::daemon {

namespace {

bool is_instance_id(std::string_view id) {
    if (id.size() != 8) return false;
    for (char c : id)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace

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
        batch_.overflow = true;
        batch_.ids.clear();  // a rescan covers them all
        return;
    }
    batch_.ids.insert(std::move(id));
}

void WakeupInbox::add(std::string_view payload) {
    ++batch_.received;
    if (payload == kScheduleWakeup) {
        batch_.schedules = true;
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
    if (batch.overflow) {
        batch_.overflow = true;
        batch_.ids.clear();
    }
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
