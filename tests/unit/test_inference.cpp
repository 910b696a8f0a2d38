// Unit tests for common/inference: the inferred_status rules of SPEC §15.5.
#include <catch2/catch.hpp>

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
    CHECK(show(out.at("t")) == "pending");
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
    CHECK(show(out.at("r")) == "skipped<race");
    CHECK(show(out.at("r1")) == "cancelled");
    CHECK(show(out.at("r2")) == "skipped<race");
    CHECK(show(out.at("g")) == "skipped<th");
    CHECK(show(out.at("j")) == "pending");

    out = infer_statuses({"i", "cancelled", "j", 1}, nodes, records);
    CHECK(show(out.at("j")) == "skipped<j");
    CHECK(show(out.at("no")) == "skipped<j");
    CHECK(show(out.at("g")) == "skipped<th");
}

TEST_CASE("superseded loop generations are pending again", "[inference]") {
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
    CHECK(show(out.at("L")) == "pending");
    CHECK(show(out.at("b")) == "pending<L");
    CHECK(show(out.at("x")) == "completed");
    CHECK(show(out.at("y")) == "pending<N");
    CHECK(infer_statuses_json({"i", "running", "L", 3}, nodes, records) ==
          R"({"L":["pending",null],"N":["pending",null],"b":["pending","L"],"x":["completed",null],"y":["pending","N"]})");
}
