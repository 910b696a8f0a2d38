// Unit tests for common/inference: the inferred_status rules of SPEC §15.5.
#include "catch_compat.hpp"

#include <map>
#include <string>
#include <vector>

#include "common/inference.hpp"

using namespace durable::monitor;

namespace {

NodeRow node(std::string id, std::string type, std::string status, std::optional<std::string> stamp = std::nullopt,
             std::optional<std::string> left = std::nullopt, std::optional<std::string> right = std::nullopt,
             std::optional<std::string> query = std::nullopt) {
    NodeRow n;
    n.id = std::move(id);
    n.node_type = std::move(type);
    n.status = std::move(status);
    n.stamp = std::move(stamp);
    n.left_node = std::move(left);
    n.right_node = std::move(right);
    n.query = std::move(query);
    return n;
}

std::string show(const Inferred &i) { return i.status + (i.from_ancestor ? "<" + *i.from_ancestor : ""); }

}  // namespace

TEST_CASE("terminal and plain statuses are their own", "[inference]") {
    InstanceView inst{"i0000001", "running", "t", 1};
    const auto out = infer_statuses(inst,
                                    {node("t", "THEN", "pending", std::nullopt, "a", "b"),
                                     node("a", "SQL", "completed", "i0000001::1"), node("b", "SLEEP", "running",
                                                                                         "i0000001::1")},
                                    {});
    CHECK(show(out.at("t")) == "running");  // the root of a running instance
    CHECK(show(out.at("a")) == "completed");
    CHECK(show(out.at("b")) == "running");
}

TEST_CASE("untaken IF arm, right of a failed THEN, RACE loser, terminal instance", "[inference]") {
    const std::vector<NodeRow> nodes = {
        node("j", "JOIN", "pending", std::nullopt, "if", "race", R"({"extra_nodes":["th"]})"),
        node("if", "IF", "pending", std::nullopt, "yes", "no", R"({"condition_node":"c"})"),
        node("c", "SQL", "completed", "i::1::if::1"), node("yes", "SQL", "pending"),
        node("no", "SQL", "running", "i::1::if::1"),
        node("race", "RACE", "pending", std::nullopt, "l", "r"), node("l", "SQL", "completed", "i::1::race::1::l::1"),
        node("r", "THEN", "pending", std::nullopt, "r1", "r2"), node("r1", "SQL", "cancelled", "i::1::race::1::r::1"),
        node("r2", "SQL", "pending"),
        node("th", "THEN", "pending", std::nullopt, "f", "g"), node("f", "SQL", "failed", "i::1::th::1"),
        node("g", "SQL", "pending")};
    const std::vector<ScopeRecord> records = {{"i::1::race::1", "race", std::string(R"({"race_winner":"left"})")}};
    auto out = infer_statuses({"i", "running", "j", 1}, nodes, records);
    CHECK(show(out.at("yes")) == "skipped<if");  // the else arm runs
    CHECK(show(out.at("no")) == "running");
    CHECK(show(out.at("r")) == "cancelled");  // it ran; its cancelled left side ended it
    CHECK(show(out.at("r1")) == "cancelled");
    CHECK(show(out.at("r2")) == "skipped<race");
    CHECK(show(out.at("g")) == "skipped<th");
    CHECK(show(out.at("th")) == "failed");  // its row waits for the daemon's next commit
    CHECK(show(out.at("race")) == "completed");
    CHECK(show(out.at("if")) == "running");
    CHECK(show(out.at("j")) == "running");

    out = infer_statuses({"i", "cancelled", "j", 1}, nodes, records);
    CHECK(show(out.at("j")) == "skipped<j");
    CHECK(show(out.at("no")) == "skipped<j");
    CHECK(show(out.at("g")) == "skipped<th");
}

