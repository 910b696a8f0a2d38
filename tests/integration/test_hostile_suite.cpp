// The adversarial suite of issue 8: victims' workflows of every node type
// run on their schedule while two attackers do their worst — mallory with
// nothing but LOGIN, eve with df usage. Pass: the daemon never restarts,
// every victim completes with the right result within its expected time
// plus a second, and every attack gets a clear error or changes nothing.
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

namespace {

struct Victim {
    std::string role;
    std::string graph;
    std::chrono::milliseconds expected;  // its own sleeps and waits
    std::string result;                  // df.result when completed
    std::string id = {};
    std::chrono::steady_clock::time_point started = {};
};

}  // namespace

TEST_CASE("hostile: attackers with LOGIN only and with df usage cannot disturb other roles' workflows", "[hostile]") {
    EngineCluster ec;
    ec.cluster().exec("CREATE ROLE mallory " + kLogin + "; CREATE ROLE eve " + kLogin + "; SELECT df.grant_usage('eve'); "
                      "CREATE TABLE victim_log (who text, n int); GRANT ALL ON victim_log TO alice, bob");
    const auto pid = ec.daemon()->pid();

    std::vector<Victim> victims = {
        {"alice", "'INSERT INTO victim_log VALUES (''chain'', 1)' ~> df.sleep(1) ~> 'SELECT 2 AS n'", 1000ms,
         R"({"rows":[{"n":2}],"row_count":1})"},
        {"bob", "df.\"join\"('SELECT 1 AS a', df.sleep(1) ~> 'SELECT 2 AS b')", 1000ms,
         R"([{"rows":[{"a":1}],"row_count":1},{"rows":[{"b":2}],"row_count":1}])"},
        {"alice", "(df.sleep(1) ~> 'SELECT ''fast'' AS w') | (df.sleep(30) ~> 'SELECT ''slow'' AS w')", 1000ms,
         R"({"rows":[{"w":"fast"}],"row_count":1})"},
        {"bob", "'SELECT true AS go' ?> 'SELECT ''then'' AS arm' !> 'SELECT ''else'' AS arm'", 0ms,
         R"({"rows":[{"arm":"then"}],"row_count":1})"},
        {"alice", "'SELECT 0' ~> df.loop('INSERT INTO victim_log VALUES (''loop'', 1)' ~> "
                  "('SELECT count(*) >= 3 FROM victim_log WHERE who = ''loop''' ?> df.break('\"done\"') !> df.sleep(1)), "
                  "NULL, 0)",
         2000ms, R"("done")"},
        {"bob", "df.wait_for_signal('go', 60)", 0ms, ""},  // measured from its signal
        {"alice", "df.wait_for_schedule('* * * * * *') ~> 'SELECT 7 AS seven'", 1000ms,
         R"({"rows":[{"seven":7}],"row_count":1})"},
    };
    for (auto &v : victims) {
        v.id = ec.start(v.graph, v.role);
        v.started = std::chrono::steady_clock::now();
    }
    const std::string signal_victim = victims[5].id;

    // mallory: every forged wake-up shape, for every victim.
    {
        pqxx::connection conn(ec.cluster().conninfo("mallory"));
        pqxx::nontransaction tx(conn);
        for (const auto &v : victims)
            for (const char *kind : {"start:", "signal:", "cancel:", "CANCEL:", "cancel: ", ""})
                tx.exec("NOTIFY df_wakeup, " + lit(kind + v.id));
        for (const char *junk : {"", ":", "cancel", "cancel:ffffffffff", "\\x00", "signal:../../etc"})
            tx.exec("NOTIFY df_wakeup, " + lit(junk));
        tx.exec("SELECT pg_notify('df_wakeup', 'cancel:' || lpad(to_hex(i), 8, '0')) FROM generate_series(1, 50000) i");
        // No df function is open to mallory.
        const std::vector<std::string> calls = {"df.cancel(" + lit(victims[0].id) + ")",
                                                "df.signal(" + lit(signal_victim) + ", 'go')",
                                                "df.result(" + lit(victims[0].id) + ")", "df.start('SELECT 1')"};
        for (const auto &call : calls) {
            CAPTURE(call);
            CHECK(ec.error_of("mallory", "SELECT " + call));
        }
    }

    // eve: malformed graphs, a flood of starts and signals on her own
    // instances, her own instance held locked, and every df function on the
    // victims' ids.
    for (const char *graph : {R"({"node_type":"SLEEP","query":"x"})",
                              R"({"node_type":"SLEEP","query":"99999999999999999999999"})",
                              R"({"node_type":"SLEEP","query":"-5"})",
                              R"({"node_type":"SIGNAL","query":"{\"signal_name\":null}"})",
                              R"({"node_type":"SIGNAL","query":"{}"})",
                              R"({"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":5}"})",
                              R"({"node_type":"LOOP"})", R"({"node_type":"THEN","left":{"node_type":"BOGUS"}})",
                              R"({"node_type":"HTTP","query":"{\"url\":7}"})"}) {
        CAPTURE(graph);
        const auto error = ec.error_of("eve", "SELECT df.start(" + lit(graph) + ")");
        CHECK(error);
    }
    const auto own = ec.start("df.wait_for_signal('never')", "eve");  // floods of 'x' queue up, unconsumed
    for (int i = 0; i < 200; ++i) ec.start("'SELECT " + std::to_string(i) + "'", "eve");
    ec.query("eve", "SELECT df.signal(" + lit(own) + ", 'x') FROM generate_series(1, 200)");
    for (const auto &v : victims) {
        CAPTURE(v.id);
        CHECK(ec.error_of("eve", "SELECT df.cancel(" + lit(v.id) + ")"));
        CHECK(ec.error_of("eve", "SELECT df.signal(" + lit(v.id) + ", 'go')"));
        CHECK_FALSE(ec.query("eve", "SELECT df.result(" + lit(v.id) + ")"));  // invisible: NULL
        CHECK_FALSE(ec.query("eve", "SELECT df.status(" + lit(v.id) + ")"));
    }
    pqxx::connection eve(ec.cluster().conninfo("eve"));
    pqxx::work held(eve);
    held.exec("SELECT df.cancel(" + lit(own) + ")");

    // The signal victim gets its signal from its owner now, in the middle of
    // it all; it must complete within a second of the signal.
    const auto signalled_at = ec.cluster().query_value("SELECT clock_timestamp()::text").value_or("");
    CHECK(ec.query("bob", "SELECT df.signal(" + lit(signal_victim) + ", 'go', '{\"ok\":true}')") ==
          std::optional<std::string>("OK"));
    victims[5].result = R"({"signal_name":"go","timed_out":false,"data":{"ok":true}})";

    for (auto &v : victims) {
        CAPTURE(v.graph);
        REQUIRE_EVENTUALLY(ec.status(v.id) == "completed", v.expected + 10s, ec.diagnostics(v.id));
        CHECK(ec.result(v.id) == v.result);
        // Each finished within its own time plus a second (recorded by the server).
        const std::string since = v.id == signal_victim ? lit(signalled_at) + "::timestamptz" : "created_at";
        const auto seconds = std::stod(ec.cluster()
                                           .query_value("SELECT extract(epoch FROM completed_at - " + since +
                                                        ") FROM df.instances WHERE id = " + lit(v.id))
                                           .value_or("999"));
        // A cron wait every second may wait up to a second before its first time.
        const double slack = v.graph.find("schedule") != std::string::npos ? 2.0 : 1.0;
        CHECK(seconds < std::chrono::duration<double>(v.expected).count() + slack);
    }
    held.commit();
    CHECK(ec.await(own, 10s) == "cancelled");
    CHECK(ec.daemon()->pid() == pid);
    CHECK(ec.daemon()->running());
}
