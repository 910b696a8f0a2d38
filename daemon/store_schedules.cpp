#include "daemon/store_schedules.hpp"

#include <string>

#include "daemon/executor.hpp"

namespace pgd::daemon::store {

namespace {

using durable::schedule::TickAction;

std::string micros(ScheduleTime t) {
    return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}
ScheduleTime from_micros(std::int64_t us) { return ScheduleTime{} + std::chrono::microseconds(us); }

// Timestamps cross as microseconds since the Unix epoch (exact both ways).
constexpr const char *kMicrosOf = "(extract(epoch FROM %s) * 1000000)::bigint";
std::string micros_of(const char *column) {
    char buf[128];
    std::snprintf(buf, sizeof buf, kMicrosOf, column);
    return buf;
}
const std::string kTsParam2 = "('epoch'::timestamptz + $2::bigint * interval '1 microsecond')";

// SQLSTATEs after which the tick is left for a later try instead of being
// recorded as a failed start: the lock, the connection or the server, not
// the run's own checks.
bool is_transient(const std::string &state) {
    return state == "55P03" || state == "57014" || state == "40001" || state == "40P01" ||
           state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0 || state.rfind("53", 0) == 0 ||
           state == "42P01" || state == "3F000" || state == "42883";  // DROP EXTENSION meanwhile
}

}  // namespace

std::optional<ScheduleTime> earliest_schedule_tick(pqxx::connection &conn) {
    pqxx::nontransaction tx(conn);
    const auto row = tx.exec1("SELECT " + micros_of("min(next_run_at)") +
                              " FROM df._schedules WHERE NOT paused AND next_run_at IS NOT NULL");
    if (row[0].is_null()) return std::nullopt;
    return from_micros(row[0].as<std::int64_t>());
}

std::vector<std::int64_t> due_schedules(pqxx::connection &conn, ScheduleTime now, int limit) {
    pqxx::nontransaction tx(conn);
    const auto rows = tx.exec_params(
        "SELECT id FROM df._schedules WHERE NOT paused AND next_run_at <= ('epoch'::timestamptz + "
        "$1::bigint * interval '1 microsecond') ORDER BY next_run_at, id LIMIT $2",
        micros(now), limit);
    std::vector<std::int64_t> ids;
    for (const auto &row : rows) ids.push_back(row[0].as<std::int64_t>());
    return ids;
}

TickOutcome take_schedule_tick(pqxx::connection &conn, std::int64_t id, ScheduleTime now, ScheduleTime attached_at,
                               ScheduleTick &tick) {
    pqxx::work tx(conn);
    // The fence: our epoch row, share-locked until commit (a replacing
    // daemon's attach waits for this transaction, then our writes are over).
    if (tx.exec("SELECT 1 FROM df._worker_epoch "
                "WHERE epoch_id = pg_catalog.current_setting('df_daemon.epoch')::uuid FOR KEY SHARE")
            .empty())
        return TickOutcome::epoch_lost;
    pqxx::result rows;
    try {
        rows = tx.exec_params(
            "SELECT s.name, s.owner::text, s.cron_expr, s.timezone, s.overlap, " + micros_of("s.next_run_at") +
                ", s.last_instance_id, i.status IN ('pending', 'running') "
                "FROM df._schedules s LEFT JOIN df.instances i ON i.id = s.last_instance_id "
                "WHERE s.id = $1 AND NOT s.paused AND s.next_run_at <= " + kTsParam2 +
                " FOR UPDATE OF s NOWAIT",
            id, micros(now));
    } catch (const pqxx::sql_error &e) {
        if (e.sqlstate() == "55P03") return TickOutcome::busy;
        throw;
    }
    if (rows.empty()) return TickOutcome::not_due;
    const auto &row = rows[0];
    tick.id = id;
    tick.name = row[0].as<std::string>();
    tick.owner = row[1].as<std::string>();
    durable::schedule::DueTick due;
    due.cron_expr = row[2].as<std::string>();
    due.timezone = row[3].as<std::string>();
    due.overlap = row[4].as<std::string>();
    due.due = from_micros(row[5].as<std::int64_t>());
    const std::optional<std::string> previous =
        row[6].is_null() ? std::nullopt : std::optional<std::string>(row[6].as<std::string>());
    due.previous_live = !row[7].is_null() && row[7].as<bool>();
    const auto decision = durable::schedule::decide_tick(due, now, attached_at);
    tick.action = decision.action;
    tick.next_run_at = decision.next_run_at;

    if (decision.action == TickAction::run) {
        if (decision.cancel_previous && previous) {
            // df.cancel: the instance's committed status decides, its running
            // steps are interrupted (NOTIFY cancel:<id> at our commit).
            tx.exec_params("SELECT df.cancel($1, $2)", *previous,
                           "Cancelled by schedule '" + tick.name + "': the next run started (overlap 'cancel_previous')");
            tick.cancelled = previous;
        }
        // A savepoint of our own (libpqxx 6's subtransaction left the outer
        // transaction aborted after a failure): a refused start rolls back
        // alone, and the tick is still recorded below.
        tx.exec("SAVEPOINT pgd_start_scheduled");
        try {
            tick.instance_id = tx.exec_params1("SELECT df._start_scheduled($1)", id)[0].as<std::string>();
            tx.exec("RELEASE SAVEPOINT pgd_start_scheduled");
        } catch (const pqxx::sql_error &e) {
            if (is_transient(e.sqlstate())) throw;
            tick.error = primary_message(e.what());
            tx.exec("ROLLBACK TO SAVEPOINT pgd_start_scheduled");
        }
    }
    const bool ran = tick.instance_id.has_value();
    const std::optional<std::string> next = decision.next_run_at ? std::optional<std::string>(micros(*decision.next_run_at))
                                                                 : std::nullopt;
    tx.exec_params(
        "UPDATE df._schedules SET "
        "  next_run_at = 'epoch'::timestamptz + $2::bigint * interval '1 microsecond', "
        "  last_tick_at = 'epoch'::timestamptz + $3::bigint * interval '1 microsecond', "
        "  runs = runs + $4::int, skipped = skipped + $5::int, missed = missed + $6::int, "
        "  failed_starts = failed_starts + $7::int, "
        "  last_instance_id = COALESCE($8, last_instance_id), "
        "  last_error = CASE WHEN $9::boolean THEN $10 ELSE last_error END, updated_at = now() "
        "WHERE id = $1",
        id, next ? next->c_str() : nullptr, micros(due.due), ran ? 1 : 0,
        decision.action == TickAction::skip_overlap ? 1 : 0, decision.action == TickAction::missed ? 1 : 0,
        tick.error ? 1 : 0, tick.instance_id ? tick.instance_id->c_str() : nullptr,
        decision.action == TickAction::run, tick.error ? tick.error->c_str() : nullptr);
    tx.commit();
    return TickOutcome::taken;
}

}  // namespace pgd::daemon::store
