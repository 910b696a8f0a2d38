// The daemon's non-blocking libpq connection (daemon/async_connection.*)
// against a real server: results, NULLs and errors, a statement larger than
// the socket buffers, a session the server ends in the middle of a
// statement, a cancel through the connection's own cancel key, failed and
// hanging logins, the idle watch, and close() with a statement in flight.
#include <atomic>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include "catch_compat.hpp"

#include "cluster.hpp"
#include "daemon/async_connection.hpp"

using namespace pgd::test;
using pgd::daemon::AsyncConnection;
using pgd::daemon::QueryResult;
using pgd::daemon::Statement;

namespace {

// Runs the loop until `done` holds or the deadline passes.
bool run_until(boost::asio::io_context &io, const std::function<bool()> &done, std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    // The previous call's guard, when it went, may have left the context
    // stopped (no work left at that moment).
    if (io.stopped()) io.restart();
    auto guard = boost::asio::make_work_guard(io);
    while (!done()) {
        if (std::chrono::steady_clock::now() >= until) return false;
        io.run_one_for(std::chrono::milliseconds(20));
    }
    return true;
}

struct Session {
    boost::asio::io_context &io;
    std::shared_ptr<AsyncConnection> conn = AsyncConnection::create(io);

    std::string connect(const std::string &conninfo, std::chrono::milliseconds timeout = 10s) {
        std::optional<std::string> error;
        conn->connect(conninfo, timeout, [&](const std::string &e) { error = e; });
        REQUIRE(run_until(io, [&] { return error.has_value(); }, 20s));
        return *error;
    }

    QueryResult exec(const Statement &statement, std::chrono::milliseconds deadline = 20s) {
        std::optional<QueryResult> result;
        conn->exec(statement, [&](QueryResult r) { result = std::move(r); });
        REQUIRE(run_until(io, [&] { return result.has_value(); }, deadline));
        return *result;
    }
};

std::string sleeping_pid(const TestCluster &cluster) {
    return cluster.query_value("SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND application_name = 'async-test'")
        .value_or("");
}

}  // namespace

TEST_CASE("async connection: statements, parameters, NULLs, errors and a statement larger than the socket buffers",
          "[async]") {
    TestCluster cluster;
    boost::asio::io_context io;
    Session s{io};
    REQUIRE(s.connect(cluster.conninfo() + " application_name=async-test") == "");
    CHECK(s.conn->is_open());
    CHECK(s.conn->backend_pid() > 0);
    CHECK(s.conn->cancel_handle() != nullptr);

    auto sum = s.exec({"SELECT $1::int + 1", {std::string("41")}});
    CHECK(sum.status == QueryResult::Status::ok);
    CHECK(sum.value == std::optional<std::string>("42"));
    CHECK(sum.rows == 1);

    auto null_param = s.exec({"SELECT $1::text IS NULL, NULL::text", {std::nullopt}});
    CHECK(null_param.value == std::optional<std::string>("t"));
    auto null_value = s.exec({"SELECT NULL::text", {}});
    CHECK(null_value.status == QueryResult::Status::ok);
    CHECK_FALSE(null_value.value.has_value());
    auto no_rows = s.exec({"SELECT 1 WHERE false", {}});
    CHECK(no_rows.status == QueryResult::Status::ok);
    CHECK(no_rows.rows == 0);
    CHECK_FALSE(no_rows.value.has_value());

    auto error = s.exec({"SELECT 1 / $1::int", {std::string("0")}});
    CHECK(error.status == QueryResult::Status::sql_error);
    CHECK(error.sqlstate == "22012");
    CHECK(error.message.find("division by zero") != std::string::npos);
    // Two statements in one text are refused by the extended protocol.
    auto two = s.exec({"SELECT 1; SELECT 2", {}});
    CHECK(two.status == QueryResult::Status::sql_error);
    // The session survives both.
    CHECK(s.exec({"SELECT 'still here'", {}}).value == std::optional<std::string>("still here"));

    // 8 MB out and back: more than any socket buffer, so PQflush has to wait.
    const std::string big(8 * 1024 * 1024, 'x');
    auto echoed = s.exec({"SELECT $1::text", {big}});
    REQUIRE(echoed.status == QueryResult::Status::ok);
    CHECK(echoed.value == std::optional<std::string>(big));
    // Invalid UTF-8 in a parameter is the server's error, not the daemon's crash.
    auto bad = s.exec({"SELECT $1::text", {std::string("\xff\xfe")}});
    CHECK(bad.status == QueryResult::Status::sql_error);
    CHECK(bad.sqlstate == "22021");
}

