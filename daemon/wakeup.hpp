// Wake-ups: the extension sends NOTIFY df_wakeup, '<kind>:<instance_id>' at
// commit of df.start, df.signal and df.cancel (DESIGN.md §2.5), and
// 'schedule' at commit of df.schedule and its siblings. df.start's ids
// usually come through the extension's wake-up relay instead, many in one
// 'starts:<id>,<id>,...' payload, or 'rescan' when its ring overflowed
// (the payload formats are defined in common/protocol.hpp).
//
// Anyone who can connect can NOTIFY any channel with any payload (DESIGN
// §2.12), so a payload is only a hint naming an instance to look at: the
// orchestrator reads that instance's committed row and acts on the row, never
// on the payload's kind. WakeupInbox coalesces payloads into a bounded set of
// instance ids, so a flood of forged payloads costs bounded memory, and the
// orchestrator looks them up in one statement per batch.
#pragma once

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace pgd::daemon {

inline constexpr const char *kWakeupChannel = "df_wakeup";
// The payload of every schedule change (no id: the daemon reads the schedules again).
inline constexpr std::string_view kScheduleWakeup = "schedule";

enum class WakeupKind { start, signal, cancel };

struct Wakeup {
    WakeupKind kind;
    std::string instance_id;  // ^[0-9a-f]{8}$
};

// Parses a single-kind NOTIFY payload ('<kind>:<id>'); nullopt for anything
// else (never throws).
std::optional<Wakeup> parse_wakeup(std::string_view payload);

const char *to_string(WakeupKind kind);

// The wake-ups received since the last take(): distinct instance ids, at most
// kMaxIds of them; beyond that only `overflow` is set and the receiver should
// reconcile everything (a rescan) instead of the ids.
struct WakeupBatch {
    std::set<std::string> ids;
    bool overflow = false;
    std::size_t malformed = 0;  // payloads that name no instance
    std::string malformed_sample;  // the first of them, cut to 64 bytes (for the log)
    std::size_t received = 0;   // payloads in all
    bool schedules = false;     // 'schedule': a schedule changed (SPEC §19.4), read them again
    std::size_t rescans = 0;    // 'rescan' payloads (each also sets overflow)

    bool empty() const noexcept { return ids.empty() && !overflow && malformed == 0 && !schedules; }
};

class WakeupInbox {
public:
    static constexpr std::size_t kMaxIds = 10000;

    // Notes one payload ('<kind>:<id>', 'starts:<ids>', 'rescan' or 'schedule';
    // anything else counts as malformed); never throws beyond std::bad_alloc,
    // never grows past kMaxIds ids.
    void add(std::string_view payload);
    // Folds in a batch taken elsewhere (same bound).
    void merge(WakeupBatch batch);
    WakeupBatch take();
    bool empty() const noexcept { return batch_.empty(); }

private:
    void add_id(std::string id);
    // From now on the batch means "look at every live instance": the ids
    // noted so far are covered and dropped.
    void look_at_everything();
    WakeupBatch batch_;
};

}  // namespace pgd::daemon