TEST_CASE("superseded loop generations are pending again, or running where the current one runs them",
          "[inference]") {
    // Root loop in execution 3; a nested loop at iteration 4 (checkpoint).
    const std::vector<NodeRow> nodes = {
        node("L", "LOOP", "pending", std::nullopt, "b"),
        node("b", "THEN", "completed", "i::2", "x", "N"),
        node("x", "SQL", "completed", "i::3"),
        node("N", "LOOP", "pending", std::nullopt, "y"),
        node("y", "SQL", "completed", "i::3::y::3"),
    };
    const std::vector<ScopeRecord> records = {{"i::3", "N", std::string(R"({"iteration":4,"results":{}})")},
                                              {"i::3", "L", std::string(R"({"iteration":3})")}};
    const auto out = infer_statuses({"i", "running", "L", 3}, nodes, records);
    CHECK(show(out.at("L")) == "running");
    CHECK(show(out.at("b")) == "running");  // x ran in execution 3
    CHECK(show(out.at("x")) == "completed");
    CHECK(show(out.at("N")) == "running");  // x completed: the THEN runs its right side
    CHECK(show(out.at("y")) == "running");  // the body of N's iteration 4
    CHECK(infer_statuses_json({"i", "running", "L", 3}, nodes, records) ==
          R"({"L":["running",null],"N":["running",null],"b":["running",null],"x":["completed",null],"y":["running",null]})");

    // Earlier in execution 3: x runs, so N's nodes still wait.
    auto early = nodes;
    early[2].status = "pending";
    early[2].stamp = "i::2";
    early[4].stamp = "i::2::y::3";
    const auto waiting = infer_statuses({"i", "running", "L", 3}, early, {});
    CHECK(show(waiting.at("x")) == "running");
    CHECK(show(waiting.at("N")) == "pending");
    CHECK(show(waiting.at("y")) == "pending<L");
    CHECK(show(infer_statuses({"i", "pending", "L", 1}, early, {}).at("L")) == "pending");
}

namespace {

// A root loop L whose body b runs a non-root loop N (body s) and then an IF
// whose arms are df.break() and df.sleep(): the sleep ran in execution 1,
// the break ended the loop in execution 3 (issue 11 item 2).
std::vector<NodeRow> nested_loop(const std::string &if_status, const std::string &break_status) {
    return {node("L", "LOOP", "completed", "i::3", "b"),
            node("b", "THEN", "completed", "i::3", "N", "if"),
            node("N", "LOOP", "completed", "i::3", "s"),
            node("s", "SQL", "completed", "i::3::s::1"),
            node("if", "IF", if_status, "i::3", "brk", "slp", R"({"condition_node":"c"})"),
            node("c", "SQL", "completed", "i::3"),
            node("brk", "BREAK", break_status, "i::3"),
            node("slp", "SLEEP", "completed", "i::1")};
}

}  // namespace

TEST_CASE("a nested loop that ended: the arm of an older execution is skipped, nothing pending or running",
          "[inference]") {
    const auto out = infer_statuses({"i", "completed", "L", 3}, nested_loop("completed", "completed"), {});
    CHECK(show(out.at("slp")) == "skipped<if");  // it ran in execution 1; the IF took the break
    for (const auto &[id, inferred] : out) {
        INFO(id << " " << show(inferred));
        CHECK(inferred.status != "pending");
        CHECK(inferred.status != "running");
    }
}

TEST_CASE("once an instance is terminal no node reads pending or running", "[inference]") {
    // Rows as a crash, a cancel or a failure may leave them: stale
    // generations, nodes never reached, a step still marked running.
    std::vector<NodeRow> nodes = nested_loop("pending", "pending");
    nodes[0].status = "pending";
    nodes[1].status = "pending";
    nodes[1].stamp = "i::2";
    nodes[2].status = "running";
    nodes[3].status = "running";
    nodes[5].status = "pending";
    nodes[5].stamp = "i::2";
    for (const std::string status : {"completed", "failed", "cancelled"}) {
        const auto out = infer_statuses({"i", status, "L", 3}, nodes, {{"i::3", "N", std::string(R"({"iteration":2})")}});
        for (const auto &[id, inferred] : out) {
            INFO(status << ": " << id << " " << show(inferred));
            CHECK(inferred.status != "pending");
            CHECK(inferred.status != "running");
        }
    }
}

