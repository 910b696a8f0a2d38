// df.start_once against a real server (SPEC §19.2): concurrent callers with
// one key get one instance, a rolled-back first caller lets a waiter start
// its own, and retention frees a key.
#include <atomic>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

// Sessions of `role` blocked on a lock (here: on another transaction's insert
// of the same key into the unique index).
long lock_waiters(EngineCluster &ec, const std::string &role) {
    return count_of(ec, "SELECT count(*) FROM pg_stat_activity WHERE usename = " + lit(role) +
                            " AND wait_event_type = 'Lock'");
}

std::string start_once_in(pqxx::transaction_base &tx, const std::string &key, const std::string &fut) {
    return tx.exec_params1("SELECT df.start_once($1, $2)", key, fut)[0].as<std::string>();
}

}  // namespace

TEST_CASE("start_once: 8 sessions racing on one key start one instance and all get its id", "[start_once]") {
    EngineCluster ec;
    constexpr int kSessions = 8;

    SECTION("all at once") {
        std::vector<std::unique_ptr<pqxx::connection>> conns;
        for (int i = 0; i < kSessions; ++i)
            conns.push_back(std::make_unique<pqxx::connection>(ec.cluster().conninfo("alice")));
        std::vector<std::string> ids(kSessions);
        std::vector<std::string> errors(kSessions);
        std::atomic<int> ready{0};
        std::vector<std::thread> threads;
        for (int i = 0; i < kSessions; ++i) {
            threads.emplace_back([&, i] {
                try {
                    pqxx::work tx(*conns[static_cast<std::size_t>(i)]);
                    ++ready;
                    while (ready.load() < kSessions) std::this_thread::yield();
                    ids[static_cast<std::size_t>(i)] = start_once_in(tx, "race", "SELECT 'once' AS r");
                    tx.commit();
                } catch (const std::exception &e) {
                    errors[static_cast<std::size_t>(i)] = e.what();
                }
            });
        }
        for (auto &t : threads) t.join();
        for (const auto &e : errors) CHECK(e.empty());
        const std::set<std::string> distinct(ids.begin(), ids.end());
        REQUIRE(distinct.size() == 1);
        CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE idempotency_key = 'race'") == 1);
        CHECK(ec.await(ids[0]) == "completed");
        CHECK(ec.result(ids[0]) == R"({"rows":[{"r":"once"}],"row_count":1})");
    }

    SECTION("seven wait for the first one's commit, then return its id") {
        pqxx::connection first_conn(ec.cluster().conninfo("alice"));
        pqxx::work first(first_conn);
        const std::string first_id = start_once_in(first, "held", "SELECT 1");

        std::vector<std::string> ids(kSessions - 1);
        std::vector<std::string> errors(kSessions - 1);
        std::vector<std::thread> threads;
        for (int i = 0; i < kSessions - 1; ++i) {
            threads.emplace_back([&, i] {
                try {
                    pqxx::connection conn(ec.cluster().conninfo("alice"));
                    pqxx::work tx(conn);
                    ids[static_cast<std::size_t>(i)] = start_once_in(tx, "held", "SELECT 2");
                    tx.commit();
                } catch (const std::exception &e) {
                    errors[static_cast<std::size_t>(i)] = e.what();
                }
            });
        }
        // They block on the index entry of the uncommitted first insert.
        const bool all_waiting = wait_until([&] { return lock_waiters(ec, "alice") == kSessions - 1; }, 20s);
        if (!all_waiting) {
            first.abort();
            for (auto &t : threads) t.join();
            FAIL("the other sessions did not wait for the first one");
        }
        first.commit();
        for (auto &t : threads) t.join();
        for (const auto &e : errors) CHECK(e.empty());
        for (const auto &id : ids) CHECK(id == first_id);
        CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE idempotency_key = 'held'") == 1);
        CHECK(ec.await(first_id) == "completed");
    }
}

TEST_CASE("start_once: a rolled-back first caller lets the waiting one start its own instance", "[start_once]") {
    EngineCluster ec;
    pqxx::connection first_conn(ec.cluster().conninfo("alice"));
    pqxx::work first(first_conn);
    const std::string rolled_back_id = start_once_in(first, "rb", "SELECT 'first' AS who");

    std::string waiter_id, waiter_error;
    std::thread waiter([&] {
        try {
            pqxx::connection conn(ec.cluster().conninfo("alice"));
            pqxx::work tx(conn);
            waiter_id = start_once_in(tx, "rb", "SELECT 'waiter' AS who");
            tx.commit();
        } catch (const std::exception &e) {
            waiter_error = e.what();
        }
    });
    const bool waiting = wait_until([&] { return lock_waiters(ec, "alice") == 1; }, 20s);
    first.abort();
    waiter.join();
    REQUIRE(waiting);
    CHECK(waiter_error.empty());
    CHECK(waiter_id != rolled_back_id);
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE id = " + lit(rolled_back_id)) == 0);
    CHECK(count_of(ec, "SELECT count(*) FROM df.instances WHERE idempotency_key = 'rb'") == 1);
    CHECK(ec.await(waiter_id) == "completed");
    CHECK(ec.result(waiter_id) == R"({"rows":[{"who":"waiter"}],"row_count":1})");
    // The key is now the waiter's.
    CHECK(ec.query("alice", "SELECT df.start_once('rb', 'SELECT 3')") == std::optional<std::string>(waiter_id));
    // Bob's key of the same name is his own, and does not wait for alice.
    const auto bob_id = ec.query("bob", "SELECT df.start_once('rb', 'SELECT 4')");
    REQUIRE(bob_id);
    CHECK(*bob_id != waiter_id);
}

TEST_CASE("start_once: retention frees a key with its instance", "[start_once]") {
    ClusterOptions options;
    options.settings["pg_durable.retention_days"] = "0";
    EngineCluster ec(options, false);
    ::setenv("PGD_MAINTENANCE_INTERVAL_MS", "300", 1);
    ec.start_daemon();
    ::unsetenv("PGD_MAINTENANCE_INTERVAL_MS");

    // While the instance exists (running here), the key returns it.
    const std::string first = *ec.query("alice", "SELECT df.start_once('nightly', df.wait_for_signal('go'))");
    CHECK(ec.query("alice", "SELECT df.start_once('nightly', 'SELECT 1')") == std::optional<std::string>(first));
    CHECK(ec.query("alice", "SELECT df.signal(" + lit(first) + ", 'go')") == std::optional<std::string>("OK"));
    // Retention deletes only terminal instances; with retention_days = 0 the
    // next sweep takes it (so its completion itself may not be observable).
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df.instances WHERE id = " + lit(first)) == 0, 30s,
                       ec.diagnostics(first));
    const std::string second = *ec.query("alice", "SELECT df.start_once('nightly', 'SELECT 2 AS n')");
    CHECK(second != first);
    CHECK(second.size() == 8);
}
