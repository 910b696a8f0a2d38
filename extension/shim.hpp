// The shim: a background worker that launches pg_durable_daemon for this
// cluster, restarts it with backoff when it exits, forwards SIGHUP and stops it
// when the server shuts down (SPEC.md §2). Pure PG zone.
#pragma once

extern "C" {
// Registers the shim background worker. Call from _PG_init while
// shared_preload_libraries is being processed, and only when
// pg_durable.launch_daemon is on.
void pgd_shim_register(void);
}
