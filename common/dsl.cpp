// See dsl.hpp.
#include "common/dsl.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/errors.hpp"
#include "common/graph.hpp"
#include "common/leaf_config.hpp"

namespace durable::dsl {

namespace {

using OrderedJson = nlohmann::ordered_json;

// A node whose step arguments are auto-wrapped and hung under it.
class Composer {
public:
    explicit Composer(std::string node_type) { node_.node_type = std::move(node_type); }

    Composer &left(const std::string &step) { return attach(node_.left, step); }
    Composer &right(const std::string &step) { return attach(node_.right, step); }
    Composer &condition(const std::string &step) { return attach(node_.condition, step); }
    Composer &extra(const std::string &step) {
        node_.extras.push_back(graph_.graft(auto_wrap(step)));
        return *this;
    }
    Composer &query(std::string text) {
        node_.query = std::move(text);
        return *this;
    }
    Composer &query(const OrderedJson &config) { return query(dump_json(config)); }

    std::string json() {
        graph_.set_root(graph_.add(node_));
        return to_json(graph_);
    }

private:
    Composer &attach(std::optional<NodeIndex> &slot, const std::string &step) {
        slot = graph_.graft(auto_wrap(step));
        return *this;
    }

    Graph graph_;
    GraphNode node_;
};

std::string upper(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return text;
}

[[noreturn]] void invalid(const std::string &message) { throw UserError(message); }

}  // namespace

std::string sql(const std::string &query) { return to_json(sql_graph(query)); }

std::string seq(const std::string &first, const std::string &second) {
    return Composer("THEN").left(first).right(second).json();
}

std::string as(const std::string &fut, const std::string &name) {
    if (auto problem = result_name_problem(name)) invalid("df.as: " + *problem);
    Graph graph = auto_wrap(fut);
    graph[graph.root()].result_name = name;
    return to_json(graph);
}

std::string sleep(std::int64_t seconds) {
    const leaf::SleepConfig config{seconds};
    leaf::check(config);
    return Composer("SLEEP").query(leaf::query(config)).json();
}

std::string wait_for_schedule(const std::string &cron_expr, const std::optional<std::string> &timezone) {
    const leaf::ScheduleConfig config{cron_expr, timezone};
    leaf::check(config);
    return Composer("WAIT_SCHEDULE").query(leaf::query(config)).json();
}

std::string loop(const std::string &body, const std::optional<std::string> &condition,
                 std::optional<std::int64_t> min_interval_ms) {
    const leaf::LoopConfig config{min_interval_ms};
    leaf::check(config);
    Composer loop("LOOP");
    loop.left(body);
    if (condition) loop.condition(*condition);
    if (auto text = leaf::query(config)) loop.query(std::move(*text));
    return loop.json();
}

std::string break_loop(const std::optional<std::string> &value) {
    return Composer("BREAK").query(leaf::query(leaf::BreakConfig{value})).json();
}

std::string if_then_else(const std::string &condition, const std::string &then_branch,
                         const std::string &else_branch) {
    return Composer("IF").left(then_branch).right(else_branch).condition(condition).json();
}

std::string if_rows(const std::string &result_name, const std::string &then_branch,
                    const std::string &else_branch) {
    const OrderedJson config = {{"condition_type", "result_has_rows"}, {"result_name", result_name}};
    return Composer("IF").left(then_branch).right(else_branch).query(config).json();
}

std::string join(const std::string &a, const std::string &b) { return Composer("JOIN").left(a).right(b).json(); }

std::string join3(const std::string &a, const std::string &b, const std::string &c) {
    return Composer("JOIN").left(a).right(b).extra(c).json();
}

std::string race(const std::string &a, const std::string &b) { return Composer("RACE").left(a).right(b).json(); }

std::string http(const HttpStep &step, bool http_enabled) {
    if (!http_enabled)
        throw UserError("df.http() is disabled. Set pg_durable.http_enabled = on to enable outbound HTTP requests.",
                        sqlstate::kObjectNotInPrerequisiteState);
    leaf::HttpConfig config;
    config.url = step.url;
    config.method = upper(step.method);
    config.body = step.body;
    // A text that is no JSON stays discarded and fails check() in its turn.
    config.headers = OrderedJson::parse(step.headers_json, nullptr, /*allow_exceptions=*/false);
    config.timeout_seconds = step.timeout_seconds;
    leaf::check(config);
    return Composer("HTTP").query(leaf::query(config)).json();
}

std::string wait_for_signal(const std::string &name, std::optional<std::int64_t> timeout_seconds) {
    const leaf::SignalConfig config{name, timeout_seconds};
    leaf::check(config);
    return Composer("SIGNAL").query(leaf::query(config)).json();
}

std::string retry(const std::string &fut, std::int64_t max_attempts, double initial_interval_seconds,
                  double backoff_rate, double max_interval_seconds) {
    const leaf::RetryConfig config{max_attempts, initial_interval_seconds, backoff_rate, max_interval_seconds};
    leaf::check(config);
    return Composer("RETRY").left(fut).query(leaf::query(config)).json();
}

std::string timeout(const std::string &fut, double seconds) {
    const leaf::TimeoutConfig config{seconds};
    leaf::check(config);
    return Composer("TIMEOUT").left(fut).query(leaf::query(config)).json();
}

PartialIf read_partial_if(const std::string &text) {
    const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("_partial_if"))
        invalid("Invalid if-then-else: left side of !> must be a ?> expression");
    const auto condition = doc.find("condition");
    const auto then_branch = doc.find("then_branch");
    if (condition == doc.end() || !condition->is_string() || then_branch == doc.end() || !then_branch->is_string())
        invalid("Invalid if-then-else: left side of !> must be a ?> expression");
    return {condition->get<std::string>(), then_branch->get<std::string>()};
}

std::string if_else_op(const std::string &partial_if, const std::string &else_branch) {
    const PartialIf partial = read_partial_if(partial_if);
    return if_then_else(partial.condition, partial.then_branch, else_branch);
}

}  // namespace durable::dsl
