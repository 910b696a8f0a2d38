// User connections and SQL step runs (SPEC §10.2, DESIGN §2.2, §2.4).
//
// In the extension's database a step is one call of df._run_step on a
// connection the daemon logs in with ITS OWN role and credentials (the
// daemon's conninfo; no per-role login): df._run_step checks the daemon's
// role and secret and runs the text as the submitter (SetUserIdAndSecContext
// in a restricted operation, DESIGN §2.4); the step and its completion record
// commit in one transaction (exactly-once, one commit per step). One pool of
// such connections per database serves every role.
//
// An idle connection closes after kIdleConnectionTimeout, and at once when
// the server ends it (pg_terminate_backend, shutdown): an idle pooled
// session must never keep DROP DATABASE from its database (DESIGN §2.10).
//
// Another database (`database => ...`) runs steps the same way, on the
// daemon's own connections to it: extension pg_durable_target there provides
// a df._run_step that runs the text as the submitter (same identity switch,
// session reset and row_to_json) but records nothing; the orchestrator
// records the outcome afterwards (at-least-once). A database without it
// fails that step (not_installed_text).
//
// Connections are driven without blocking on the io thread
// (async_connection.hpp): a step's statement is sent and its result read by
// the loop itself, and the next step of a chain goes out on the same
// connection from the callback that delivered the previous result. At most
// pg_durable.max_user_connections in total (= steps at once);
// application_name 'pg_durable step', client_encoding UTF8. A step waiting longer than execution_acquire_timeout
// for a connection fails with the SPEC text.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "daemon/db_worker.hpp"
#include "daemon/run_step_outcome.hpp"

namespace pgd::daemon {

struct StepRequest {
    std::string instance_id;
    std::string stamp;
    std::string node_id;
    std::int64_t execution = 1;
    std::string database;
    std::string role;           // the submitter's name (messages)
    std::int64_t role_oid = 0;  // the submitter (a target database's df._run_step)
    std::string query;
    int attempt = 1;
    std::optional<std::string> finish;  // df._run_step's finish argument (JSON)
};


// The extension that provides df._run_step in a database other than
// pg_durable.database, and the step error where it is missing.
inline constexpr const char *kTargetExtension = "pg_durable_target";
std::string not_installed_text(const std::string &database);

// The node error for a failed connection as `role` to `database`.
std::string connect_failure_text(const std::string &role, const std::string &database, const std::string &what);

// Converts a server error text (libpq's "ERROR:  ...\nDETAIL: ...") to its primary message.
std::string primary_message(const std::string &what);

// Short enough that DROP DATABASE, which waits up to 5 s for other sessions
// to leave, succeeds at once when no step runs in that database.
constexpr std::chrono::milliseconds kIdleConnectionTimeout{3000};

// Runs SQL steps; the orchestrator's view of the Executor (a fake one in
// the orchestrator's unit tests).
class StepRunner {
public:
    using Done = std::function<void(StepResult)>;
    virtual ~StepRunner() = default;

    // extension_database: where df._run_step exists (pg_durable.database).
    virtual void configure(int max_connections, int acquire_timeout_seconds, std::string extension_database) = 0;
    virtual void set_secret(std::string secret) = 0;
    // Runs a step when a connection is free; `done` runs on the io thread.
    virtual void run(StepRequest request, Done done) = 0;
    // Interrupts the step (instance, stamp, node) if it is running. True when
    // it was running: its `done` still runs when its transaction has ended. A
    // queued step is dropped (its `done` never runs): false.
    virtual bool cancel(const std::string &instance_id, const std::string &stamp, const std::string &node_id) = 0;
    // Forgets queued steps (their callbacks never run) and closes every connection.
    virtual void stop() = 0;
};

class Executor final : public StepRunner {
public:

    Executor(boost::asio::io_context &io, std::string base_conninfo,
             std::chrono::milliseconds idle_timeout = kIdleConnectionTimeout);
    ~Executor() override;
    Executor(const Executor &) = delete;
    Executor &operator=(const Executor &) = delete;

    void configure(int max_connections, int acquire_timeout_seconds, std::string extension_database) override;
    void set_secret(std::string secret) override { secret_ = std::move(secret); }
    void run(StepRequest request, Done done) override;
    // A running step is interrupted with libpq's cancel request for its own
    // connection (the server and backend that connection reached), sent off
    // the io thread.
    bool cancel(const std::string &instance_id, const std::string &stamp, const std::string &node_id) override;
    void stop() override;

private:
    struct Connection;
    struct Run;
    struct Waiter {
        StepRequest request;
        Done done;
        std::chrono::steady_clock::time_point requested_at;
        std::unique_ptr<boost::asio::steady_timer> deadline;
    };

    void dispatch();
    bool start_on_connection(Waiter &waiter);
    void launch(const std::shared_ptr<Connection> &conn, Waiter &waiter);
    static void send(const std::shared_ptr<Run> &run);
    static void finish(const std::shared_ptr<Run> &run, StepResult result, bool broken);
    void release(const std::shared_ptr<Connection> &conn, bool broken);
    void close(std::shared_ptr<Connection> conn);
    void on_deadline(Waiter *waiter);
    std::string conninfo_for(const std::string &database) const;

    boost::asio::io_context &io_;
    std::string base_conninfo_;
    std::chrono::milliseconds idle_timeout_;
    std::string daemon_user_;
    std::string extension_database_;
    std::string secret_;
    int max_connections_ = 10;
    int acquire_timeout_seconds_ = 30;
    std::vector<std::shared_ptr<Connection>> connections_;
    std::deque<std::unique_ptr<Waiter>> waiting_;
    std::unique_ptr<DbWorker> canceller_;  // sends cancel requests (PQcancel blocks)
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace pgd::daemon
