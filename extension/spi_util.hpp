// Small PG-zone helpers shared by the functions that write df tables.
#pragma once

extern "C" {
#include "postgres.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
}

namespace pgd {

// Pins search_path to pg_catalog (then pg_temp) until unpin_search_path:
// df functions resolve their own SQL there whatever the caller set, so a
// user schema placed before pg_catalog can never inject an operator or
// function into code that runs with the table owner's rights.
inline int pin_search_path() {
    int nest = NewGUCNestLevel();
    (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                            GUC_ACTION_SAVE, true, 0, false);
    return nest;
}

inline void unpin_search_path(int nest) { AtEOXact_GUC(true, nest); }

// The df tables belong to the bootstrap superuser and users hold no write
// privilege on them (SPEC §5): df functions write on the caller's behalf after
// their own checks, switching to the owner (with search_path pinned) around
// the SPI work. The caller's identity is captured before the switch. A plain
// struct, not an RAII guard, because the work in between may ereport and a
// longjmp must not skip a destructor (DESIGN §2.11); transaction abort
// restores the user id and the settings anyway, as it does for PostgreSQL's
// own RI triggers.
struct SavedUser {
    Oid user;
    int security_context;
    int guc_nest;
};

inline SavedUser become_table_owner() {
    SavedUser saved;
    GetUserIdAndSecContext(&saved.user, &saved.security_context);
    SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
                           saved.security_context | SECURITY_LOCAL_USERID_CHANGE);
    saved.guc_nest = pin_search_path();
    return saved;
}

inline void restore_user(const SavedUser &saved) {
    unpin_search_path(saved.guc_nest);
    SetUserIdAndSecContext(saved.user, saved.security_context);
}

// Prepares `sql` once per backend and keeps the plan across transactions.
inline SPIPlanPtr keep_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes) {
    if (*slot == nullptr) {
        SPIPlanPtr plan = SPI_prepare(sql, nargs, argtypes);
        if (plan == nullptr)
            elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
        if (SPI_keepplan(plan) != 0) elog(ERROR, "SPI_keepplan failed");
        *slot = plan;
    }
    return *slot;
}

inline void expect_spi(int rc, int expected, const char *what) {
    if (rc != expected) elog(ERROR, "%s failed: %s", what, SPI_result_code_string(rc));
}

}  // namespace pgd
