// Guards that keep side-effect helpers out of workflow graphs (SPEC.md §6, §8).
//
// `SELECT df.setvar('x', '1') ~> 'SELECT 1'` would otherwise turn setvar's
// return value 'OK' into a SQL step. The helpers note what they returned in
// this statement; composers and df.start refuse exactly that text.
// PG zone: these may ereport, so call them with no live C++ objects.
#pragma once

extern "C" {
// Called by df.setvar, df.unsetvar, df.clearvars and df.await_instance with
// their short name ("setvar", ...) and the text they return.
void pgd_note_helper_call(const char *helper, const char *returned);

// Called on every text argument a composer or df.start auto-wraps. Raises
// "df.<helper> cannot be used as a workflow step. Call df.<helper> before df.start()."
// when `arg` is non-JSON text a helper returned in the current statement.
void pgd_check_composer_input(const char *arg);

// Raises "<message>" when running inside a workflow step (df.in_workflow = 'true').
void pgd_forbid_in_workflow(const char *message);
}
