// Uninstall never waits for running steps (extension/uninstall.cpp).
#pragma once

// From _PG_init: interrupts running steps when pg_durable or schema df is dropped.
void pgd_install_uninstall_hook();
// From df._run_step, before it touches a df table: marks this transaction as
// a running step until it ends, then waits while a drop is under way.
void pgd_mark_running_step();
