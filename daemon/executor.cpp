#include "daemon/executor.hpp"

#include <algorithm>

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include "common/protocol.hpp"
#include "common/substitute.hpp"
#include "daemon/logging.hpp"
#include "daemon/store_steps.hpp"

namespace pgd::daemon {

namespace {

std::shared_ptr<spdlog::logger> log() { return logger("executor"); }

std::string connection_limit_text(int max_connections, int timeout_s) {
    return "pg_durable: connection limit reached (max_user_connections=" + std::to_string(max_connections) +
           "). Timed out after " + std::to_string(timeout_s) + "s waiting for an available execution slot.";
}

}  // namespace

// A database other than the extension's runs steps through extension
// pg_durable_target's df._run_step; without it the step fails with this.
std::string not_installed_text(const std::string &database) {
    return durable::protocol::sql_failed("extension \"" + std::string(kTargetExtension) +
                                         "\" is not installed in database \"" + database +
                                         "\". HINT: Connect to database \"" + database +
                                         "\" as a superuser and run: CREATE EXTENSION " + kTargetExtension + ";");
}

std::string primary_message(const std::string &what) {
    std::string text = what;
    for (const char *prefix : {"ERROR:  ", "FATAL:  "})
        if (text.rfind(prefix, 0) == 0) text = text.substr(std::char_traits<char>::length(prefix));
    const auto newline = text.find('\n');
    if (newline != std::string::npos) text = text.substr(0, newline);
    return text;
}

// libpq says "connection to server on socket ... failed: FATAL:  <message>";
// the server's own message is what users need (SPEC §2, §10.2).
std::string connect_failure_text(const std::string &role, const std::string &database, const std::string &what) {
    std::string message = what;
    const auto fatal = message.find("FATAL:  ");
    if (fatal != std::string::npos) message = message.substr(fatal + 8);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    const auto newline = message.find('\n');
    if (newline != std::string::npos) message = message.substr(0, newline);
    // A dropped target database reads as a step failure (SPEC §10.2).
    if (message == "database \"" + database + "\" does not exist") return durable::protocol::sql_failed(message);
    return "Failed to connect as '" + role + "': " + message;
}


namespace {

// How long a step connection may take to log in (every host of a multi-host
// conninfo included) before the step fails with connect_failed.
constexpr std::chrono::milliseconds kConnectTimeout{30000};

// A query result that is not an outcome: what it means for the step.
StepResult classify_error(const QueryResult &query, bool in_extension_db, const std::string &database) {
    StepResult result;
    const std::string message = primary_message(query.message);
    if (query.status == QueryResult::Status::broken) {
        result.kind = StepResult::Kind::interrupted;  // nothing committed that we know of; asked before a rerun
        result.error = message;
        return result;
    }
    const std::string &state = query.sqlstate;
    if (state == "57014" || state == "40001" || state == "40P01") {
        result.kind = StepResult::Kind::interrupted;  // nothing committed
        result.error = message;
    } else if (in_extension_db) {
        // df._run_step itself refused (e.g. a rotated secret): nothing committed.
        result.kind = StepResult::Kind::interrupted;
        result.error = message;
        result.stale_attachment = message.find("may only be called by the pg_durable daemon") != std::string::npos ||
                                  state == "42883" || state == "3F000" || state == "42P01";
        log()->debug("df._run_step refused (SQLSTATE {}): {}", state, message);
    } else {
        // The target's df._run_step refused, or is gone since the check.
        result.kind = StepResult::Kind::failed;
        result.recorded = false;
        result.error = state == "42883" || state == "3F000" ? not_installed_text(database)
                                                            : durable::protocol::sql_failed(message);
    }
    return result;
}

// A step whose cancel came before its statement was sent: nothing ran,
// nothing committed.
StepResult cancelled_before_sent() {
    StepResult result;
    result.kind = StepResult::Kind::interrupted;
    result.error = "canceling statement due to user request";
    return result;
}

}  // namespace

// One user connection, driven on the io thread (async_connection.hpp). A
// cancel reaches exactly the step it was meant for: a step not yet sent is
// never sent, and a cancel request for one already sent goes out only while
// that step is still the one running (a late request that hits the next
// step only interrupts it: nothing commits, and it runs again).
struct Executor::Connection {
    std::string database;
    std::shared_ptr<AsyncConnection> pg;
    std::uint64_t step_seq = 0;    // bumped as each step is handed to the connection
    std::uint64_t cancel_seq = 0;  // the step_seq a cancel was aimed at
    bool busy = false;
    std::string running_key;  // instance|stamp|node of the step it runs
    // While idle: the idle timeout (the socket watch is the AsyncConnection's).
    std::unique_ptr<boost::asio::steady_timer> idle_timer;
    std::uint64_t idle_period = 0;  // completions of an earlier idle period are ignored

