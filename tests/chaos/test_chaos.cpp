// The chaos run (docs/RELIABILITY.md): a seeded mix of workflows of every
// node type is started while a fault injector crashes, pauses, cuts off and
// restarts everything around the daemon. Then the faults stop, everything is
// healed, and the verdict compares each instance with what its graph implies:
// terminal status and result, same-database SQL steps exactly once,
// other-database steps and HTTP at least once (one Idempotency-Key per
// step), signals consumed exactly once, nothing left pending or running,
// bounded daemon memory and df row counts. One summary line says it all.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <queue>
#include <set>
#include <sstream>
#include <thread>

#include "catch_compat.hpp"
#include <pqxx/pqxx>

#include "chaos_log.hpp"
#include "faults.hpp"
#include "test_engine_common.hpp"
#include "workload.hpp"

using namespace pgd::chaos;
using namespace std::chrono_literals;
using pgd::test::lit;

namespace {

struct Plan {
    int workflows = 150;
    double start_window_s = 60;
    double fault_window_s = 110;
    double settle_deadline_s = 180;  // after the faults stop
    FaultTiming timing;
    // Bounds of the verdict.
    long max_rss_kb = 256 * 1024;
    long max_activations_per_instance = 100;
};

Plan plan_for(const Options &o) {
    Plan p;
    if (o.mode == "long") {
        p.workflows = 1000;
        p.fault_window_s = 1800;
        p.settle_deadline_s = 600;
        p.timing = {3.0, 8.0};
    } else if (o.mode != "quick") {
        throw std::runtime_error("--mode must be quick or long");
    }
    if (o.workflows > 0) p.workflows = o.workflows;
    if (o.duration_s > 0) p.fault_window_s = o.duration_s;
    // Starts spread over most of the fault window (quick: about half of it,
    // so the last ones still meet faults).
    p.start_window_s = o.mode == "long" ? p.fault_window_s * 0.9 : p.fault_window_s * 0.55;
    return p;
}

bool is_terminal(const std::string &status) {
    return status == "completed" || status == "failed" || status == "cancelled";
}

// The driver: starts the workflows at their times, sends their signals and
// cancels. Every action survives the server going away: df.start and
// df.signal run in one transaction with a row of the harness's own table, so
// after an error whose commit is in doubt the harness looks there first and
// never starts or signals twice.
class Driver {
public:
    Driver(pgd::test::TestCluster &cluster, RunLog &log, std::vector<Workflow> &workflows)
        : cluster_(cluster), log_(log), workflows_(workflows) {
        for (const auto &w : workflows_) push(w.start_at_s, Action::start, w.index, 0);
    }

    void run(const std::atomic<bool> &abort) {
        while (!queue_.empty() && !abort) {
            const Event e = queue_.top();
            if (e.at_s > log_.now_s()) {
                std::this_thread::sleep_for(50ms);
                continue;
            }
            queue_.pop();
            Workflow &w = workflows_[static_cast<std::size_t>(e.workflow)];
            try {
                handle(e, w);
            } catch (const pqxx::sql_error &err) {
                if (transient(err)) {
                    push(log_.now_s() + 0.5, e.action, e.workflow, e.signal);
                } else {
                    log_.line("driver: " + describe(e, w) + " failed for good: " + err.what());
                    ++errors_;
                }
            } catch (const std::exception &err) {
                // The server is down or went away mid-action: try again shortly.
                push(log_.now_s() + 0.5, e.action, e.workflow, e.signal);
            }
        }
    }

    int errors() const { return errors_; }
    int signals_sent() const { return signals_sent_; }
    int cancels() const { return cancels_; }

private:
    enum class Action { start, signal, cancel };
    struct Event {
        double at_s;
        Action action;
        int workflow;
        int signal;
        bool operator<(const Event &o) const { return at_s > o.at_s; }  // earliest first
    };

    void push(double at_s, Action a, int workflow, int signal) { queue_.push({at_s, a, workflow, signal}); }

    static bool transient(const pqxx::sql_error &e) {
        const std::string state = e.sqlstate();
        // Shutdown, termination, cannot connect yet, recovery.
        return state.rfind("57", 0) == 0 || state.rfind("08", 0) == 0 || state == "40001" || state == "40P01" ||
               state.empty();
    }

