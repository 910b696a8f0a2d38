// One libpq connection driven without blocking on the daemon's Asio loop
// (libpq's asynchronous API: PQconnectStart/PQconnectPoll, PQsendQueryParams,
// PQconsumeInput/PQisBusy/PQgetResult), so a step's statement goes out and
// its result comes back on the io thread itself: no hand-off to a worker
// thread and back per step (issue 12), and the next step of a chain is sent
// on the same connection inside the callback that delivered the previous
// result.
//
// The socket is registered with the loop only while a wait is outstanding
// and released (never closed: it is libpq's) before libpq runs again. libpq
// closes and reopens its socket during a connect (another host or address)
// and closes it when the server goes away; a registration that outlived the
// descriptor could otherwise remove another connection's registration of the
// same number from epoll.
//
// Host names are resolved by libpq inside PQconnectPoll, synchronously: give
// the daemon IP addresses or Unix-socket directories (the usual for a local
// server) to keep the loop free while connecting.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

struct pg_conn;
struct pg_cancel;

namespace pgd::daemon {

// One statement with text parameters (nullopt = SQL NULL). With a name, a
// connection runs it as that prepared statement of its session, prepared on
// first use (AsyncConnection::exec): a name must always come with the same
// text.
struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;
    std::string prepared_name = {};  // empty: the unnamed statement, parsed afresh
};

struct QueryResult {
    enum class Status {
        ok,         // the statement ran; value holds its first column of the first row
        sql_error,  // the server reported an error; the session is still usable
        broken,     // the session is gone (lost, terminated, never answered)
    };
    Status status = Status::broken;
    std::optional<std::string> value;  // NULL or no row: nullopt
    int rows = 0;
    std::string sqlstate;  // sql_error (and a broken session's last error, if the server sent one)
    std::string message;   // libpq's full error text ("ERROR:  ...\nDETAIL: ...")
};

// A query-cancel request for the connection's backend, usable from any
// thread (PQcancel is thread-safe and needs no session of its own). It goes
// to the address the connection actually reached, so after a failover it
// can never interrupt a backend of another server that happens to have the
// same pid.
class CancelHandle {
public:
    explicit CancelHandle(pg_cancel *cancel) : cancel_(cancel) {}
    ~CancelHandle();
    CancelHandle(const CancelHandle &) = delete;
    CancelHandle &operator=(const CancelHandle &) = delete;
    // Blocking (a short connection to the server): call it off the io thread.
    // Empty on success, else libpq's reason.
    std::string send() const;

private:
    pg_cancel *cancel_;
};

class AsyncConnection : public std::enable_shared_from_this<AsyncConnection> {
public:
    using Connected = std::function<void(const std::string &error)>;  // empty: connected
    using Done = std::function<void(QueryResult)>;

    // Shared so that outstanding waits keep it alive; io thread only.
    static std::shared_ptr<AsyncConnection> create(boost::asio::io_context &io);
    ~AsyncConnection();
    AsyncConnection(const AsyncConnection &) = delete;
    AsyncConnection &operator=(const AsyncConnection &) = delete;

    // Connects within `timeout` (the whole attempt, every host included).
    // `done` runs on the io thread, never inside this call.
    void connect(const std::string &conninfo, std::chrono::milliseconds timeout, Connected done);
    // Runs one statement in the session's current transaction state. Only
    // while open and idle. `done` runs on the io thread, never inside this
    // call. A named statement is prepared on its first use in the session
    // (one more round trip, once): the server then parses and plans it once
    // per session instead of on every call. Prepared statements end with the
    // session (close, a new connect).
    void exec(const Statement &statement, Done done);
    // While idle: `readable` runs once when the server sends something
    // unasked (in practice: it ends the session). Cancelled by exec/close.
    void watch_idle(std::function<void()> readable);
    void stop_watching();
    // Ends the session (PQfinish); pending callbacks never run.
    void close();

    bool is_open() const;
    bool busy() const { return static_cast<bool>(done_) || static_cast<bool>(connected_); }
    int backend_pid() const { return backend_pid_; }
    std::shared_ptr<const CancelHandle> cancel_handle() const { return cancel_; }

private:
    explicit AsyncConnection(boost::asio::io_context &io);

    enum class Wait { read, write };
    void wait(Wait what, void (AsyncConnection::*next)());
    void release_socket();
    bool begin(Done done);
    void exec_prepared(const Statement &statement, Done done);
    void send_query(const std::string *prepared_name, const Statement &statement);
    void poll_connect();
    void connect_failed(std::string error);
    void flush();
    void read_results();
    void finish_query();
    void post_done(QueryResult result);

    boost::asio::io_context &io_;
    pg_conn *pg_ = nullptr;
    boost::asio::posix::stream_descriptor socket_;
    boost::asio::steady_timer connect_deadline_;
    std::uint64_t generation_ = 0;  // bumped by close(): late completions are ignored
    std::uint64_t wait_token_ = 0;  // bumped by every release: late wait handlers are ignored
    int last_poll_ = 0;             // PostgresPollingStatusType of the last PQconnectPoll
    int backend_pid_ = 0;
    std::shared_ptr<const CancelHandle> cancel_;
    Connected connected_;
    Done done_;
    QueryResult result_;
    bool first_result_ = true;
    std::function<void()> idle_readable_;
    std::unordered_set<std::string> prepared_;  // names prepared in this session
};

}  // namespace pgd::daemon
