// df.start(..., transaction_mode => 'new') (SPEC §19.1): the autonomous start
// through a dynamic background worker. PG zone: these ereport on failure.
#pragma once

extern "C" {
#include "postgres.h"
}

// From _PG_init: requests and initialises the launch-slot counter.
void pgd_new_start_install_shmem_hooks();

// Runs df.start's checks and writes in a transaction of its own (a background
// worker connected as current_user to this database), committed on return.
// Returns the new instance id (palloc'd).
char *pgd_start_in_new_transaction(const char *fut, const char *label, const char *database);

// df.start's path in the current transaction as current_user (start.cpp);
// the worker calls it. Returns the id (palloc'd).
char *pgd_start_in_current_transaction(const char *fut, const char *label, const char *database);
