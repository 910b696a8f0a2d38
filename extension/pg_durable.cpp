// Module entry: _PG_init, the pg_durable.* settings (SPEC.md §3) and the
// preload check. Pure PG zone: no C++ objects live here.
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
}

#include "common/cron.hpp"
#include "extension/boundary.hpp"
#include "extension/guc.hpp"
#include "extension/new_start.hpp"
#include "extension/shim.hpp"
#include "extension/uninstall.hpp"
#include "extension/wakeup_relay.hpp"

extern "C" {
PG_MODULE_MAGIC;

char *pgd_database = nullptr;
char *pgd_worker_role = nullptr;
bool pgd_launch_daemon = true;
char *pgd_daemon_path = nullptr;
int pgd_max_user_connections = 10;
int pgd_execution_acquire_timeout = 30;
bool pgd_enable_superuser_instances = false;
int pgd_list_instances_max_limit = 1000;
int pgd_retention_days = 30;
int pgd_retention_max_instances = 10000;
int pgd_history_executions = 10;
int pgd_loop_min_interval_ms = 1000;
char *pgd_cron_timezone = nullptr;
bool pgd_http_enabled = false;
char *pgd_http_allowed_hosts = nullptr;
bool pgd_http_allow_private_networks = false;
int pgd_http_max_attempts = 3;
int pgd_http_max_response_bytes = 10 * 1024 * 1024;
int pgd_max_http_concurrency = 64;
int pgd_max_management_connections = 6;
int pgd_max_duroxide_connections = 10;
int pgd_max_new_transaction_starts = 2;
int pgd_new_transaction_start_timeout = 5;
int pgd_wakeup_relay_slots = 8192;

void _PG_init(void);
}

namespace {

// pg_durable.cron_timezone must name a zone the daemon can load; reject a bad
// value when it is set rather than failing every cron wait later.
bool check_cron_timezone(char **newval, void **, GucSource) {
    pgd::Failure failure;
    const char *name = *newval ? *newval : "";
    if (pgd::cpp_zone(failure, [&] { durable::cron::load_zone(name); })) return true;
    GUC_check_errmsg("%s", failure.message);
    return false;
}

void define_settings() {
    DefineCustomStringVariable("pg_durable.database",
        "Database whose durable functions the daemon runs.", nullptr,
        &pgd_database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pg_durable.worker_role",
        "The one role the daemon connects as (e.g. durable_worker); empty means the bootstrap superuser.",
        nullptr, &pgd_worker_role, "", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("pg_durable.launch_daemon",
        "Launch and supervise pg_durable_daemon from a background worker.", nullptr,
        &pgd_launch_daemon, true, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pg_durable.daemon_path",
        "Daemon binary the shim runs; empty means pg_durable_daemon in PostgreSQL's bindir.",
        nullptr, &pgd_daemon_path, "", PGC_POSTMASTER, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.max_user_connections",
        "Daemon connections authenticated as submitting roles (concurrent SQL steps).", nullptr,
        &pgd_max_user_connections, 10, 1, 1000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.execution_acquire_timeout",
        "Longest wait of a SQL step for a free user connection.", nullptr,
        &pgd_execution_acquire_timeout, 30, 1, 3600, PGC_POSTMASTER, GUC_UNIT_S,
        nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("pg_durable.enable_superuser_instances",
        "Allow superusers to start durable functions.", nullptr,
        &pgd_enable_superuser_instances, false, PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
        nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.list_instances_max_limit",
        "Largest limit_count df.list_instances accepts.", nullptr,
        &pgd_list_instances_max_limit, 1000, 1, 1000000, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.retention_days",
        "Days a terminal instance is kept.", nullptr,
        &pgd_retention_days, 30, 0, 36500, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.retention_max_instances",
        "Terminal instances kept at most (0 = no count limit).", nullptr,
        &pgd_retention_max_instances, 10000, 0, 100000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.history_executions",
        "Past loop executions that keep their node history.", nullptr,
        &pgd_history_executions, 10, 1, 1000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.loop_min_interval_ms",
        "Default minimum wall time of one loop iteration.", nullptr,
        &pgd_loop_min_interval_ms, 1000, 0, 86400000, PGC_SIGHUP, GUC_UNIT_MS,
        nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pg_durable.cron_timezone",
        "IANA time zone for cron waits without an explicit one.", nullptr,
        &pgd_cron_timezone, "UTC", PGC_SIGHUP, 0, check_cron_timezone, nullptr, nullptr);
    DefineCustomBoolVariable("pg_durable.http_enabled",
        "Allow df.http steps.", nullptr,
        &pgd_http_enabled, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pg_durable.http_allowed_hosts",
        "Comma-separated host patterns df.http may reach, or *.", nullptr,
        &pgd_http_allowed_hosts, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("pg_durable.http_allow_private_networks",
        "Let df.http reach loopback, private and link-local addresses (testing only).", nullptr,
        &pgd_http_allow_private_networks, false, PGC_SIGHUP, GUC_SUPERUSER_ONLY,
        nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.http_max_attempts",
        "Attempts of a df.http step on 5xx and transport errors.", nullptr,
        &pgd_http_max_attempts, 3, 1, 10, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.http_max_response_bytes",
        "Largest response body a df.http step accepts.", nullptr,
        &pgd_http_max_response_bytes, 10 * 1024 * 1024, 1024, 1024 * 1024 * 1024, PGC_SIGHUP,
        GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.max_http_concurrency",
        "df.http requests in flight at once; the others queue.", nullptr,
        &pgd_max_http_concurrency, 64, 1, 10000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.max_management_connections",
        "Daemon connections for bookkeeping.", nullptr,
        &pgd_max_management_connections, 6, 1, 1000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.max_duroxide_connections",
        "Daemon orchestrator connections (LISTEN and state); below 2 the daemon refuses to start.",
        nullptr, &pgd_max_duroxide_connections, 10, 1, 1000, PGC_POSTMASTER, 0,
        nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.max_new_transaction_starts",
        "df.start calls with transaction_mode => 'new' running at once in the server.", nullptr,
        &pgd_max_new_transaction_starts, 2, 1, 1000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.new_transaction_start_timeout",
        "Longest wait of df.start with transaction_mode => 'new' for a launch slot.", nullptr,
        &pgd_new_transaction_start_timeout, 5, 1, 3600, PGC_POSTMASTER, GUC_UNIT_S,
        nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pg_durable.wakeup_relay_slots",
        "Instance ids the wake-up relay's ring holds; 0 = no relay, df.start sends NOTIFY itself.", nullptr,
        &pgd_wakeup_relay_slots, 8192, 0, 1048576, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("pg_durable");
}

}  // namespace

void _PG_init(void) {
    if (IsBinaryUpgrade) return;
    if (!process_shared_preload_libraries_in_progress)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("pg_durable must be loaded via shared_preload_libraries.\n\n"
                        "HINT: Add 'pg_durable' to shared_preload_libraries in postgresql.conf "
                        "and restart the server.")));
    define_settings();
    pgd_install_uninstall_hook();
    pgd_new_start_install_shmem_hooks();
    pgd_wakeup_relay_register();
    if (pgd_launch_daemon) pgd_shim_register();
}
