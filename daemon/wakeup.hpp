// Wake-ups: the extension sends NOTIFY df_wakeup, '<kind>:<instance_id>' at
// commit of df.start, df.signal and df.cancel (DESIGN.md §2.5).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgd::daemon {

inline constexpr const char *kWakeupChannel = "df_wakeup";

enum class WakeupKind { start, signal, cancel };

struct Wakeup {
    WakeupKind kind;
    std::string instance_id;  // ^[0-9a-f]{8}$
};

// Parses a NOTIFY payload; nullopt for anything malformed (never throws).
std::optional<Wakeup> parse_wakeup(std::string_view payload);

const char *to_string(WakeupKind kind);

}  // namespace pgd::daemon