TEST_CASE("a live IF: its completed condition chooses the arm that runs; the other is skipped at once",
          "[inference]") {
    auto nodes = nested_loop("pending", "pending");
    nodes[0].status = "pending";
    nodes[1].status = "pending";
    nodes[5].result = R"({"rows":[{"done":true}],"row_count":1})";
    auto out = infer_statuses({"i", "running", "L", 3}, nodes, {});
    CHECK(show(out.at("if")) == "running");
    CHECK(show(out.at("brk")) == "running");
    CHECK(show(out.at("slp")) == "skipped<if");
    CHECK(show(out.at("b")) == "running");
    CHECK(show(out.at("L")) == "running");

    nodes[5].result = R"({"rows":[{"done":false}],"row_count":1})";
    out = infer_statuses({"i", "running", "L", 3}, nodes, {});
    CHECK(show(out.at("brk")) == "skipped<if");
    CHECK(show(out.at("slp")) == "running");  // its row is execution 1's

    // No result to judge (a compound condition whose row is not written yet):
    // the IF runs, which arm is not known.
    nodes[5].result.reset();
    out = infer_statuses({"i", "running", "L", 3}, nodes, {});
    CHECK(show(out.at("if")) == "running");
    CHECK(show(out.at("brk")) == "pending");
    CHECK(show(out.at("slp")) == "pending<L");
}

TEST_CASE("compound nodes run while their children do and end when their children decide", "[inference]") {
    // THEN( THEN(a, b), JOIN(x, THEN(y, z), w) )
    std::vector<NodeRow> nodes = {node("t", "THEN", "pending", std::nullopt, "t1", "j"),
                                  node("t1", "THEN", "pending", std::nullopt, "a", "b"),
                                  node("a", "SQL", "pending"),
                                  node("b", "SQL", "pending"),
                                  node("j", "JOIN", "pending", std::nullopt, "x", "t2", R"({"extra_nodes":["w"]})"),
                                  node("x", "SQL", "pending"),
                                  node("t2", "THEN", "pending", std::nullopt, "y", "z"),
                                  node("y", "SQL", "pending"),
                                  node("z", "SQL", "pending"),
                                  node("w", "SIGNAL", "pending")};
    auto at = [&](const std::string &id) -> NodeRow & {
        for (auto &n : nodes)
            if (n.id == id) return n;
        FAIL("no node " << id);
        return nodes[0];
    };
    auto infer = [&](const std::string &status = "running") { return infer_statuses({"i", status, "t", 1}, nodes, {}); };

    auto out = infer("pending");  // not taken up yet
    for (const auto &[id, inferred] : out) CHECK(inferred.status == "pending");

    out = infer();  // the first step runs (its row commits when it ends)
    CHECK(show(out.at("t")) == "running");
    CHECK(show(out.at("t1")) == "running");
    CHECK(show(out.at("a")) == "running");
    CHECK(show(out.at("b")) == "pending");
    CHECK(show(out.at("j")) == "pending");

    at("a").status = "completed";
    at("a").stamp = "i::1";
    out = infer();
    CHECK(show(out.at("b")) == "running");

    at("b").status = "completed";
    at("b").stamp = "i::1";
    out = infer();  // t1's own row rides with a later commit
    CHECK(show(out.at("t1")) == "completed");
    CHECK(show(out.at("j")) == "running");
    for (const std::string id : {"x", "t2", "y", "w"}) CHECK(show(out.at(id)) == "running");
    CHECK(show(out.at("z")) == "pending");

    at("w").status = "running";  // the signal wait is recorded
    at("w").stamp = "i::1::w::1";
    at("y").status = "failed";
    at("y").stamp = "i::1::t2::1";
    at("x").status = "completed";
    at("x").stamp = "i::1::x::1";
    out = infer();
    CHECK(show(out.at("t2")) == "failed");
    CHECK(show(out.at("z")) == "skipped<t2");
    CHECK(show(out.at("j")) == "running");  // waits for w
    CHECK(show(out.at("t")) == "running");

    at("w").status = "completed";
    out = infer();  // the JOIN has decided; the instance's failure is not committed yet
    CHECK(show(out.at("j")) == "failed");
    CHECK(show(out.at("t")) == "failed");

    out = infer("failed");
    CHECK(show(out.at("j")) == "failed");
    CHECK(show(out.at("z")) == "skipped<t2");
}

TEST_CASE("a LOOP runs its condition once the body completed; a decided RACE skips the loser", "[inference]") {
    const std::vector<NodeRow> nodes = {
        node("r", "RACE", "pending", std::nullopt, "L", "s"),
        node("L", "LOOP", "pending", std::nullopt, "body", std::nullopt, R"({"condition_node":"cond"})"),
        node("body", "SQL", "completed", "i::1::L::1::body::1"),
        node("cond", "SQL", "pending"),
        node("s", "SLEEP", "running", "i::1::s::1")};
    auto out = infer_statuses({"i", "running", "r", 1}, nodes, {});
    CHECK(show(out.at("L")) == "running");
    CHECK(show(out.at("cond")) == "running");
    CHECK(show(out.at("s")) == "running");

    out = infer_statuses({"i", "running", "r", 1}, nodes, {{"i::1", "r", std::string(R"({"race_winner":"right"})")}});
    CHECK(show(out.at("L")) == "skipped<r");
    CHECK(show(out.at("cond")) == "skipped<r");
    CHECK(show(out.at("s")) == "running");
}

