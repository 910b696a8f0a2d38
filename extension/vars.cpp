// The caller's workflow variables (SPEC.md §6, §11 braces): df.setvar,
// df.getvar, df.unsetvar, df.clearvars. Rows are keyed by the effective role;
// df.start freezes them into the instance. Also df.version and
// df.target_database. PG zone only.
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
}

#include "extension/guc.hpp"
#include "extension/helper_guard.hpp"
#include "extension/spi_util.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df_setvar);
PG_FUNCTION_INFO_V1(df_getvar);
PG_FUNCTION_INFO_V1(df_unsetvar);
PG_FUNCTION_INFO_V1(df_clearvars);
PG_FUNCTION_INFO_V1(df_version);
PG_FUNCTION_INFO_V1(df_target_database);
Datum df_setvar(PG_FUNCTION_ARGS);
Datum df_getvar(PG_FUNCTION_ARGS);
Datum df_unsetvar(PG_FUNCTION_ARGS);
Datum df_clearvars(PG_FUNCTION_ARGS);
Datum df_version(PG_FUNCTION_ARGS);
Datum df_target_database(PG_FUNCTION_ARGS);
}

namespace {

SPIPlanPtr set_plan = nullptr;
SPIPlanPtr get_plan = nullptr;
SPIPlanPtr unset_plan = nullptr;
SPIPlanPtr clear_plan = nullptr;

void check_var_name(const char *name) {
    if (name[0] == '\0')
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("variable name cannot be empty")));
}

// Runs a prepared vars statement as the table owner for the calling role.
// Returns the first column of the first row (palloc'd in the caller's
// context) or nullptr.
char *run_vars_statement(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types, Datum *values,
                         const char *nulls, int expected) {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pgd::SavedUser saved = pgd::become_table_owner();
    SPIPlanPtr plan = pgd::keep_plan(slot, sql, nargs, types);
    pgd::expect_spi(SPI_execute_plan(plan, values, nulls, false, 0), expected, "df.vars statement");
    char *value = nullptr;
    if (SPI_processed > 0 && SPI_tuptable != nullptr) {
        char *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
        if (v != nullptr) {
            value = static_cast<char *>(SPI_palloc(strlen(v) + 1));
            strcpy(value, v);
        }
    }
    pgd::restore_user(saved);
    SPI_finish();
    return value;
}

Datum ok_result(const char *helper) {
    pgd_note_helper_call(helper, "OK");
    PG_RETURN_TEXT_P(cstring_to_text("OK"));
}

}  // namespace

Datum df_setvar(PG_FUNCTION_ARGS) {
    pgd_forbid_in_workflow(
        "df.setvar() cannot be called inside a workflow - set variables before starting the workflow");
    char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    check_var_name(name);
    Oid types[3] = {TEXTOID, TEXTOID, REGROLEOID};
    Datum values[3] = {CStringGetTextDatum(name), PointerGetDatum(PG_GETARG_TEXT_PP(1)),
                       ObjectIdGetDatum(GetUserId())};
    run_vars_statement(&set_plan,
                       "INSERT INTO df.vars (name, value, owner) VALUES ($1, $2, $3) "
                       "ON CONFLICT (owner, name) DO UPDATE SET value = EXCLUDED.value",
                       3, types, values, nullptr, SPI_OK_INSERT);
    return ok_result("setvar");
}

Datum df_getvar(PG_FUNCTION_ARGS) {
    Oid types[2] = {TEXTOID, REGROLEOID};
    Datum values[2] = {PointerGetDatum(PG_GETARG_TEXT_PP(0)), ObjectIdGetDatum(GetUserId())};
    char *value = run_vars_statement(&get_plan, "SELECT value FROM df.vars WHERE name = $1 AND owner = $2",
                                     2, types, values, nullptr, SPI_OK_SELECT);
    if (value == nullptr) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(value));
}

Datum df_unsetvar(PG_FUNCTION_ARGS) {
    pgd_forbid_in_workflow(
        "df.unsetvar() cannot be called inside a workflow - manage variables before starting the workflow");
    Oid types[2] = {TEXTOID, REGROLEOID};
    Datum values[2] = {PointerGetDatum(PG_GETARG_TEXT_PP(0)), ObjectIdGetDatum(GetUserId())};
    run_vars_statement(&unset_plan, "DELETE FROM df.vars WHERE name = $1 AND owner = $2", 2, types, values,
                       nullptr, SPI_OK_DELETE);
    return ok_result("unsetvar");
}

Datum df_clearvars(PG_FUNCTION_ARGS) {
    (void)fcinfo;
    pgd_forbid_in_workflow(
        "df.clearvars() cannot be called inside a workflow - manage variables before starting the workflow");
    Oid types[1] = {REGROLEOID};
    Datum values[1] = {ObjectIdGetDatum(GetUserId())};
    run_vars_statement(&clear_plan, "DELETE FROM df.vars WHERE owner = $1", 1, types, values, nullptr,
                       SPI_OK_DELETE);
    return ok_result("clearvars");
}

Datum df_version(PG_FUNCTION_ARGS) {
    (void)fcinfo;
    PG_RETURN_TEXT_P(cstring_to_text(PGD_VERSION " (built " PGD_BUILD_TIME ")"));
}

Datum df_target_database(PG_FUNCTION_ARGS) {
    (void)fcinfo;
    PG_RETURN_TEXT_P(cstring_to_text(pgd_database));
}