TEST_CASE("async connection: a named statement is prepared once per session and survives errors", "[async]") {
    TestCluster cluster;
    boost::asio::io_context io;
    Session s{io};
    REQUIRE(s.connect(cluster.conninfo() + " application_name=async-test") == "");
    const auto prepared = [&] {
        return s.exec({"SELECT coalesce(string_agg(name || ':' || statement, ',' ORDER BY name), '') "
                       "FROM pg_prepared_statements", {}})
            .value.value_or("?");
    };
    const Statement plus{"SELECT $1::int + 1", {std::string("41")}, "pgd_plus"};
    CHECK(prepared() == "");
    CHECK(s.exec(plus).value == std::optional<std::string>("42"));
    CHECK(prepared() == "pgd_plus:SELECT $1::int + 1");
    // Run again with other values: the same statement, not prepared twice
    // (a second PREPARE of the name would fail with 42P05).
    auto again = s.exec({plus.sql, {std::string("1")}, plus.prepared_name});
    CHECK(again.status == QueryResult::Status::ok);
    CHECK(again.value == std::optional<std::string>("2"));
    // An error while it runs leaves it prepared; one while preparing
    // reports the server's error and prepares nothing.
    auto divide = s.exec({"SELECT 1 / $1::int", {std::string("0")}, "pgd_divide"});
    CHECK(divide.status == QueryResult::Status::sql_error);
    CHECK(divide.sqlstate == "22012");
    auto bad = s.exec({"SELEC 1", {}, "pgd_bad"});
    CHECK(bad.status == QueryResult::Status::sql_error);
    CHECK(bad.sqlstate == "42601");
    CHECK(prepared() == "pgd_divide:SELECT 1 / $1::int,pgd_plus:SELECT $1::int + 1");
    CHECK(s.exec({"SELECT 1 / $1::int", {std::string("4")}, "pgd_divide"}).value == std::optional<std::string>("0"));
    // Gone from the session behind the connection's back: that call fails
    // (nothing ran), the next one prepares it again.
    CHECK(s.exec({"DEALLOCATE pgd_plus", {}}).status == QueryResult::Status::ok);
    CHECK(s.exec(plus).sqlstate == "26000");
    CHECK(s.exec(plus).value == std::optional<std::string>("42"));
    // A new session starts with none.
    REQUIRE(s.connect(cluster.conninfo() + " application_name=async-test") == "");
    CHECK(prepared() == "");
    CHECK(s.exec(plus).value == std::optional<std::string>("42"));
    CHECK(prepared() == "pgd_plus:SELECT $1::int + 1");
}

TEST_CASE("async connection: a session the server ends mid-statement reports broken, the idle watch fires",
          "[async]") {
    TestCluster cluster;
    boost::asio::io_context io;
    Session s{io};
    REQUIRE(s.connect(cluster.conninfo() + " application_name=async-test") == "");

    std::optional<QueryResult> result;
    s.conn->exec({"SELECT pg_sleep(30)", {}}, [&](QueryResult r) { result = std::move(r); });
    REQUIRE(run_until(io, [&] { return !sleeping_pid(cluster).empty(); }, 10s));
    cluster.exec("SELECT pg_terminate_backend(" + std::to_string(s.conn->backend_pid()) + ")");
    REQUIRE(run_until(io, [&] { return result.has_value(); }, 10s));
    CHECK(result->status == QueryResult::Status::broken);
    CHECK(result->message.find("terminating connection") != std::string::npos);
    CHECK_FALSE(s.conn->is_open());
    // A statement on the dead session fails at once, it does not hang.
    CHECK(s.exec({"SELECT 1", {}}, 5s).status == QueryResult::Status::broken);

    // The idle watch: a session the server ends while idle is noticed.
    Session idle{io};
    REQUIRE(idle.connect(cluster.conninfo() + " application_name=async-idle") == "");
    REQUIRE(idle.exec({"SELECT 1", {}}).status == QueryResult::Status::ok);
    bool gone = false;
    idle.conn->watch_idle([&] { gone = true; });
    cluster.exec("SELECT pg_terminate_backend(" + std::to_string(idle.conn->backend_pid()) + ")");
    CHECK(run_until(io, [&] { return gone; }, 10s));
}

