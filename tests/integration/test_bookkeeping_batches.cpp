// The daemon's bookkeeping commits the calls of many instances together
// (daemon/pg_engine_store.hpp, group commit), and one instance's trouble
// inside such a batch stays with that instance (DESIGN §2.13).
#include <regex>
#include <sstream>
#include <vector>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace std::chrono_literals;
using namespace pgd::test;

namespace {

// The largest "bookkeeping: N calls in one transaction" of the daemon's log.
long largest_batch(const std::string &log) {
    static const std::regex line("bookkeeping: ([0-9]+) calls in one transaction");
    long largest = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it)
        largest = std::max(largest, std::stol((*it)[1].str()));
    return largest;
}

}  // namespace

TEST_CASE("bookkeeping: 300 sleepers started and woken together commit in batches", "[batch]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE TABLE woke (i int); GRANT ALL ON woke TO alice");
    CHECK(ec.query("alice", "SELECT count(df.start(df.sleep(2) ~> 'INSERT INTO woke VALUES (1)')) "
                            "FROM generate_series(1, 300)") == std::optional<std::string>("300"));
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df.instances WHERE status = 'completed'") == 300, 60s,
                       ec.daemon()->log());
    CHECK(count_of(ec, "SELECT count(*) FROM woke") == 300);
    // Taking 300 instances up and ending 300 sleeps: many calls at once.
    CHECK(largest_batch(ec.daemon()->log()) > 1);
    CHECK_FALSE(ec.daemon()->log_contains("rescanning"));
}

TEST_CASE("bookkeeping: a batch holding an instance whose row a user keeps locked fails alone, the others go on",
          "[batch][hostile]") {
    EngineCluster ec;
    // 100 sleepers started together, so their timers fall due together.
    const auto ids = ec.query("alice", "SELECT string_agg(df.start(df.sleep(2) ~> 'SELECT 1'), ',') "
                                       "FROM generate_series(1, 100)");
    REQUIRE(ids);
    std::vector<std::string> held;
    std::istringstream list(*ids);
    for (std::string id; std::getline(list, id, ',') && held.size() < 10;) held.push_back(id);
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df.instances WHERE status = 'running'") == 100, 20s,
                       ec.daemon()->log());
    // alice cancels ten of them in a transaction she keeps open while the timers fall due.
    pqxx::connection alice(ec.cluster().conninfo("alice"));
    pqxx::work tx(alice);
    for (const auto &id : held) tx.exec("SELECT df.cancel(" + lit(id) + ", 'changed my mind')");

    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df.instances WHERE status = 'completed'") == 90, 20s,
                       ec.daemon()->log());
    for (const auto &id : held) CHECK(ec.status(id) == "running");  // waiting for alice's lock, not failed
    // Some of the ten were in a batch with others: that transaction failed, its calls ran again alone.
    CHECK(ec.daemon()->log_contains("failed, each again alone"));

    tx.commit();
    for (const auto &id : held) CHECK(ec.await(id, 10s) == "cancelled");
    CHECK_FALSE(ec.daemon()->log_contains("rescanning"));
}
