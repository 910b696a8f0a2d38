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

std::string root_stamp(std::string_view instance_id, std::int64_t execution) {
    return std::string(instance_id).append("::").append(std::to_string(execution));
}

std::string child_stamp(std::string_view parent_stamp, std::string_view child_root_id, std::int64_t generation) {
    return std::string(parent_stamp).append("::").append(child_root_id).append("::").append(
        std::to_string(generation));
}

std::optional<std::int64_t> stamp_execution(std::string_view stamp, std::string_view instance_id) {
    if (stamp.size() < instance_id.size() + 3 || stamp.substr(0, instance_id.size()) != instance_id ||
        stamp.substr(instance_id.size(), 2) != "::")
        return std::nullopt;
    const std::string_view rest = stamp.substr(instance_id.size() + 2);
    std::int64_t value = 0;
    std::size_t i = 0;
    for (; i < rest.size() && rest[i] >= '0' && rest[i] <= '9'; ++i) {
        if (i == 18) return std::nullopt;  // would overflow
        value = value * 10 + (rest[i] - '0');
    }
    if (i == 0 || (i < rest.size() && rest.substr(i, 2) != "::")) return std::nullopt;
    return value;
}

}  // namespace durable::protocol
