// The wake-up relay (docs/ARCHITECTURE.md "Wake-ups are hints"): df.start's
// wake-up without a NOTIFY in the submitting transaction, so submitters'
// commits group again (PostgreSQL serialises the commits of transactions that
// notified).
#pragma once

// Registers the relay's background worker and its shared-memory hooks; from
// _PG_init, after the settings are defined. Nothing when
// pg_durable.wakeup_relay_slots is 0.
void pgd_wakeup_relay_register();

// The wake-up of a df.start that inserted instance `instance_id` in the
// current transaction: noted for the relay, which sends it once this
// transaction has committed (nothing on rollback), or NOTIFY df_wakeup,
// 'start:<id>' queued now when the relay cannot be used (no shared memory,
// another database than the relay's, no relay running). May raise an ERROR
// (out of memory); call it where a NOTIFY could be called.
void pgd_wakeup_start(const char *instance_id);
