#include "daemon/run_step_outcome.hpp"

#include <cstddef>
#include <optional>

#include "common/json_text.hpp"
#include "common/protocol.hpp"

namespace pgd::daemon {

StepResult malformed_outcome(const std::string &outcome) {
    StepResult bad;
    bad.kind = StepResult::Kind::failed;
    bad.recorded = false;
    // At most 200 bytes of it, cut before a UTF-8 continuation byte: the
    // error is stored, and PostgreSQL refuses half a character.
    std::size_t shown = 200;
    if (outcome.size() > shown) {
        while (shown > 0 && (static_cast<unsigned char>(outcome[shown]) & 0xC0) == 0x80) --shown;
    }
    bad.error = durable::protocol::sql_failed(
        "unexpected df._run_step outcome: " + (outcome.size() > shown ? outcome.substr(0, shown) + "..." : outcome));
    return bad;
}

// Every field is checked for presence and type: an outcome that does not
// have the shape df._run_step writes fails that step (recorded by the
// orchestrator), never the daemon.
StepResult parse_run_step_outcome(const std::string &outcome) {
    using durable::JsonText;
    StepResult result;
    const auto malformed = [&outcome] { return malformed_outcome(outcome); };
    const auto json = JsonText::parse(outcome);
    if (!json || !json->is_object()) return malformed();
    const auto string_of = [&](const char *key) -> std::optional<std::string> {
        const auto member = json->member(key);
        if (!member || member->kind() != JsonText::Kind::String) return std::nullopt;
        return member->string();
    };
    // A string, or "" for null or absent; nullopt: any other type.
    const auto optional_string_of = [&](const char *key) -> std::optional<std::string> {
        const auto member = json->member(key);
        if (!member || member->is_null()) return std::string();
        if (member->kind() != JsonText::Kind::String) return std::nullopt;
        return member->string();
    };
    // The {"rows":[...],"row_count":N} result, as its exact text.
    const auto rows_of = [&](const char *key) -> std::optional<std::string> {
        const auto member = json->member(key);
        if (!member || !member->rows()) return std::nullopt;
        const auto count = member->member("row_count");
        if (!count || count->kind() != JsonText::Kind::Number) return std::nullopt;
        return std::string(member->text());  // exact text: column order, number digits
    };
    const auto name = string_of("outcome");
    if (!name) return malformed();
    if (*name == "completed") {
        const auto rows = rows_of("result");
        if (!rows) return malformed();
        result.kind = StepResult::Kind::completed;
        result.result = *rows;
    } else if (*name == "failed" || *name == "cancelled") {
        const auto error = string_of("error");
        if (!error) return malformed();
        result.kind = *name == "failed" ? StepResult::Kind::failed : StepResult::Kind::cancelled;
        result.error = *error;
    } else if (*name == "duplicate") {
        const auto status = string_of("status");
        if (!status) return malformed();
        result.kind = StepResult::Kind::duplicate;
        result.status = *status;
        if (*status == "completed") {
            const auto rows = rows_of("result");
            if (!rows) return malformed();
            result.result = *rows;
        } else if (*status == "failed" || *status == "cancelled") {
            const auto error = optional_string_of("error");
            if (!error) return malformed();
            result.error = *error;
        } else {
            return malformed();
        }
    } else if (*name == "instance_not_running") {
        const auto status = optional_string_of("status");
        if (!status) return malformed();
        result.kind = StepResult::Kind::instance_not_running;
        result.status = *status;
    } else {
        return malformed();
    }
    return result;
}

}  // namespace pgd::daemon
