#include "common/protocol.hpp"

#include <nlohmann/json.hpp>

namespace durable::protocol {

bool is_terminal(std::string_view status) noexcept {
    return status == kCompleted || status == kFailed || status == kCancelled;
}

bool is_live(std::string_view status) noexcept { return status == kPending || status == kRunning; }

std::string sql_failed(std::string_view message) { return std::string(kSqlFailedPrefix).append(message); }

std::string cancelled(std::string_view reason) { return std::string(kCancelledPrefix).append(reason); }

std::string signal_result(std::string_view signal_name, bool timed_out, std::string_view data_json) {
    return std::string("{\"signal_name\":")
        .append(nlohmann::json(std::string(signal_name)).dump())
        .append(",\"timed_out\":")
        .append(timed_out ? "true" : "false")
        .append(",\"data\":")
        .append(data_json)
        .append("}");
}

bool is_instance_id(std::string_view id) noexcept {
    if (id.size() != kInstanceIdChars) return false;
    for (char c : id)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string start_batch_payload(const std::vector<std::string> &ids) {
    std::string out(kWakeupStartBatchPrefix);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) out += kWakeupIdSeparator;
        out += ids[i];
    }
    return out;
}

std::optional<std::vector<std::string>> parse_start_batch(std::string_view payload) {
    if (payload.substr(0, kWakeupStartBatchPrefix.size()) != kWakeupStartBatchPrefix) return std::nullopt;
    payload.remove_prefix(kWakeupStartBatchPrefix.size());
    // Exactly n ids and n-1 separators: the length says n before anything is allocated.
    if ((payload.size() + 1) % (kInstanceIdChars + 1) != 0) return std::nullopt;
    const std::size_t count = (payload.size() + 1) / (kInstanceIdChars + 1);
    if (count == 0 || count > kWakeupMaxIdsPerBatch) return std::nullopt;
    std::vector<std::string> ids;
    ids.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        const std::string_view id = payload.substr(i * (kInstanceIdChars + 1), kInstanceIdChars);
        if (!is_instance_id(id)) return std::nullopt;
        if (i + 1 < count && payload[i * (kInstanceIdChars + 1) + kInstanceIdChars] != kWakeupIdSeparator)
            return std::nullopt;
        ids.emplace_back(id);
    }
    return ids;
}

namespace {

constexpr std::string_view kSeparator = "::";

// 1 to 18 decimal digits (no sign, no overflow), else nullopt.
std::optional<std::int64_t> stamp_number(std::string_view text) {
    if (text.empty() || text.size() > 18) return std::nullopt;
    std::int64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + (c - '0');
    }
    return value;
}

// The '::'-separated parts of a stamp.
std::vector<std::string_view> stamp_parts(std::string_view stamp) {
    std::vector<std::string_view> parts;
    for (;;) {
        const std::size_t at = stamp.find(kSeparator);
        parts.push_back(stamp.substr(0, at));
        if (at == std::string_view::npos) return parts;
        stamp.remove_prefix(at + kSeparator.size());
    }
}

}  // namespace

std::string root_stamp(std::string_view instance_id, std::int64_t execution) {
    return std::string(instance_id).append(kSeparator).append(std::to_string(execution));
}

std::string child_stamp(std::string_view parent_stamp, std::string_view child_root_id, std::int64_t generation) {
    return descendant_prefix(parent_stamp).append(child_root_id).append(kSeparator).append(
        std::to_string(generation));
}

std::optional<Stamp> parse_stamp(std::string_view stamp) {
    const auto parts = stamp_parts(stamp);
    // instance, execution, then (child root, generation) pairs.
    if (parts.size() < 2 || parts.size() % 2 != 0 || parts[0].empty()) return std::nullopt;
    const auto execution = stamp_number(parts[1]);
    if (!execution) return std::nullopt;
    Stamp parsed;
    parsed.instance_id = std::string(parts[0]);
    parsed.execution = *execution;
    for (std::size_t i = 2; i < parts.size(); i += 2) {
        const auto generation = stamp_number(parts[i + 1]);
        if (parts[i].empty() || !generation) return std::nullopt;
        parsed.scopes.push_back({std::string(parts[i]), *generation});
    }
    return parsed;
}

std::optional<std::int64_t> stamp_execution(std::string_view stamp, std::string_view instance_id) {
    const auto parsed = parse_stamp(stamp);
    if (!parsed || parsed->instance_id != instance_id) return std::nullopt;
    return parsed->execution;
}

std::optional<std::int64_t> child_generation(std::string_view stamp, std::string_view parent_stamp,
                                             std::string_view child_root_id) {
    const std::string prefix = descendant_prefix(parent_stamp).append(child_root_id).append(kSeparator);
    if (stamp.substr(0, prefix.size()) != prefix) return std::nullopt;
    std::string_view rest = stamp.substr(prefix.size());
    const std::size_t end = rest.find(kSeparator);
    return stamp_number(rest.substr(0, end));
}

std::string descendant_prefix(std::string_view scope) { return std::string(scope).append(kSeparator); }

}  // namespace durable::protocol
