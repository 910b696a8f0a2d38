// The pg_durable.* settings (SPEC.md §3), defined in pg_durable.cpp's _PG_init.
#pragma once

extern "C" {
extern char *pgd_database;
extern char *pgd_worker_role;
extern bool pgd_launch_daemon;
extern char *pgd_daemon_path;
extern int pgd_max_user_connections;
extern int pgd_execution_acquire_timeout;
extern bool pgd_enable_superuser_instances;
extern int pgd_list_instances_max_limit;
extern int pgd_retention_days;
extern int pgd_retention_max_instances;
extern int pgd_history_executions;
extern int pgd_loop_min_interval_ms;
extern char *pgd_cron_timezone;
extern bool pgd_http_enabled;
extern char *pgd_http_allowed_hosts;
extern bool pgd_http_allow_private_networks;
extern int pgd_http_max_attempts;
extern int pgd_http_max_response_bytes;
extern int pgd_max_http_concurrency;
extern int pgd_max_management_connections;
extern int pgd_max_duroxide_connections;
extern int pgd_max_new_transaction_starts;
extern int pgd_new_transaction_start_timeout;
extern int pgd_wakeup_relay_slots;
}
