// The chaos workload: workflows of every node type, each with what the
// driver expects of it, computed from its graph alone (not from the engine):
// its terminal status, its result or error, and the ledger rows its SQL steps
// must leave. Every SQL step inserts (instance, tag, iteration) into a
// ledger table without a unique constraint, so a step that ran twice shows up
// as a duplicate row and a step that was lost as a missing one.
#pragma once

#include <optional>
#include <random>
#include <string>
#include <vector>

namespace pgd::chaos {

// The ledger (same shape in both databases); no unique constraint on purpose.
constexpr const char *kLedgerDdl =
    "CREATE TABLE chaos_ledger (inst text NOT NULL, tag text NOT NULL, iter int NOT NULL, "
    "at timestamptz NOT NULL DEFAULT clock_timestamp())";
// The database of the "steps in another database" workflows (at-least-once).
constexpr const char *kOtherDatabase = "chaos_other";

enum class Expect { once, at_least_once, never };

struct LedgerRow {
    std::string tag;
    int iter = 0;
    Expect expect = Expect::once;
};

struct SignalPlan {
    std::string name;
    int n = 0;             // payload {"n": n}
    double after_s = 0.0;  // after the start committed
};

struct Workflow {
    int index = 0;
    std::string kind;
    std::string fut;       // the graph, a SQL expression of df.* calls
    std::string database;  // "" = the extension's database
    double start_at_s = 0.0;
    std::vector<SignalPlan> signals;      // sent in this order
    std::optional<double> cancel_after_s;  // df.cancel once its SLEEP runs, not before this

    // What the graph implies.
    std::string status = "completed";
    std::optional<std::string> result;     // df.result text
    std::optional<std::string> error;      // df.instances.error
    std::optional<long> execution_count;   // root loops
    std::vector<LedgerRow> rows;            // in database
    bool http = false;                      // one HTTP step on /random/<instance id>

    // Filled by the driver.
    std::string id;
    double started_s = -1.0;
};

// count workflows of a seeded mix, starting within [0, start_window_s).
// http_base: the local test server, e.g. http://127.0.0.1:12345
std::vector<Workflow> make_workload(int count, double start_window_s, std::mt19937 &rng, const std::string &http_base);

}  // namespace pgd::chaos