    ~Connection() { retire(); }

    void stop_watching() {
        ++idle_period;
        if (idle_timer) idle_timer->cancel();
        if (pg) pg->stop_watching();
    }

    // Leaves the pool: the session ends now; pending callbacks never run.
    void retire() {
        stop_watching();
        if (pg) pg->close();
    }
};

Executor::Executor(boost::asio::io_context &io, std::string base_conninfo, std::chrono::milliseconds idle_timeout)
    : io_(io), base_conninfo_(std::move(base_conninfo)), idle_timeout_(idle_timeout) {
    // For messages only: the role the daemon logs in as.
    daemon_user_ = "pg_durable daemon";
    if (PQconninfoOption *options = PQconninfoParse(base_conninfo_.c_str(), nullptr)) {
        for (PQconninfoOption *o = options; o->keyword != nullptr; ++o)
            if (std::string(o->keyword) == "user" && o->val != nullptr && *o->val != '\0') daemon_user_ = o->val;
        PQconninfoFree(options);
    }
}

Executor::~Executor() { stop(); }

void Executor::configure(int max_connections, int acquire_timeout_seconds, std::string extension_database) {
    extension_database_ = std::move(extension_database);
    max_connections_ = std::max(1, max_connections);
    acquire_timeout_seconds_ = std::max(1, acquire_timeout_seconds);
}

std::string Executor::conninfo_for(const std::string &database) const {
    // Re-emit the base string's options as keyword/value pairs with dbname
    // replaced (libpq parses URIs and keyword/value strings alike here): the
    // daemon's own user and credentials in every database.
    char *error = nullptr;
    PQconninfoOption *options = PQconninfoParse(base_conninfo_.c_str(), &error);
    if (options == nullptr) {
        std::string why = error ? error : "invalid connection string";
        PQfreemem(error);
        throw std::runtime_error(why);
    }
    auto quote = [](const std::string &v) {
        std::string q = "'";
        for (char c : v) {
            if (c == '\'' || c == '\\') q += '\\';
            q += c;
        }
        return q + "'";
    };
    std::string out;
    for (PQconninfoOption *o = options; o->keyword != nullptr; ++o) {
        const std::string key = o->keyword;
        if (o->val == nullptr || key == "dbname" || key == "application_name" || key == "client_encoding") continue;
        out += key + "=" + quote(o->val) + " ";
    }
    PQconninfoFree(options);
    out += "dbname=" + quote(database) + " ";
    // UTF8 whatever the database's encoding: results are JSON text.
    return out + "application_name='pg_durable step' client_encoding='UTF8'";
}

void Executor::run(StepRequest request, Done done) {
    auto waiter = std::make_unique<Waiter>();
    waiter->request = std::move(request);
    waiter->done = std::move(done);
    waiter->requested_at = std::chrono::steady_clock::now();
    if (start_on_connection(*waiter)) return;
    // No connection free: queue with the acquire deadline.
    waiter->deadline = std::make_unique<boost::asio::steady_timer>(io_);
    waiter->deadline->expires_after(std::chrono::seconds(acquire_timeout_seconds_));
    Waiter *raw = waiter.get();
    std::weak_ptr<bool> alive = alive_;
    waiter->deadline->async_wait([this, raw, alive](const boost::system::error_code &ec) {
        if (ec || alive.expired()) return;
        on_deadline(raw);
    });
    waiting_.push_back(std::move(waiter));
}

void Executor::on_deadline(Waiter *waiter) {
    auto it = std::find_if(waiting_.begin(), waiting_.end(),
                           [&](const std::unique_ptr<Waiter> &w) { return w.get() == waiter; });
    if (it == waiting_.end()) return;
    std::unique_ptr<Waiter> expired = std::move(*it);
    waiting_.erase(it);
    StepResult result;
    result.kind = StepResult::Kind::failed;
    result.recorded = false;
    result.error = connection_limit_text(max_connections_, acquire_timeout_seconds_);
    expired->done(std::move(result));
}

// Starts the waiter on an idle connection of its database, a new
// connection, or one made by closing another idle connection.
bool Executor::start_on_connection(Waiter &waiter) {
    const auto &req = waiter.request;
    for (auto &conn : connections_) {
        if (!conn->busy && conn->database == req.database) {
            launch(conn, waiter);
            return true;
        }
    }
    if (static_cast<int>(connections_.size()) >= max_connections_) {
        auto idle = std::find_if(connections_.begin(), connections_.end(),
                                 [](const std::shared_ptr<Connection> &c) { return !c->busy; });
        if (idle == connections_.end()) return false;
        close(*idle);  // by value: it outlives its place in connections_
    }
    auto conn = std::make_shared<Connection>();
    conn->database = req.database;
    conn->idle_timer = std::make_unique<boost::asio::steady_timer>(io_);
    conn->pg = AsyncConnection::create(io_);
    connections_.push_back(conn);
    launch(conn, waiter);
    return true;
}

// One step's run on one connection, from the login (if the connection has
// none yet) to the result; every part runs on the io thread.
struct Executor::Run {
    Executor *executor;
    std::shared_ptr<Connection> conn;
    StepRequest request;
    Done done;
    std::uint64_t seq;
    std::weak_ptr<bool> alive;
    StepTimings timings;
};

void Executor::launch(const std::shared_ptr<Connection> &conn, Waiter &waiter) {
    conn->stop_watching();  // the step reads the socket now
    conn->busy = true;
    conn->running_key = waiter.request.instance_id + "|" + waiter.request.stamp + "|" + waiter.request.node_id;
    auto run = std::make_shared<Run>();
    run->executor = this;
    run->conn = conn;
    run->request = std::move(waiter.request);
    run->done = std::move(waiter.done);
    run->seq = ++conn->step_seq;
    run->alive = alive_;
    run->timings.requested = waiter.requested_at;
    run->timings.started = std::chrono::steady_clock::now();
    if (conn->pg->is_open()) {
        send(run);
        return;
    }
    std::string conninfo;
    try {
        conninfo = conninfo_for(run->request.database);
    } catch (const std::exception &e) {
        StepResult result;
        result.kind = StepResult::Kind::connect_failed;
        result.recorded = false;
        result.error = connect_failure_text(daemon_user_, run->request.database, e.what());
        // Never inside run(): the caller may still be iterating its own state.
        boost::asio::post(io_, [run, result = std::move(result)]() mutable { finish(run, std::move(result), true); });
        return;
    }
    conn->pg->connect(conninfo, kConnectTimeout, [run](const std::string &error) {
        if (run->alive.expired()) return;
        run->timings.connected = std::chrono::steady_clock::now();
        if (!error.empty()) {
            StepResult result;
            result.kind = StepResult::Kind::connect_failed;
            result.recorded = false;
            result.error = connect_failure_text(run->executor->daemon_user_, run->request.database, error);
            finish(run, std::move(result), true);
            return;
        }
        send(run);
    });
}

void Executor::send(const std::shared_ptr<Run> &run) {
    Connection &conn = *run->conn;
    if (conn.cancel_seq == run->seq) {
        boost::asio::post(run->executor->io_, [run] { finish(run, cancelled_before_sent(), false); });
        return;
    }
    const StepRequest &req = run->request;
    const bool in_extension_db = req.database == run->executor->extension_database_;
    run->timings.sent = std::chrono::steady_clock::now();
    if (in_extension_db) {
        conn.pg->exec(store::run_step(run->executor->secret_, req.instance_id, req.stamp, req.node_id, req.execution,
                                      req.query, req.attempt, req.finish),
                      [run](QueryResult query) {
                          if (run->alive.expired()) return;
                          run->timings.returned = std::chrono::steady_clock::now();
                          if (query.status != QueryResult::Status::ok) {
                              finish(run, classify_error(query, true, run->request.database),
                                     query.status == QueryResult::Status::broken);
                              return;
                          }
                          finish(run, parse_run_step_outcome(query.value.value_or("")), false);
                      });
        return;
    }
    // A database other than the extension's: that database's df._run_step
    // (extension pg_durable_target) runs it as the submitter, as the
    // extension's own does, and returns its outcome; nothing is recorded
    // there, the orchestrator records it afterwards (at-least-once).
    //
    // Whether the extension is installed is asked before EVERY call, in a
    // statement of its own: where it is not, a df._run_step there could be
    // any user's function, and the daemon must never call user code with
    // its own identity.
    conn.pg->exec(store::extension_installed(kTargetExtension), [run](QueryResult check) {
        if (run->alive.expired()) return;
        if (check.status != QueryResult::Status::ok) {
            run->timings.returned = std::chrono::steady_clock::now();
            finish(run, classify_error(check, false, run->request.database),
                   check.status == QueryResult::Status::broken);
            return;
        }
        if (check.value.value_or("f") != "t") {
            run->timings.returned = std::chrono::steady_clock::now();
            StepResult result;
            result.kind = StepResult::Kind::failed;
            result.recorded = false;
            result.error = not_installed_text(run->request.database);
            finish(run, std::move(result), false);
            return;
        }
        if (run->conn->cancel_seq == run->seq) {
            run->timings.returned = std::chrono::steady_clock::now();
            finish(run, cancelled_before_sent(), false);
            return;
        }
        const StepRequest &req = run->request;
        run->conn->pg->exec(store::run_target_step(req.instance_id, req.role_oid, req.query), [run](QueryResult query) {
            if (run->alive.expired()) return;
            run->timings.returned = std::chrono::steady_clock::now();
            if (query.status != QueryResult::Status::ok) {
                finish(run, classify_error(query, false, run->request.database),
                       query.status == QueryResult::Status::broken);
                return;
            }
            const std::string outcome = query.value.value_or("");
            StepResult result = parse_run_step_outcome(outcome);
            // A target database's df._run_step only completes or fails.
            if (result.kind != StepResult::Kind::completed && result.kind != StepResult::Kind::failed)
                result = malformed_outcome(outcome);
            result.recorded = false;
            finish(run, std::move(result), false);
        });
    });
}

void Executor::finish(const std::shared_ptr<Run> &run, StepResult result, bool broken) {
    if (run->alive.expired()) return;
    result.timings = run->timings;
    Executor &executor = *run->executor;
    executor.release(run->conn, broken);
    run->done(std::move(result));
}

void Executor::release(const std::shared_ptr<Connection> &conn, bool broken) {
    conn->busy = false;
    conn->running_key.clear();
    if (broken || !conn->pg->is_open()) {
        close(conn);
    } else {
        // Idle: close it after the idle timeout, or at once when the server
        // ends the session (pg_terminate_backend, a DROP DATABASE ... FORCE):
        // a session the server closed must not wait for the next step to
        // notice, and an idle one must not hold its database.
        const std::uint64_t period = ++conn->idle_period;
        const std::weak_ptr<Connection> weak = conn;
        const std::weak_ptr<bool> alive = alive_;
        auto gone = [this, weak, alive, period] {
            if (alive.expired()) return;
            const auto idle = weak.lock();
            if (idle && !idle->busy && idle->idle_period == period) close(idle);
        };
        conn->idle_timer->expires_after(idle_timeout_);
        conn->idle_timer->async_wait([gone](const boost::system::error_code &ec) {
            if (!ec) gone();
        });
        conn->pg->watch_idle(gone);
    }
    dispatch();
}

void Executor::close(std::shared_ptr<Connection> conn) {
    conn->retire();
    auto it = std::find(connections_.begin(), connections_.end(), conn);
    if (it != connections_.end()) connections_.erase(it);
}

void Executor::dispatch() {
    while (!waiting_.empty()) {
        if (!start_on_connection(*waiting_.front())) return;
        waiting_.pop_front();  // its deadline timer is destroyed (cancelled) with it
    }
}

bool Executor::cancel(const std::string &instance_id, const std::string &stamp, const std::string &node_id) {
    const std::string key = instance_id + "|" + stamp + "|" + node_id;
    // A queued step simply never starts.
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
        const auto &r = (*it)->request;
        if (r.instance_id == instance_id && r.stamp == stamp && r.node_id == node_id) {
            waiting_.erase(it);
            return false;
        }
    }
    bool running = false;
    for (const auto &conn : connections_) {
        if (!conn->busy || conn->running_key != key) continue;
        running = true;
        conn->cancel_seq = conn->step_seq;  // a step not sent yet is never sent
        const auto handle = conn->pg->cancel_handle();
        if (!handle) continue;  // still logging in: it sees cancel_seq before it sends
        // PQcancel blocks (a short session to the server the step's
        // connection reached): off the io thread.
        if (!canceller_) canceller_ = std::make_unique<DbWorker>("canceller");
        canceller_->post([handle] {
            const std::string failure = handle->send();
            if (!failure.empty()) log()->warn("could not cancel a running step: {}", failure);
        });
    }
    return running;
}

void Executor::stop() {
    waiting_.clear();
    *alive_ = false;
    alive_ = std::make_shared<bool>(true);
    // Pending completions check `alive` and never run.
    for (const auto &conn : connections_) conn->retire();
    connections_.clear();
    canceller_.reset();
}

}  // namespace pgd::daemon
