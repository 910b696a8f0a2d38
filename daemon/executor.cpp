#include "daemon/executor.hpp"

#include <algorithm>
#include <atomic>

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <libpq-fe.h>
#include <pqxx/pqxx>
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

// One step in a database other than the extension's: that database's
// df._run_step (extension pg_durable_target) runs it as the submitter, as
// the extension's own does, and returns its outcome; nothing is recorded
// there, the orchestrator records it afterwards (at-least-once).
//
// Whether the extension is installed is asked before EVERY call, in a
// statement of its own: where it is not, a df._run_step there could be any
// user's function, and the daemon must never call user code with its own
// identity. (In the same statement the planner could already evaluate an
// IMMUTABLE impostor while folding constants, before any check ran.)
StepResult run_in_target_database(pqxx::connection &conn, const StepRequest &request) {
    StepResult result;
    if (!store::extension_installed(conn, kTargetExtension)) {
        result.kind = StepResult::Kind::failed;
        result.recorded = false;
        result.error = not_installed_text(request.database);
        return result;
    }
    const std::string outcome = store::run_target_step(conn, request.instance_id, request.role_oid, request.query);
    result = parse_run_step_outcome(outcome);
    // A target database's df._run_step only completes or fails.
    if (result.kind != StepResult::Kind::completed && result.kind != StepResult::Kind::failed)
        result = malformed_outcome(outcome);
    result.recorded = false;
    return result;
}

}  // namespace

// One user connection: its worker thread owns the pqxx::connection. The
// Executor (io thread) owns the Connection; a step job holds it only until it
// posts its result, so the last reference, and with it the join of the
// worker, is never released on the worker's own thread. (A canceller job may
// hold the last one briefly: a Connection leaves the pool retired, without
// Asio objects, so it may end on any thread but its worker's.)
struct Executor::Connection {
    std::string database;
    std::unique_ptr<pqxx::connection> pq;  // touched only by worker jobs
    // Read by the canceller thread, written by the worker (pid, as soon as it
    // has connected) and the io thread (sequence numbers): a cancel reaches
    // exactly the step it was meant for, never a later step on the same
    // connection and never another step of the same role.
    std::atomic<int> backend_pid{0};
    std::atomic<std::uint64_t> step_seq{0};    // bumped as each step is handed to the worker
    std::atomic<std::uint64_t> cancel_seq{0};  // the step_seq a cancel was aimed at
    bool busy = false;
    std::string running_key;  // instance|stamp|node of the step it runs
    // While idle: the idle timeout and a wait for the server to end the
    // session (libpq's socket turns readable). Io thread only; reset by
    // retire() when the Connection leaves the pool.
    std::unique_ptr<boost::asio::steady_timer> idle_timer;
    std::unique_ptr<boost::asio::posix::stream_descriptor> idle_socket;  // released, never closed
    std::uint64_t idle_period = 0;  // completions of an earlier idle period are ignored
    std::unique_ptr<DbWorker> worker;  // last: joined before pq and the rest go

    ~Connection() { stop_watching(); }  // a no-op once retired

    // Leaves the pool (io thread): the Asio objects go now, so whoever drops
    // the last reference later, on whatever thread, touches no io_context.
    void retire() {
        stop_watching();
        idle_timer.reset();
        idle_socket.reset();
    }

