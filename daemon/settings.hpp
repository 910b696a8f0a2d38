// The pg_durable.* settings of SPEC.md §3 as the daemon sees them. They live in
// postgresql.conf and are read from the server (SHOW), so one place configures
// both parts. Postmaster-context settings take effect for the daemon only when
// it restarts; a changed one found on reload is reported and ignored.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pgd::daemon {

struct ServerSettings {
    std::string database = "postgres";
    std::string worker_role;
    bool launch_daemon = true;
    std::string daemon_path;
    int max_user_connections = 10;
    int execution_acquire_timeout_s = 30;
    bool enable_superuser_instances = false;
    int list_instances_max_limit = 1000;
    int retention_days = 30;
    int retention_max_instances = 10000;
    int history_executions = 10;
    int loop_min_interval_ms = 1000;
    std::string cron_timezone = "UTC";
    bool http_enabled = false;
    std::string http_allowed_hosts;
    bool http_allow_private_networks = false;
    int http_max_attempts = 3;
    int http_max_response_bytes = 10 * 1024 * 1024;
    int max_http_concurrency = 64;
    int max_management_connections = 6;
    int max_duroxide_connections = 10;
};

// Orchestrator connections the daemon needs at least: one for LISTEN and the
// orchestrator lock, one for state (SPEC.md §3).
inline constexpr int kMinDuroxideConnections = 2;

enum class SettingContext { postmaster, sighup, suset };
// Base unit of an integer setting; SHOW prints it with a PostgreSQL unit suffix.
enum class SettingUnit { none, seconds, milliseconds, bytes };

struct SettingSpec {
    const char *name;  // full GUC name, e.g. "pg_durable.retention_days"
    SettingContext context;
    SettingUnit unit;
    std::variant<int ServerSettings::*, bool ServerSettings::*, std::string ServerSettings::*> field;
};

// Every pg_durable.* setting, in SPEC.md §3 order.
const std::vector<SettingSpec> &setting_specs();

// Parses SHOW output for an integer setting into its base unit: "10MB" -> bytes,
// "1min" -> seconds, "1s" -> milliseconds, "42" -> 42. Throws std::invalid_argument.
long long parse_int_setting(std::string_view shown, SettingUnit unit);
// on/off/true/false/yes/no/1/0 (any case). Throws std::invalid_argument.
bool parse_bool_setting(std::string_view shown);

// Builds settings from SHOW values (name -> value; nullopt = unknown to the
// server). Missing or malformed values keep their defaults and are described
// in `problems`.
ServerSettings settings_from_shown(const std::map<std::string, std::optional<std::string>> &shown,
                                   std::vector<std::string> &problems);

// A setting's value as text, for log lines.
std::string format_setting(const ServerSettings &settings, const SettingSpec &spec);

struct SettingChange {
    const SettingSpec *spec;
    std::string old_value;
    std::string new_value;
};

std::vector<SettingChange> diff_settings(const ServerSettings &before, const ServerSettings &after);

// Result of a reload: the settings to use and what changed. Postmaster-context
// changes are kept at their old values and listed in `ignored`.
struct ReloadOutcome {
    ServerSettings effective;
    std::vector<SettingChange> applied;
    std::vector<SettingChange> ignored;
};
ReloadOutcome reload_settings(const ServerSettings &current, const ServerSettings &shown);

}  // namespace pgd::daemon