    static std::string describe(const Event &e, const Workflow &w) {
        const char *what = e.action == Action::start ? "start" : e.action == Action::signal ? "signal" : "cancel";
        return std::string(what) + " of workflow " + std::to_string(w.index) + " (" + w.kind + ")";
    }

    void handle(const Event &e, Workflow &w) {
        switch (e.action) {
        case Action::start: start(w); break;
        case Action::signal: signal(w, e.signal); break;
        case Action::cancel: cancel(w, e); break;
        }
    }

    void start(Workflow &w) {
        auto id = query_value(cluster_, "SELECT id FROM chaos_started WHERE widx = " + std::to_string(w.index));
        if (!id) {
            pqxx::connection conn(driver_conninfo(cluster_, "alice"));
            pqxx::work tx(conn);
            const std::string label = "chaos-" + std::to_string(w.index) + "-" + w.kind;
            id = tx.exec1("SELECT df.start(" + w.fut + ", " + lit(label) +
                          (w.database.empty() ? "" : ", " + lit(w.database)) + ")")[0]
                     .as<std::string>();
            tx.exec0("INSERT INTO chaos_started (widx, id) VALUES (" + std::to_string(w.index) + ", " + lit(*id) + ")");
            tx.commit();
        }
        w.id = *id;
        w.started_s = log_.now_s();
        if (!w.signals.empty()) push(w.started_s + w.signals[0].after_s, Action::signal, w.index, 0);
        if (w.cancel_after_s) push(w.started_s + *w.cancel_after_s, Action::cancel, w.index, 0);
    }

    // Signals of one workflow go out in order: the next is queued when one committed.
    void signal(Workflow &w, int k) {
        const SignalPlan &s = w.signals[static_cast<std::size_t>(k)];
        const std::string key = std::to_string(w.index) + ", " + lit(s.name) + ", " + std::to_string(s.n);
        if (!query_value(cluster_, "SELECT 1 FROM chaos_sent WHERE (widx, name, n) = (" + key + ")")) {
            pqxx::connection conn(driver_conninfo(cluster_, "alice"));
            pqxx::work tx(conn);
            tx.exec1("SELECT df.signal(" + lit(w.id) + ", " + lit(s.name) + ", " +
                     lit("{\"n\":" + std::to_string(s.n) + "}") + ")");
            tx.exec0("INSERT INTO chaos_sent (widx, name, n) VALUES (" + key + ")");
            tx.commit();
            ++signals_sent_;
        }
        if (static_cast<std::size_t>(k + 1) < w.signals.size()) {
            const double next = w.started_s + w.signals[static_cast<std::size_t>(k + 1)].after_s;
            push(std::max(next, log_.now_s()), Action::signal, w.index, k + 1);
        }
    }

    // Cancelled while its long SLEEP runs (so what precedes it has happened).
    void cancel(Workflow &w, const Event &e) {
        const auto sleeping = query_value(cluster_, "SELECT status FROM df.nodes WHERE instance_id = " + lit(w.id) +
                                                        " AND node_type = 'SLEEP'");
        if (sleeping != std::optional<std::string>("running")) {
            const auto status = query_value(cluster_, "SELECT status FROM df.instances WHERE id = " + lit(w.id));
            if (status && is_terminal(*status)) {
                log_.line("driver: workflow " + std::to_string(w.index) + " ended (" + *status +
                          ") before it could be cancelled");
                return;
            }
            push(log_.now_s() + 1.0, Action::cancel, e.workflow, 0);
            return;
        }
        pqxx::connection conn(driver_conninfo(cluster_, "alice"));
        pqxx::nontransaction tx(conn);
        tx.exec1("SELECT df.cancel(" + lit(w.id) + ", 'chaos cancel')");
        ++cancels_;
    }

    pgd::test::TestCluster &cluster_;
    RunLog &log_;
    std::vector<Workflow> &workflows_;
    std::priority_queue<Event> queue_;
    int errors_ = 0;
    int signals_sent_ = 0;
    int cancels_ = 0;
};

using LedgerCounts = std::map<std::string, std::map<std::pair<std::string, int>, long>>;  // inst -> (tag, iter) -> n

LedgerCounts ledger_counts(pgd::test::TestCluster &cluster, const std::string &db) {
    LedgerCounts out;
    for (const auto &row : query_rows(cluster, "SELECT inst, tag, iter, count(*) FROM chaos_ledger GROUP BY 1, 2, 3", db))
        out[row[0].as<std::string>()][{row[1].as<std::string>(), row[2].as<int>()}] = row[3].as<long>();
    return out;
}

}  // namespace

