// pg_durable.* settings as read with SHOW: units, booleans, defaults, reloads.
#include "catch_compat.hpp"

#include "daemon/settings.hpp"

using namespace pgd::daemon;

namespace {

std::map<std::string, std::optional<std::string>> shown_defaults() {
    // What SHOW prints for the defaults of SPEC §3 (units as PostgreSQL formats them).
    return {{"pg_durable.database", "postgres"},
            {"pg_durable.worker_role", ""},
            {"pg_durable.launch_daemon", "on"},
            {"pg_durable.daemon_path", ""},
            {"pg_durable.max_user_connections", "10"},
            {"pg_durable.execution_acquire_timeout", "30s"},
            {"pg_durable.enable_superuser_instances", "off"},
            {"pg_durable.list_instances_max_limit", "1000"},
            {"pg_durable.retention_days", "30"},
            {"pg_durable.retention_max_instances", "10000"},
            {"pg_durable.history_executions", "10"},
            {"pg_durable.loop_min_interval_ms", "1s"},
            {"pg_durable.cron_timezone", "UTC"},
            {"pg_durable.http_enabled", "off"},
            {"pg_durable.http_allowed_hosts", ""},
            {"pg_durable.http_allow_private_networks", "off"},
            {"pg_durable.http_max_attempts", "3"},
            {"pg_durable.http_max_response_bytes", "10MB"},
            {"pg_durable.max_http_concurrency", "64"},
            {"pg_durable.max_management_connections", "6"},
            {"pg_durable.max_duroxide_connections", "10"}};
}

}  // namespace

TEST_CASE("every setting of SPEC section 3 is known", "[daemon]") {
    CHECK(setting_specs().size() == 21);
    std::vector<std::string> problems;
    settings_from_shown(shown_defaults(), problems);
    CHECK(problems.empty());
}

TEST_CASE("integer settings are converted from SHOW units to their base unit", "[daemon]") {
    CHECK(parse_int_setting("10MB", SettingUnit::bytes) == 10 * 1024 * 1024);
    CHECK(parse_int_setting("1kB", SettingUnit::bytes) == 1024);
    CHECK(parse_int_setting("1GB", SettingUnit::bytes) == 1024LL * 1024 * 1024);
    CHECK(parse_int_setting("1500", SettingUnit::bytes) == 1500);
    CHECK(parse_int_setting("1min", SettingUnit::seconds) == 60);
    CHECK(parse_int_setting("30s", SettingUnit::seconds) == 30);
    CHECK(parse_int_setting("1h", SettingUnit::seconds) == 3600);
    CHECK(parse_int_setting("1s", SettingUnit::milliseconds) == 1000);
    CHECK(parse_int_setting("250ms", SettingUnit::milliseconds) == 250);
    CHECK(parse_int_setting("1d", SettingUnit::milliseconds) == 86400000);
    CHECK(parse_int_setting("0", SettingUnit::milliseconds) == 0);
    CHECK(parse_int_setting("-1", SettingUnit::none) == -1);
    CHECK_THROWS_AS(parse_int_setting("10MB", SettingUnit::seconds), std::invalid_argument);
    CHECK_THROWS_AS(parse_int_setting("10s", SettingUnit::none), std::invalid_argument);
    CHECK_THROWS_AS(parse_int_setting("abc", SettingUnit::none), std::invalid_argument);
    CHECK_THROWS_AS(parse_int_setting("", SettingUnit::none), std::invalid_argument);
}

TEST_CASE("booleans as SHOW prints them", "[daemon]") {
    CHECK(parse_bool_setting("on"));
    CHECK(parse_bool_setting("TRUE"));
    CHECK_FALSE(parse_bool_setting("off"));
    CHECK_FALSE(parse_bool_setting("0"));
    CHECK_THROWS_AS(parse_bool_setting("maybe"), std::invalid_argument);
}

TEST_CASE("SHOW values populate the settings", "[daemon]") {
    auto shown = shown_defaults();
    shown["pg_durable.max_duroxide_connections"] = "1";
    shown["pg_durable.http_max_response_bytes"] = "2MB";
    shown["pg_durable.loop_min_interval_ms"] = "250ms";
    shown["pg_durable.http_enabled"] = "on";
    shown["pg_durable.cron_timezone"] = "Europe/Paris";
    shown["pg_durable.max_http_concurrency"] = "2";
    std::vector<std::string> problems;
    const auto s = settings_from_shown(shown, problems);
    CHECK(problems.empty());
    CHECK(s.max_duroxide_connections == 1);
    CHECK(s.http_max_response_bytes == 2 * 1024 * 1024);
    CHECK(s.loop_min_interval_ms == 250);
    CHECK(s.http_enabled);
    CHECK(s.cron_timezone == "Europe/Paris");
    CHECK(s.execution_acquire_timeout_s == 30);
    CHECK(s.max_http_concurrency == 2);
    CHECK(ServerSettings{}.max_http_concurrency == 64);
}

TEST_CASE("unknown or malformed settings keep their defaults and are reported", "[daemon]") {
    auto shown = shown_defaults();
    shown["pg_durable.retention_days"] = std::nullopt;  // server does not know it
    shown["pg_durable.http_max_attempts"] = "many";
    shown.erase("pg_durable.database");
    std::vector<std::string> problems;
    const auto s = settings_from_shown(shown, problems);
    CHECK(problems.size() == 3);
    CHECK(s.retention_days == 30);
    CHECK(s.http_max_attempts == 3);
    CHECK(s.database == "postgres");
}

TEST_CASE("a reload applies sighup settings and keeps restart-only ones", "[daemon]") {
    ServerSettings current;
    ServerSettings shown = current;
    shown.retention_days = 7;
    shown.http_allowed_hosts = "*.example.org";
    shown.max_http_concurrency = 8;  // sighup: new HTTP requests see it
    shown.max_duroxide_connections = 1;  // postmaster context
    shown.database = "other";            // postmaster context
    const auto outcome = reload_settings(current, shown);
    CHECK(outcome.effective.retention_days == 7);
    CHECK(outcome.effective.http_allowed_hosts == "*.example.org");
    CHECK(outcome.effective.max_http_concurrency == 8);
    CHECK(outcome.effective.max_duroxide_connections == 10);
    CHECK(outcome.effective.database == "postgres");
    REQUIRE(outcome.applied.size() == 3);
    REQUIRE(outcome.ignored.size() == 2);
    CHECK(std::string(outcome.ignored[0].spec->name) == "pg_durable.database");
    CHECK(outcome.ignored[0].old_value == "'postgres'");
    CHECK(outcome.ignored[0].new_value == "'other'");
    CHECK(diff_settings(current, current).empty());
}