TEST_CASE("async connection: the cancel key interrupts the running statement and the session goes on", "[async]") {
    TestCluster cluster;
    boost::asio::io_context io;
    Session s{io};
    REQUIRE(s.connect(cluster.conninfo() + " application_name=async-test") == "");
    std::optional<QueryResult> result;
    s.conn->exec({"SELECT pg_sleep(30)", {}}, [&](QueryResult r) { result = std::move(r); });
    REQUIRE(run_until(io, [&] { return !sleeping_pid(cluster).empty(); }, 10s));
    const auto handle = s.conn->cancel_handle();
    std::string failure = "not sent";
    {
        std::thread canceller([&] { failure = handle->send(); });  // off the loop, as the Executor does
        const bool ended = run_until(io, [&] { return result.has_value(); }, 10s);
        canceller.join();
        REQUIRE(ended);
    }
    CHECK(failure == "");
    CHECK(result->status == QueryResult::Status::sql_error);
    CHECK(result->sqlstate == "57014");
    CHECK(s.exec({"SELECT 3", {}}).value == std::optional<std::string>("3"));
}

TEST_CASE("async connection: failed and hanging logins fail with the reason, within the timeout", "[async]") {
    TestCluster cluster;
    boost::asio::io_context io;

    Session wrong{io};
    const std::string refused =
        wrong.connect("host='" + cluster.dir() + "' port=" + std::to_string(cluster.port()) +
                      " dbname=postgres user=postgres password=wrong passfile=/nonexistent");
    CHECK(refused.find("password authentication failed") != std::string::npos);
    CHECK_FALSE(wrong.conn->is_open());

    Session nowhere{io};
    const std::string absent = nowhere.connect("host=/nonexistent-dir port=1 dbname=postgres");
    CHECK(absent.find("No such file or directory") != std::string::npos);

    Session garbage{io};
    CHECK(!garbage.connect("this is = not a 'conninfo").empty());

    // A server that accepts the connection and never answers.
    boost::asio::ip::tcp::acceptor mute(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    boost::asio::ip::tcp::socket accepted(io);
    mute.async_accept(accepted, [](const boost::system::error_code &) {});
    Session hanging{io};
    const auto t0 = std::chrono::steady_clock::now();
    const std::string timed_out =
        hanging.connect("host=127.0.0.1 port=" + std::to_string(mute.local_endpoint().port()) +
                            " dbname=postgres user=postgres sslmode=disable",
                        500ms);
    CHECK(timed_out.find("timeout expired") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);

    // After all that, the same loop still connects and runs.
    Session fine{io};
    REQUIRE(fine.connect(cluster.conninfo()) == "");
    CHECK(fine.exec({"SELECT 4", {}}).value == std::optional<std::string>("4"));
}

TEST_CASE("async connection: close() with a statement in flight never runs its callback", "[async]") {
    TestCluster cluster;
    boost::asio::io_context io;
    Session s{io};
    REQUIRE(s.connect(cluster.conninfo() + " application_name=async-test") == "");
    bool called = false;
    s.conn->exec({"SELECT pg_sleep(2)", {}}, [&](QueryResult) { called = true; });
    REQUIRE(run_until(io, [&] { return !sleeping_pid(cluster).empty(); }, 10s));
    s.conn->close();
    CHECK_FALSE(s.conn->is_open());
    // Give any late completion the chance to (wrongly) run.
    run_until(io, [] { return false; }, 2500ms);
    CHECK_FALSE(called);
    // And the object can connect again.
    REQUIRE(s.connect(cluster.conninfo()) == "");
    CHECK(s.exec({"SELECT 5", {}}).value == std::optional<std::string>("5"));
}
