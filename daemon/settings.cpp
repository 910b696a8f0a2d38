#include "daemon/settings.hpp"

#include <cctype>
#include <limits>
#include <stdexcept>

namespace pgd::daemon {

const std::vector<SettingSpec> &setting_specs() {
    using S = ServerSettings;
    using C = SettingContext;
    using U = SettingUnit;
    static const std::vector<SettingSpec> specs = {
        {"pg_durable.database", C::postmaster, U::none, &S::database},
        {"pg_durable.worker_role", C::postmaster, U::none, &S::worker_role},
        {"pg_durable.launch_daemon", C::postmaster, U::none, &S::launch_daemon},
        {"pg_durable.daemon_path", C::postmaster, U::none, &S::daemon_path},
        {"pg_durable.max_user_connections", C::postmaster, U::none, &S::max_user_connections},
        {"pg_durable.execution_acquire_timeout", C::postmaster, U::seconds, &S::execution_acquire_timeout_s},
        {"pg_durable.enable_superuser_instances", C::postmaster, U::none, &S::enable_superuser_instances},
        {"pg_durable.list_instances_max_limit", C::suset, U::none, &S::list_instances_max_limit},
        {"pg_durable.retention_days", C::sighup, U::none, &S::retention_days},
        {"pg_durable.retention_max_instances", C::sighup, U::none, &S::retention_max_instances},
        {"pg_durable.history_executions", C::sighup, U::none, &S::history_executions},
        {"pg_durable.loop_min_interval_ms", C::sighup, U::milliseconds, &S::loop_min_interval_ms},
        {"pg_durable.cron_timezone", C::sighup, U::none, &S::cron_timezone},
        {"pg_durable.http_enabled", C::sighup, U::none, &S::http_enabled},
        {"pg_durable.http_allowed_hosts", C::sighup, U::none, &S::http_allowed_hosts},
        {"pg_durable.http_allow_private_networks", C::sighup, U::none, &S::http_allow_private_networks},
        {"pg_durable.http_max_attempts", C::sighup, U::none, &S::http_max_attempts},
        {"pg_durable.http_max_response_bytes", C::sighup, U::bytes, &S::http_max_response_bytes},
        {"pg_durable.max_http_concurrency", C::sighup, U::none, &S::max_http_concurrency},
        {"pg_durable.max_management_connections", C::postmaster, U::none, &S::max_management_connections},
        {"pg_durable.max_duroxide_connections", C::postmaster, U::none, &S::max_duroxide_connections},
    };
    return specs;
}

namespace {

struct UnitFactor {
    const char *suffix;
    long long numerator;    // value * numerator / denominator = base units
    long long denominator;
};

// PostgreSQL's unit tables (guc.c): memory in powers of 1024, time exact.
const UnitFactor kBytes[] = {{"B", 1, 1},
                             {"kB", 1024LL, 1},
                             {"MB", 1024LL * 1024, 1},
                             {"GB", 1024LL * 1024 * 1024, 1},
                             {"TB", 1024LL * 1024 * 1024 * 1024, 1}};
const UnitFactor kSeconds[] = {{"us", 1, 1000000}, {"ms", 1, 1000}, {"s", 1, 1},
                               {"min", 60, 1},     {"h", 3600, 1},  {"d", 86400, 1}};
const UnitFactor kMilliseconds[] = {{"us", 1, 1000}, {"ms", 1, 1},         {"s", 1000, 1},
                                    {"min", 60000, 1}, {"h", 3600000, 1}, {"d", 86400000, 1}};

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

long long parse_int_setting(std::string_view shown, SettingUnit unit) {
    std::size_t i = 0;
    while (i < shown.size() && std::isspace(static_cast<unsigned char>(shown[i]))) ++i;
    const std::size_t start = i;
    if (i < shown.size() && (shown[i] == '-' || shown[i] == '+')) ++i;
    const std::size_t digits = i;
    while (i < shown.size() && std::isdigit(static_cast<unsigned char>(shown[i]))) ++i;
    if (i == digits) throw std::invalid_argument("not an integer: '" + std::string(shown) + "'");
    long long value = 0;
    try {
        value = std::stoll(std::string(shown.substr(start, i - start)));
    } catch (const std::out_of_range &) {
        throw std::invalid_argument("integer out of range: '" + std::string(shown) + "'");
    }
    while (i < shown.size() && std::isspace(static_cast<unsigned char>(shown[i]))) ++i;
    std::string_view suffix = shown.substr(i);
    while (!suffix.empty() && std::isspace(static_cast<unsigned char>(suffix.back())))
        suffix.remove_suffix(1);
    if (suffix.empty()) return value;

    const UnitFactor *table = nullptr;
    std::size_t count = 0;
    switch (unit) {
        case SettingUnit::none: break;
        case SettingUnit::bytes: table = kBytes; count = std::size(kBytes); break;
        case SettingUnit::seconds: table = kSeconds; count = std::size(kSeconds); break;
        case SettingUnit::milliseconds: table = kMilliseconds; count = std::size(kMilliseconds); break;
    }
    for (std::size_t k = 0; k < count; ++k) {
        if (suffix != table[k].suffix) continue;
        if (table[k].numerator > 1 &&
            (value > std::numeric_limits<long long>::max() / table[k].numerator ||
             value < std::numeric_limits<long long>::min() / table[k].numerator))
            throw std::invalid_argument("value out of range: '" + std::string(shown) + "'");
        return value * table[k].numerator / table[k].denominator;
    }
    throw std::invalid_argument("unknown unit in '" + std::string(shown) + "'");
}

bool parse_bool_setting(std::string_view shown) {
    const std::string v = lower(shown);
    if (v == "on" || v == "true" || v == "yes" || v == "1" || v == "t" || v == "y") return true;
    if (v == "off" || v == "false" || v == "no" || v == "0" || v == "f" || v == "n") return false;
    throw std::invalid_argument("not a boolean: '" + std::string(shown) + "'");
}

ServerSettings settings_from_shown(const std::map<std::string, std::optional<std::string>> &shown,
                                   std::vector<std::string> &problems) {
    ServerSettings settings;
    for (const auto &spec : setting_specs()) {
        const auto it = shown.find(spec.name);
        if (it == shown.end() || !it->second) {
            problems.push_back(std::string(spec.name) + " is not known to the server (is pg_durable in shared_preload_libraries?); using " +
                               format_setting(settings, spec));
            continue;
        }
        const std::string &text = *it->second;
        try {
            std::visit(
                [&](auto member) {
                    using Field = std::remove_reference_t<decltype(settings.*member)>;
                    if constexpr (std::is_same_v<Field, int>) {
                        const long long v = parse_int_setting(text, spec.unit);
                        if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
                            throw std::invalid_argument("value out of range: '" + text + "'");
                        settings.*member = static_cast<int>(v);
                    } else if constexpr (std::is_same_v<Field, bool>) {
                        settings.*member = parse_bool_setting(text);
                    } else {
                        settings.*member = text;
                    }
                },
                spec.field);
        } catch (const std::invalid_argument &e) {
            problems.push_back(std::string(spec.name) + ": " + e.what() + "; using " +
                               format_setting(settings, spec));
        }
    }
    return settings;
}

std::string format_setting(const ServerSettings &settings, const SettingSpec &spec) {
    return std::visit(
        [&](auto member) -> std::string {
            const auto &value = settings.*member;
            using Field = std::decay_t<decltype(value)>;
            if constexpr (std::is_same_v<Field, int>)
                return std::to_string(value);
            else if constexpr (std::is_same_v<Field, bool>)
                return value ? "on" : "off";
            else
                return "'" + value + "'";
        },
        spec.field);
}

std::vector<SettingChange> diff_settings(const ServerSettings &before, const ServerSettings &after) {
    std::vector<SettingChange> changes;
    for (const auto &spec : setting_specs()) {
        auto old_value = format_setting(before, spec);
        auto new_value = format_setting(after, spec);
        if (old_value != new_value) changes.push_back({&spec, std::move(old_value), std::move(new_value)});
    }
    return changes;
}

ReloadOutcome reload_settings(const ServerSettings &current, const ServerSettings &shown) {
    ReloadOutcome outcome;
    outcome.effective = current;
    for (auto &change : diff_settings(current, shown)) {
        if (change.spec->context == SettingContext::postmaster) {
            outcome.ignored.push_back(std::move(change));
            continue;
        }
        std::visit([&](auto member) { outcome.effective.*member = shown.*member; }, change.spec->field);
        outcome.applied.push_back(std::move(change));
    }
    return outcome;
}

}  // namespace pgd::daemon
