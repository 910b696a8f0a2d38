// df.start's path for callers other than df.start itself (schedules, SPEC
// §19.4): the same checks (§9 (1)-(5)) and the same writes ((6) and the
// NOTIFY), for an explicit role instead of current_user. PG zone: these
// ereport on failure.
#pragma once

extern "C" {
#include "postgres.h"
}

// Checks (1)-(5) of SPEC §9 for `role` without writing anything: parses and
// validates `fut`, the database (`database` NULL = the current one), CONNECT,
// LOGIN and the superuser setting. Returns the effective database (palloc'd).
char *pgd_check_start_as(const char *fut, const char *database, Oid role);

// (1)-(6) and the NOTIFY, as df.start does them, with `role` as submitted_by
// (its privileges, its df.vars snapshot). Returns the new instance id (palloc'd).
char *pgd_start_as(const char *fut, const char *label, const char *database, Oid role);
