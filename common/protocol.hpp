// The step protocol between the extension and the daemon: the one definition
// both sides use (DESIGN §2.14). Pure: no PostgreSQL headers, no I/O.
//
// Lock order (docs/ARCHITECTURE.md "Lock order"), for every path:
//   1. a running step's activation row (df._run_step, for the whole step);
//   2. the instance row, FOR NO KEY UPDATE (df._run_step at record time,
//      df.cancel, df.signal, every daemon bookkeeping transaction; the
//      daemon with NOWAIT);
//   3. other activation rows, df.nodes, df._signals.
// The daemon never writes a running step's activation row while it holds an
// instance row: an interrupted step's 'cancelled' record waits for the step's
// end and is written alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace durable::protocol {

// Wake-up payloads (NOTIFY df_wakeup, DESIGN §2.5, §2.12): hints naming
// instances to look at, never instructions. The single kinds are
// '<kind>:<id>' (start, signal, cancel; daemon/wakeup.hpp parses them) and
// 'schedule'. The wake-up relay of the extension (docs/ARCHITECTURE.md
// "Wake-ups are hints") sends the ids of many committed df.start calls in one
// payload, 'starts:<id>,<id>,...', and 'rescan' when its ring overflowed:
// "look at every live instance" (what the daemon does when its own inbox
// overflows).
inline constexpr std::string_view kWakeupStartBatchPrefix = "starts:";
inline constexpr char kWakeupIdSeparator = ',';
inline constexpr std::string_view kWakeupRescan = "rescan";
inline constexpr std::size_t kInstanceIdChars = 8;
// PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
inline constexpr std::size_t kWakeupMaxPayloadBytes = 7999;
// Ids per 'starts:' payload: the prefix, then 8 characters per id and a separator between two.
inline constexpr std::size_t kWakeupMaxIdsPerBatch =
    (kWakeupMaxPayloadBytes - kWakeupStartBatchPrefix.size() + 1) / (kInstanceIdChars + 1);
static_assert(kWakeupStartBatchPrefix.size() + kWakeupMaxIdsPerBatch * (kInstanceIdChars + 1) - 1 <=
              kWakeupMaxPayloadBytes);

// An instance id: 8 lowercase hex digits.
bool is_instance_id(std::string_view id) noexcept;
// 'starts:<id>,...' of 1 to kWakeupMaxIdsPerBatch ids (each is_instance_id).
std::string start_batch_payload(const std::vector<std::string> &ids);
// The ids of a 'starts:' payload, or nullopt when it is not one or is
// malformed anywhere (no id, an empty or bad id, too many ids).
std::optional<std::vector<std::string>> parse_start_batch(std::string_view payload);

// Status words of df.instances, df.nodes and df._activations.
inline constexpr const char *kPending = "pending";
inline constexpr const char *kRunning = "running";
inline constexpr const char *kCompleted = "completed";
inline constexpr const char *kFailed = "failed";
inline constexpr const char *kCancelled = "cancelled";

bool is_terminal(std::string_view status) noexcept;  // completed, failed or cancelled
bool is_live(std::string_view status) noexcept;      // pending or running

// df._run_step's outcome words ({"outcome": ...}).
inline constexpr const char *kOutcomeCompleted = "completed";
inline constexpr const char *kOutcomeFailed = "failed";
inline constexpr const char *kOutcomeCancelled = "cancelled";
inline constexpr const char *kOutcomeDuplicate = "duplicate";
inline constexpr const char *kOutcomeNotRunning = "instance_not_running";

// Error texts that start with a fixed prefix (SPEC §10.2, §13).
inline constexpr const char *kSqlFailedPrefix = "SQL execution failed: ";
inline constexpr const char *kCancelledPrefix = "Cancelled: ";
std::string sql_failed(std::string_view message);
std::string cancelled(std::string_view reason);

// A SIGNAL node's result (SPEC §10.9): {"signal_name":..,"timed_out":..,"data":..};
// `data_json` is the signal's payload as stored (JSON text), "null" on a timeout.
std::string signal_result(std::string_view signal_name, bool timed_out, std::string_view data_json);

// Scope stamps: '<instance>::<execution>' for the root scope of an
// execution, '<parent>::<child root node>::<generation>' for a child scope
// (a branch, a loop iteration).
std::string root_stamp(std::string_view instance_id, std::int64_t execution);
std::string child_stamp(std::string_view parent_stamp, std::string_view child_root_id, std::int64_t generation);
// The execution of a stamp of this instance (its root scope's number), or
// nullopt when the stamp is not of this instance or not well formed.
std::optional<std::int64_t> stamp_execution(std::string_view stamp, std::string_view instance_id);

// A stamp taken apart: its instance, execution and the child scopes below
// the root scope, outermost first. Numbers are 1 to 18 decimal digits.
struct StampScope {
    std::string child_root_id;
    std::int64_t generation = 0;
};
struct Stamp {
    std::string instance_id;
    std::int64_t execution = 0;
    std::vector<StampScope> scopes;
};
// nullopt when `stamp` is not well formed.
std::optional<Stamp> parse_stamp(std::string_view stamp);

// The generation of the child scope of `parent_stamp` rooted at
// `child_root_id` that `stamp` lies in ('<parent>::<child>::<k>' or a scope
// below it), or nullopt when it lies elsewhere.
std::optional<std::int64_t> child_generation(std::string_view stamp, std::string_view parent_stamp,
                                             std::string_view child_root_id);

// The prefix every stamp strictly below `scope` starts with (for SQL's
// left(stamp, n) = prefix: the separator is defined here only).
std::string descendant_prefix(std::string_view scope);

}  // namespace durable::protocol