TEST_CASE("chaos: mixed workflows under random faults; nothing lost, duplicated or stuck", "[chaos]") {
    const Options &opts = options();
    const Plan plan = plan_for(opts);
    const unsigned seed = opts.seed != 0 ? opts.seed : static_cast<unsigned>(std::time(nullptr));
    RunLog log("chaos-" + opts.mode + ".log");
    log.line("chaos " + opts.mode + ": seed " + std::to_string(seed) + ", " + std::to_string(plan.workflows) +
             " workflows, faults for " + std::to_string(static_cast<int>(plan.fault_window_s)) + " s (log " +
             log.path() + "; rerun with --seed " + std::to_string(seed) + ")");

    pgd::test::ClusterOptions cluster_options;
    cluster_options.settings = {
        {"max_connections", "200"},
        // Enough step connections that steps do not time out queueing for
        // one (a designed failure, not one the harness looks for).
        {"pg_durable.max_user_connections", "30"},
        {"pg_durable.execution_acquire_timeout", "900"},
        {"pg_durable.http_enabled", "on"},
        {"pg_durable.http_allowed_hosts", "127.0.0.1"},
        {"pg_durable.http_allow_private_networks", "on"},
        // Outages of the HTTP server last up to 8 s; 10 attempts back off for minutes.
        {"pg_durable.http_max_attempts", "10"},
    };
    pgd::test::EngineCluster ec(cluster_options, /*start_daemon=*/false);
    auto &cluster = ec.cluster();
    cluster.exec(std::string(kLedgerDdl) + "; GRANT SELECT, INSERT ON chaos_ledger TO alice");
    cluster.exec("CREATE TABLE chaos_started (widx int PRIMARY KEY, id text NOT NULL); "
                 "CREATE TABLE chaos_sent (widx int, name text, n int, PRIMARY KEY (widx, name, n)); "
                 "GRANT SELECT, INSERT ON chaos_started, chaos_sent TO alice");
    cluster.exec("SELECT df.grant_usage('alice', true)");
    cluster.exec(std::string("CREATE DATABASE ") + kOtherDatabase);
    cluster.exec(std::string("CREATE EXTENSION pg_durable_target; ") + kLedgerDdl +
                     "; GRANT SELECT, INSERT ON chaos_ledger TO alice",
                 kOtherDatabase);

    std::mt19937 rng(seed);
    FaultInjector injector(cluster, log, seed, plan.timing);
    auto workflows = make_workload(plan.workflows, plan.start_window_s, rng,
                                   "http://127.0.0.1:" + std::to_string(injector.http_port()));
    std::map<std::string, int> kinds;
    for (const auto &w : workflows) ++kinds[w.kind];
    {
        std::string mix;
        for (const auto &[k, n] : kinds) mix += (mix.empty() ? "" : ", ") + k + " " + std::to_string(n);
        log.line("workload: " + mix);
    }
    injector.start_first_daemon();

    // Drive and inject at once.
    const auto t0 = Clock::now();
    std::atomic<bool> abort{false};
    std::atomic<bool> driver_done{false};
    Driver driver(cluster, log, workflows);
    std::string driver_failure;
    std::thread driver_thread([&] {
        try {
            driver.run(abort);
        } catch (const std::exception &e) {
            driver_failure = e.what();
        }
        driver_done = true;
    });
    std::string injector_failure;
    try {
        injector.run(t0 + std::chrono::milliseconds(static_cast<long>(plan.fault_window_s * 1000)),
                     [] { return false; });
    } catch (const std::exception &e) {
        injector_failure = e.what();
    }
    log.line("faults stop: " + std::to_string(injector.faults()) + " fired (" + injector.breakdown() + ")");
    injector.heal();
    // The driver finishes its last signals and cancels against a healed system.
    const bool driver_finished = pgd::test::wait_until([&] { return driver_done.load(); }, 120s, 100ms);
    abort = true;
    driver_thread.join();
    CHECK(driver_failure == "");
    CHECK(injector_failure == "");
    CHECK(driver_finished);

    // Wait for every instance to end.
    std::map<std::string, const Workflow *> by_id;
    for (const auto &w : workflows)
        if (!w.id.empty()) by_id[w.id] = &w;
    long open = -1;
    pgd::test::wait_until(
        [&] {
            try {
                open = std::stol(query_value(cluster, "SELECT count(*) FROM df.instances WHERE status IN "
                                                      "('pending', 'running')")
                                     .value_or("-1"));
            } catch (const std::exception &) {
                open = -1;
            }
            return open == 0;
        },
        std::chrono::milliseconds(static_cast<long>(plan.settle_deadline_s * 1000)), 500ms);
    const double settled_s = log.now_s();
    log.line("settled: " + std::to_string(open) + " instance(s) still pending or running");

    // --- The verdict ---------------------------------------------------------------
    struct Instance {
        std::string status, error, result;
        long execution_count = 0;
    };
    std::map<std::string, Instance> instances;
    for (const auto &row : query_rows(cluster, "SELECT id, status, coalesce(error, ''), coalesce(df.result(id), "
                                               "'<null>'), execution_count FROM df.instances"))
        instances[row[0].as<std::string>()] = {row[1].as<std::string>(), row[2].as<std::string>(),
                                               row[3].as<std::string>(), row[4].as<long>()};
    const LedgerCounts here = ledger_counts(cluster, "postgres");
    const LedgerCounts there = ledger_counts(cluster, kOtherDatabase);
    std::map<std::string, std::vector<pgd::test::HttpTestServer::Hit>> hits;
    const auto all_hits = injector.http_hits();
    for (const auto &hit : all_hits) {
        const std::string prefix = "/random/";
        if (hit.target.rfind(prefix, 0) == 0) hits[hit.target.substr(prefix.size())].push_back(hit);
    }

    long lost = 0, duplicated = 0, stuck = 0, wrong = 0, unexpected = 0, not_started = 0;
    long other_db_repeats = 0, http_steps = 0, http_attempts = 0, exactly_once_rows = 0, signal_rows = 0;
    std::vector<std::string> findings;
    const auto finding = [&](const Workflow &w, const std::string &text) {
        findings.push_back("workflow " + std::to_string(w.index) + " (" + w.kind + ", instance " + w.id + "): " + text);
    };
    for (const auto &w : workflows) {
        if (w.id.empty()) {
            ++not_started;
            finding(w, "never started");
            continue;
        }
        const auto it = instances.find(w.id);
        if (it == instances.end()) {
            ++lost;
            finding(w, "instance missing from df.instances");
            continue;
        }
        const Instance &in = it->second;
        if (!is_terminal(in.status)) {
            ++stuck;
            finding(w, "stuck " + in.status);
        } else {
            bool ok = in.status == w.status;
            if (w.result && in.result != *w.result) ok = false;
            if (w.error && in.error != *w.error) ok = false;
            if (w.execution_count && in.execution_count != *w.execution_count) ok = false;
            if (!ok) {
                ++wrong;
                finding(w, "ended " + in.status + " error '" + in.error + "' result " + in.result + " executions " +
                               std::to_string(in.execution_count) + "; expected " + w.status +
                               (w.error ? " error '" + *w.error + "'" : "") + (w.result ? " result " + *w.result : "") +
                               (w.execution_count ? " executions " + std::to_string(*w.execution_count) : ""));
            }
        }
        const LedgerCounts &ledger = w.database.empty() ? here : there;
        std::map<std::pair<std::string, int>, long> actual;
        if (const auto l = ledger.find(w.id); l != ledger.end()) actual = l->second;
        std::set<std::pair<std::string, int>> known;
        for (const auto &row : w.rows) {
            const auto key = std::make_pair(row.tag, row.iter);
            known.insert(key);
            const long n = actual.count(key) ? actual[key] : 0;
            const std::string name = row.tag + "/" + std::to_string(row.iter);
            switch (row.expect) {
            case Expect::once:
                ++exactly_once_rows;
                if (row.tag == "sig" || row.tag == "sj" || (row.tag == "tm" && row.iter != 0)) ++signal_rows;
                if (n == 0) {
                    ++lost;
                    finding(w, "ledger row " + name + " missing");
                } else if (n > 1) {
                    duplicated += n - 1;
                    finding(w, "ledger row " + name + " written " + std::to_string(n) + " times");
                }
                break;
            case Expect::at_least_once:
                if (n == 0) {
                    ++lost;
                    finding(w, "ledger row " + name + " (other database) missing");
                }
                other_db_repeats += std::max(0L, n - 1);
                break;
            case Expect::never:
                if (n > 0) {
                    ++unexpected;
                    finding(w, "ledger row " + name + " must not exist, found " + std::to_string(n));
                }
                break;
            }
        }
        for (const auto &[key, n] : actual)
            if (!known.count(key)) {
                ++unexpected;
                finding(w, "unexpected ledger row " + key.first + "/" + std::to_string(key.second) + " x" +
                               std::to_string(n));
            }
        if (w.http) {
            ++http_steps;
            const auto &h = hits[w.id];
            http_attempts += static_cast<long>(h.size());
            std::set<std::string> keys;
            for (const auto &hit : h) keys.insert(hit.idempotency_key);
            if (h.empty()) {
                ++lost;
                finding(w, "HTTP step never reached the server");
            } else if (keys.size() != 1 || keys.begin()->empty()) {
                ++wrong;
                finding(w, std::to_string(keys.size()) + " different Idempotency-Keys over " +
                               std::to_string(h.size()) + " attempts");
            }
        }
    }
    // Instances nobody asked for (a df.start that ran twice).
    const long instance_count = std::stol(query_value(cluster, "SELECT count(*) FROM df.instances").value_or("0"));
    const long extra_instances = instance_count - static_cast<long>(by_id.size());
    if (extra_instances != 0) {
        duplicated += std::abs(extra_instances);
        findings.push_back(std::to_string(extra_instances) + " instance(s) more than the driver started");
    }
    // Signals: all consumed (none left queued), each once (the ledger rows above).
    const long leftover_signals = std::stol(query_value(cluster, "SELECT count(*) FROM df._signals").value_or("-1"));
    if (leftover_signals != 0) {
        ++wrong;
        findings.push_back(std::to_string(leftover_signals) + " signal(s) left in df._signals");
    }

    // Bounded resources.
    std::string rows_text;
    long activations = 0;
    for (const auto &row : query_rows(cluster, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
                                               "c.relnamespace WHERE n.nspname = 'df' AND c.relkind = 'r' ORDER BY 1")) {
        const std::string table = row[0].as<std::string>();
        const long n = std::stol(query_value(cluster, "SELECT count(*) FROM df." + table).value_or("-1"));
        if (table == "_activations") activations = n;
        rows_text += (rows_text.empty() ? "" : " ") + table + "=" + std::to_string(n);
    }
    long rss_kb = 0;
    for (long kb : injector.daemon_rss_kb()) rss_kb = std::max(rss_kb, kb);
    const bool rows_bounded = activations <= plan.max_activations_per_instance * std::max(1L, instance_count);
    const bool rss_bounded = rss_kb > 0 && rss_kb <= plan.max_rss_kb;

    for (std::size_t i = 0; i < findings.size() && i < 40; ++i) log.line("finding: " + findings[i]);
    if (findings.size() > 40) log.line("... and " + std::to_string(findings.size() - 40) + " more findings");
    if (!findings.empty() || stuck > 0) {
        log.line(injector.daemon_log_tails());
        for (const auto &w : workflows)
            if (!w.id.empty() && instances.count(w.id) && !is_terminal(instances[w.id].status))
                log.line(ec.diagnostics(w.id).substr(0, 3000));
    }
    log.line("df rows: " + rows_text);
    std::ostringstream summary;
    summary << "chaos: " << workflows.size() << " workflows, " << injector.faults() << " faults, lost " << lost
            << ", duplicated " << duplicated << ", stuck " << stuck << ", wrong " << wrong << ", unexpected "
            << unexpected << "; " << exactly_once_rows << " exactly-once rows, " << signal_rows
            << " signals consumed once (" << driver.signals_sent() << " sent), " << driver.cancels() << " cancels, "
            << http_steps << " HTTP steps in " << http_attempts << " attempts, " << other_db_repeats
            << " other-database re-runs; daemon RSS " << rss_kb / 1024 << " MB, _activations " << activations
            << "; seed " << seed << ", " << static_cast<int>(settled_s) << " s";
    log.line(summary.str());
    log.line("faults: " + injector.breakdown());

    CHECK(not_started == 0);
    CHECK(driver.errors() == 0);
    CHECK(lost == 0);
    CHECK(duplicated == 0);
    CHECK(stuck == 0);
    CHECK(wrong == 0);
    CHECK(unexpected == 0);
    CHECK(rows_bounded);
    CHECK(rss_bounded);
    CHECK(injector.faults() > 0);
}