TEST_CASE("RETRY attempts are generations of its child scope; TIMEOUT decides on expiry", "[inference][retry]") {
    const std::string retry_config = R"({"max_attempts":3,"initial_interval_seconds":1,"backoff_rate":2,"max_interval_seconds":60})";
    const auto nodes_with = [&](const std::string &child_status, const std::string &child_stamp) {
        return std::vector<NodeRow>{node("R", "RETRY", "running", "i::1", "s", std::nullopt, retry_config),
                                    node("s", "SQL", child_status, child_stamp)};
    };
    // Attempt 1 failed, the checkpoint waits for attempt 2: the failed row is
    // of a superseded generation, pending again; the RETRY still runs.
    auto out = infer_statuses({"i", "running", "R", 1}, nodes_with("failed", "i::1::s::1"),
                              {{"i::1", "R", std::string(R"({"attempt":2,"waiting":true})")}});
    CHECK(show(out.at("s")) == "pending<R");
    CHECK(show(out.at("R")) == "running");
    // Attempt 2 began: its step runs (its own row commits only when it ends).
    out = infer_statuses({"i", "running", "R", 1}, nodes_with("failed", "i::1::s::1"),
                         {{"i::1", "R", std::string(R"({"attempt":2})")}});
    CHECK(show(out.at("s")) == "running");
    // A failure before the checkpoint is written does not decide the RETRY...
    out = infer_statuses({"i", "running", "R", 1}, nodes_with("failed", "i::1::s::1"), {});
    CHECK(show(out.at("R")) == "running");
    // ...unless it was the last attempt.
    out = infer_statuses({"i", "running", "R", 1}, nodes_with("failed", "i::1::s::3"),
                         {{"i::1", "R", std::string(R"({"attempt":3})")}});
    CHECK(show(out.at("R")) == "failed");
    // Success decides at once.
    out = infer_statuses({"i", "running", "R", 1}, nodes_with("completed", "i::1::s::2"),
                         {{"i::1", "R", std::string(R"({"attempt":2})")}});
    CHECK(show(out.at("R")) == "completed");

    // TIMEOUT: the child runs in the TIMEOUT's scope; a recorded expiry fails it.
    const std::vector<NodeRow> timed = {node("T", "TIMEOUT", "running", "i::1", "s", std::nullopt, R"({"seconds":5})"),
                                        node("s", "SQL", "cancelled", "i::1")};
    out = infer_statuses({"i", "running", "T", 1}, timed, {{"i::1", "T", std::string(R"({"timed_out":true})")}});
    CHECK(show(out.at("T")) == "failed");
    const std::vector<NodeRow> live = {node("T", "TIMEOUT", "running", "i::1", "s", std::nullopt, R"({"seconds":5})"),
                                       node("s", "SQL", "pending")};
    out = infer_statuses({"i", "running", "T", 1}, live, {});
    CHECK(show(out.at("s")) == "running");
}

TEST_CASE("the root loop of a completed instance reads completed after many executions", "[inference]") {
    // The root row keeps the stamp of the execution that first wrote it; it is
    // the instance's root in every execution, never a superseded one.
    const std::vector<NodeRow> nodes = {node("L", "LOOP", "completed", "i0000001::1", "b"),
                                        node("b", "SQL", "completed", "i0000001::5")};
    auto out = infer_statuses({"i0000001", "completed", "L", 5}, nodes, {});
    CHECK(show(out.at("L")) == "completed");
    CHECK(show(out.at("b")) == "completed");
    // While it runs, the root reads running, whatever execution stamped it.
    const std::vector<NodeRow> running = {node("L", "LOOP", "running", "i0000001::1", "b"),
                                          node("b", "SQL", "running", "i0000001::5")};
    out = infer_statuses({"i0000001", "running", "L", 5}, running, {});
    CHECK(show(out.at("L")) == "running");
}
