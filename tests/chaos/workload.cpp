#include "workload.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <utility>

#include "test_engine_common.hpp"

namespace pgd::chaos {

namespace {

using test::lit;

constexpr const char *kDone = R"({"rows":[{"r":"done"}],"row_count":1})";

// Graph builders: each returns a SQL expression that evaluates to graph JSON.
std::string sql(const std::string &query) { return "df.sql(" + lit(query) + ")"; }
std::string seq(const std::vector<std::string> &items) {
    std::string out = items.front();
    for (std::size_t i = 1; i < items.size(); ++i) out = "df.seq(" + out + ", " + items[i] + ")";
    return out;
}
std::string named(const std::string &fut, const std::string &name) { return "df.\"as\"(" + fut + ", " + lit(name) + ")"; }
std::string join(const std::string &a, const std::string &b) { return "df.\"join\"(" + a + ", " + b + ")"; }
std::string join3(const std::string &a, const std::string &b, const std::string &c) {
    return "df.join3(" + a + ", " + b + ", " + c + ")";
}
std::string race(const std::string &a, const std::string &b) { return "df.race(" + a + ", " + b + ")"; }
std::string loop(const std::string &body) { return "df.\"loop\"(" + body + ")"; }
std::string brk(const std::string &value) { return "df.\"break\"(" + lit(value) + ")"; }
std::string iff(const std::string &cond, const std::string &then_branch, const std::string &else_branch) {
    return "df.\"if\"(" + cond + ", " + then_branch + ", " + else_branch + ")";
}
std::string sleep_for(int seconds) { return "df.sleep(" + std::to_string(seconds) + ")"; }
std::string signal_wait(const std::string &name, std::optional<int> timeout = std::nullopt) {
    return "df.wait_for_signal(" + lit(name) + (timeout ? ", " + std::to_string(*timeout) : "") + ")";
}
std::string done() { return sql("SELECT 'done' AS r"); }

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", s);
    return buf;
}

// The ledger insert of (this instance, tag, iter), optionally followed by a
// pause inside the same transaction (a step that is mid-statement for a while).
std::string ledger(const std::string &tag, const std::string &iter_expr, double pause_s = 0.0) {
    std::string q = "INSERT INTO chaos_ledger (inst, tag, iter) VALUES ('{sys_instance_id}', '" + tag + "', " +
                    iter_expr + ")";
    if (pause_s > 0) q += "; SELECT pg_sleep(" + seconds_text(pause_s) + ")";
    return q;
}
std::string ledger(const std::string &tag, int iter, double pause_s = 0.0) {
    return ledger(tag, std::to_string(iter), pause_s);
}

class Builder {
public:
    Builder(std::mt19937 &rng, std::string http_base) : rng_(rng), http_base_(std::move(http_base)) {}