    void stop_watching() {
        ++idle_period;
        if (idle_timer) idle_timer->cancel();
        if (idle_socket && idle_socket->is_open()) {
            boost::system::error_code ignored;
            idle_socket->cancel(ignored);
            idle_socket->release();  // libpq's fd: never closed by Asio
        }
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
            launch(conn, std::move(waiter.request), std::move(waiter.done));
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
    conn->idle_socket = std::make_unique<boost::asio::posix::stream_descriptor>(io_);
    conn->worker = std::make_unique<DbWorker>("step:" + req.database);
    connections_.push_back(conn);
    launch(conn, std::move(waiter.request), std::move(waiter.done));
    return true;
}

void Executor::launch(std::shared_ptr<Connection> conn, StepRequest request, Done done) {
    conn->stop_watching();  // the worker reads the socket now
    conn->busy = true;
    conn->running_key = request.instance_id + "|" + request.stamp + "|" + request.node_id;
    const std::uint64_t seq = conn->step_seq.fetch_add(1) + 1;
    const bool in_extension_db = request.database == extension_database_;
    std::string conninfo;
    std::string conninfo_error;
    try {
        conninfo = conninfo_for(request.database);
    } catch (const std::exception &e) {
        conninfo_error = e.what();
    }
    std::weak_ptr<bool> alive = alive_;
    const std::string secret = secret_;
    Connection *raw = conn.get();
    conn->worker->post([this, conn, raw, request = std::move(request), done = std::move(done), conninfo,
                        conninfo_error, secret, in_extension_db, alive, seq]() mutable {
        StepResult result;
        int socket = -1;
        bool broken = false;
        if (!raw->pq) {
            try {
                if (!conninfo_error.empty()) throw std::runtime_error(conninfo_error);
                raw->pq = std::make_unique<pqxx::connection>(conninfo);
            } catch (const std::exception &e) {
                raw->pq.reset();
                result.kind = StepResult::Kind::connect_failed;
                result.recorded = false;
                result.error = connect_failure_text(daemon_user_, request.database, e.what());
                broken = true;
            }
        }
        if (raw->pq) {
            raw->backend_pid.store(raw->pq->backendpid());
        }
        if (raw->pq && raw->cancel_seq.load() == seq) {
            // Cancelled before it started: nothing ran, nothing committed.
            result.kind = StepResult::Kind::interrupted;
            result.error = "canceling statement due to user request";
        } else if (raw->pq) {
            try {
                if (in_extension_db) {
                    result = parse_run_step_outcome(store::run_step(*raw->pq, secret, request.instance_id,
                                                                    request.stamp, request.node_id, request.execution,
                                                                    request.query, request.attempt, request.finish));
                } else {
                    result = run_in_target_database(*raw->pq, request);
                }
            } catch (const pqxx::broken_connection &e) {
                result.kind = StepResult::Kind::interrupted;
                result.error = primary_message(e.what());
                broken = true;
            } catch (const pqxx::sql_error &e) {
                if (e.sqlstate() == "57014" || e.sqlstate() == "40001" || e.sqlstate() == "40P01") {
                    result.kind = StepResult::Kind::interrupted;  // nothing committed
                    result.error = primary_message(e.what());
                } else if (in_extension_db) {
                    // df._run_step itself refused (e.g. a rotated secret): nothing committed.
                    result.kind = StepResult::Kind::interrupted;
                    result.error = primary_message(e.what());
                    const std::string state = e.sqlstate();
                    result.stale_attachment =
                        result.error.find("may only be called by the pg_durable daemon") != std::string::npos ||
                        state == "42883" || state == "3F000" || state == "42P01";
                    log()->debug("df._run_step refused (SQLSTATE {}): {}", state, result.error);
                } else {
                    // The target's df._run_step refused, or is gone since the check.
                    const std::string state = e.sqlstate();
                    result.kind = StepResult::Kind::failed;
                    result.recorded = false;
                    result.error = state == "42883" || state == "3F000"
                                       ? not_installed_text(request.database)
                                       : durable::protocol::sql_failed(primary_message(e.what()));
                }
            } catch (const std::exception &e) {
                result.kind = StepResult::Kind::interrupted;
                result.error = primary_message(e.what());
                broken = true;
            }
            if (broken) raw->pq.reset();
            if (raw->pq) socket = raw->pq->sock();
        }
        // Moved, not copied: from here on only the io thread owns the Connection.
        boost::asio::post(io_, [this, conn = std::move(conn), result = std::move(result), done = std::move(done),
                                socket, broken, alive]() mutable {
            if (alive.expired()) return;
            release(conn, broken, socket);
            done(std::move(result));
        });
    });
}

void Executor::release(const std::shared_ptr<Connection> &conn, bool broken, int socket) {
    conn->busy = false;
    conn->running_key.clear();
    if (broken || socket < 0) {
        conn->retire();
        auto it = std::find(connections_.begin(), connections_.end(), conn);
        if (it != connections_.end()) connections_.erase(it);
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
        boost::system::error_code ec;
        conn->idle_socket->assign(socket, ec);
        if (!ec)
            conn->idle_socket->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                                          [gone](const boost::system::error_code &wait_ec) {
                                              if (wait_ec != boost::asio::error::operation_aborted) gone();
                                          });
    }
    dispatch();
}

void Executor::close(std::shared_ptr<Connection> conn) {
    conn->retire();
    auto it = std::find(connections_.begin(), connections_.end(), conn);
    if (it != connections_.end()) connections_.erase(it);
    // libpq is closed on the worker; the Connection (and the join of its
    // worker, which runs this job first) goes with the caller's reference.
    Connection *raw = conn.get();
    conn->worker->post([raw] { raw->pq.reset(); });
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
        const std::uint64_t seq = conn->step_seq.load();
        conn->cancel_seq.store(seq);  // a step that has not started yet never starts
        if (!canceller_) canceller_ = std::make_unique<DbWorker>("canceller");
        const std::string base = base_conninfo_;
        std::weak_ptr<Connection> target = conn;
        canceller_->post([target, seq, base]() {
            const auto c = target.lock();
            // Still that step, with a backend to interrupt (pid 0: still
            // connecting; the step sees cancel_seq before it starts).
            if (!c || c->step_seq.load() != seq || c->backend_pid.load() == 0) return;
            try {
                pqxx::connection session(base);
                if (c->step_seq.load() != seq) return;
                store::cancel_backend(session, c->backend_pid.load());
            } catch (const std::exception &e) {
                log()->warn("could not cancel a running step: {}", e.what());
            }
        });
    }
    return running;
}

void Executor::stop() {
    waiting_.clear();
    *alive_ = false;
    alive_ = std::make_shared<bool>(true);
    // A busy one lives on in its job until the result handler drops it,
    // perhaps after this Executor and its io_context are gone.
    for (const auto &conn : connections_) conn->retire();
    connections_.clear();
    canceller_.reset();
}

}  // namespace pgd::daemon