    int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
    double uniform_s(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
    bool coin() { return uniform(0, 1) == 1; }
    double pause() { return uniform_s(0.0, 0.3); }

    // A step that writes (tag, iter) once.
    std::string step(Workflow &w, const std::string &tag, int iter, double pause_s) {
        w.rows.push_back({tag, iter, Expect::once});
        return sql(ledger(tag, iter, pause_s));
    }

    void chain(Workflow &w) {
        std::vector<std::string> items;
        const int n = uniform(3, 6);
        for (int i = 1; i <= n; ++i) items.push_back(step(w, "c", i, pause()));
        items.push_back(done());
        w.fut = seq(items);
        w.result = kDone;
    }

    void join_of_chains(Workflow &w) {
        const auto branch = [&](const std::string &tag, bool with_sleep) {
            std::vector<std::string> items{step(w, tag, 1, pause())};
            if (with_sleep) items.push_back(sleep_for(uniform(1, 3)));
            items.push_back(step(w, tag, 2, pause()));
            return seq(items);
        };
        w.fut = seq({join3(branch("j1", false), branch("j2", coin()), branch("j3", true)), step(w, "jf", 0, 0), done()});
        w.result = kDone;
    }

    // The loser is a statement still running (pg_sleep) when the winner
    // finishes: it must be interrupted and roll back its insert.
    void race_statement(Workflow &w) {
        const std::string winner = step(w, "w", 0, uniform_s(0.1, 0.4));
        w.rows.push_back({"lose", 0, Expect::never});
        const std::string loser = sql(ledger("lose", 0, 90));
        w.fut = seq({step(w, "p", 0, 0), coin() ? race(winner, loser) : race(loser, winner), step(w, "after", 0, 0),
                     done()});
        w.result = kDone;
    }

    // A timer against a statement, either one winning.
    void race_timer(Workflow &w) {
        if (coin()) {
            const std::string winner = seq({step(w, "w", 0, pause()), sql("SELECT 'won' AS r")});
            w.fut = race(winner, sleep_for(600));
            w.result = R"({"rows":[{"r":"won"}],"row_count":1})";
        } else {
            const int s = uniform(1, 3);
            w.rows.push_back({"lose", 0, Expect::never});
            w.fut = race(sleep_for(s), sql(ledger("lose", 0, 90)));
            w.result = R"({"slept":true,"seconds":)" + std::to_string(s) + "}";
        }
    }

    // A loop inside a chain (non-root): the iteration counter travels in a
    // named result, so a repeated or lost iteration shows in the ledger.
    void loop_nonroot(Workflow &w) {
        const int n = uniform(2, 5);
        for (int i = 1; i <= n; ++i) w.rows.push_back({"L", i, Expect::once});
        const std::string body =
            seq({named(sql(ledger("L", "$i + 1") + "; SELECT $i + 1 AS i"), "i"),
                 iff(sql("SELECT $i >= " + std::to_string(n)), brk("out"), sql("SELECT 1"))});
        w.fut = seq({named(sql("SELECT 0 AS i"), "i"), step(w, "pre", 0, 0), loop(body), step(w, "suf", 0, 0), done()});
        w.result = kDone;
    }

    // The graph root is the loop: every iteration is a new execution and named
    // results reset, so the iteration number comes from the ledger itself;
    // execution_count tells a repeated step apart (it would end the loop early).
    void loop_root(Workflow &w) {
        const int n = uniform(2, 4);
        for (int i = 1; i <= n; ++i) w.rows.push_back({"R", i, Expect::once});
        const std::string mine = "FROM chaos_ledger WHERE inst = '{sys_instance_id}' AND tag = 'R'";
        const std::string body =
            seq({sql("INSERT INTO chaos_ledger (inst, tag, iter) SELECT '{sys_instance_id}', 'R', count(*) + 1 " + mine),
                 iff(sql("SELECT count(*) >= " + std::to_string(n) + " " + mine), brk("rdone"), sql("SELECT 1"))});
        w.fut = loop(body);
        w.result = "\"rdone\"";
        w.execution_count = n;
    }

    void sleeps(Workflow &w) {
        w.fut = seq({step(w, "s1", 0, 0), sleep_for(uniform(2, 6)), step(w, "s2", 0, 0), done()});
        w.result = kDone;
    }

    // Two waits for the same name in a row, signals sent at random times
    // (often both before the first wait starts): FIFO, each consumed once.
    void signals(Workflow &w) {
        const auto consume = [&](const std::string &name) {
            return sql(ledger("sig", "($" + name + ".data::jsonb->>'n')::int"));
        };
        w.fut = seq({step(w, "g0", 0, 0), sleep_for(uniform(1, 4)), named(signal_wait("go"), "a"), consume("a"),
                     named(signal_wait("go"), "b"), consume("b"), done()});
        w.rows.push_back({"sig", 1, Expect::once});
        w.rows.push_back({"sig", 2, Expect::once});
        const double first = uniform_s(0.0, 8.0);
        w.signals = {{"go", 1, first}, {"go", 2, first + uniform_s(0.0, 6.0)}};
        w.result = kDone;
    }

    // Two waits for one name at once, in JOIN branches: each gets one signal.
    void signals_join(Workflow &w) {
        const auto branch = [&](const std::string &name) {
            return seq({named(signal_wait("j"), name), sql(ledger("sj", "($" + name + ".data::jsonb->>'n')::int"))});
        };
        w.fut = seq({step(w, "g0", 0, 0), join(branch("x"), branch("y")), done()});
        w.rows.push_back({"sj", 1, Expect::once});
        w.rows.push_back({"sj", 2, Expect::once});
        const double first = uniform_s(0.0, 8.0);
        w.signals = {{"j", 1, first}, {"j", 2, first + uniform_s(0.0, 4.0)}};
        w.result = kDone;
    }

    // A wait with a timeout: the signal comes (usually before the wait
    // starts) long before the timeout, or never and the wait times out.
    void signal_timeout(Workflow &w, bool sent) {
        const std::string record =
            sql(ledger("tm", "CASE WHEN $m.timed_out THEN 0 ELSE (($m.data?)::jsonb->>'n')::int END"));
        w.fut = seq({step(w, "t0", 0, 0), sleep_for(1), named(signal_wait("maybe", sent ? 120 : uniform(2, 6)), "m"),
                     record, done()});
        w.rows.push_back({"tm", sent ? 7 : 0, Expect::once});
        if (sent) w.signals = {{"maybe", 7, uniform_s(0.0, 1.5)}};
        w.result = kDone;
    }

    // A cron wait with seconds (6 fields).
    void cron(Workflow &w) {
        const int every = std::vector<int>{5, 10, 15, 20}[static_cast<std::size_t>(uniform(0, 3))];
        w.fut = seq({step(w, "k0", 0, 0),
                     "df.wait_for_schedule(" + lit("*/" + std::to_string(every) + " * * * * *") + ")",
                     step(w, "k1", 0, 0), done()});
        w.result = kDone;
    }

    // Every step in the other database: at-least-once there.
    void other_database(Workflow &w) {
        std::vector<std::string> items;
        for (int i = 1; i <= 3; ++i) {
            w.rows.push_back({"o", i, Expect::at_least_once});
            items.push_back(sql(ledger("o", i, pause())));
            if (i == 2) items.push_back(sleep_for(1));
        }
        items.push_back(done());
        w.fut = seq(items);
        w.database = kOtherDatabase;
        w.result = kDone;
    }

    // An HTTP step against the local server, which fails (500) and delays at
    // random and is stopped now and then; its status lands in the ledger.
    void http(Workflow &w) {
        w.fut = seq({step(w, "h0", 0, 0),
                     named("df.http(" + lit(http_base_ + "/random/{sys_instance_id}") + ", 'GET')", "h"),
                     sql(ledger("h", "$h.status")), done()});
        w.rows.push_back({"h", 200, Expect::once});
        w.http = true;
        w.result = kDone;
    }

    // A step that fails: its own insert rolls back and nothing after it runs.
    void failing(Workflow &w) {
        w.rows.push_back({"f2", 0, Expect::never});
        w.rows.push_back({"f3", 0, Expect::never});
        w.fut = seq({step(w, "f1", 0, pause()), sql(ledger("f2", "0") + "; SELECT 1/0"), sql(ledger("f3", "0"))});
        w.status = "failed";
        w.error = "SQL execution failed: division by zero";
    }

    // Cancelled by the driver while it sleeps.
    void cancelled(Workflow &w) {
        w.rows.push_back({"x1", 0, Expect::never});
        w.fut = seq({step(w, "x0", 0, 0), sleep_for(3600), sql(ledger("x1", "0"))});
        w.cancel_after_s = uniform_s(1.0, 10.0);
        w.status = "cancelled";
        w.error = "chaos cancel";
    }

private:
    std::mt19937 &rng_;
    std::string http_base_;
};

}  // namespace

std::vector<Workflow> make_workload(int count, double start_window_s, std::mt19937 &rng, const std::string &http_base) {
    Builder b(rng, http_base);
    using Make = std::function<void(Workflow &)>;
    // kind, weight, builder
    const std::vector<std::tuple<std::string, int, Make>> kinds = {
        {"chain", 10, [&](Workflow &w) { b.chain(w); }},
        {"join", 8, [&](Workflow &w) { b.join_of_chains(w); }},
        {"race_statement", 8, [&](Workflow &w) { b.race_statement(w); }},
        {"race_timer", 6, [&](Workflow &w) { b.race_timer(w); }},
        {"loop", 8, [&](Workflow &w) { b.loop_nonroot(w); }},
        {"root_loop", 5, [&](Workflow &w) { b.loop_root(w); }},
        {"sleep", 6, [&](Workflow &w) { b.sleeps(w); }},
        {"signals", 8, [&](Workflow &w) { b.signals(w); }},
        {"signals_join", 5, [&](Workflow &w) { b.signals_join(w); }},
        {"signal_timeout_sent", 4, [&](Workflow &w) { b.signal_timeout(w, true); }},
        {"signal_timeout", 4, [&](Workflow &w) { b.signal_timeout(w, false); }},
        {"cron", 5, [&](Workflow &w) { b.cron(w); }},
        {"other_db", 6, [&](Workflow &w) { b.other_database(w); }},
        {"http", 8, [&](Workflow &w) { b.http(w); }},
        {"failing", 4, [&](Workflow &w) { b.failing(w); }},
        {"cancel", 5, [&](Workflow &w) { b.cancelled(w); }},
    };
    int total_weight = 0;
    for (const auto &k : kinds) total_weight += std::get<1>(k);
    std::vector<Workflow> out;
    for (int i = 0; i < count; ++i) {
        Workflow w;
        w.index = i;
        // Every kind at least once, then by weight.
        std::size_t pick = static_cast<std::size_t>(i);
        if (pick >= kinds.size()) {
            int roll = b.uniform(0, total_weight - 1);
            for (pick = 0; roll >= std::get<1>(kinds[pick]); ++pick) roll -= std::get<1>(kinds[pick]);
        }
        w.kind = std::get<0>(kinds[pick]);
        std::get<2>(kinds[pick])(w);
        w.start_at_s = b.uniform_s(0.0, start_window_s);
        out.push_back(std::move(w));
    }
    std::sort(out.begin(), out.end(), [](const Workflow &a, const Workflow &c) { return a.start_at_s < c.start_at_s; });
    for (std::size_t i = 0; i < out.size(); ++i) out[i].index = static_cast<int>(i);
    return out;
}

}  // namespace pgd::chaos
