// The workflow DSL (SPEC.md §6, §7, §8): one pure function per constructor and
// operator, each returning the graph JSON text the SQL function returns.
// Arguments that are steps are auto-wrapped (graph.hpp), so plain SQL text
// works wherever a step is expected. Identical calls give identical text.
//
// Errors are durable::UserError with the exact SPEC texts. Pure C++: settings
// such as pg_durable.http_enabled arrive as arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace durable::dsl {

// df.sql: one SQL node; the text is the query as is (never auto-wrapped).
std::string sql(const std::string &query);

// df.seq, `a ~> b`: THEN.
std::string seq(const std::string &first, const std::string &second);

// df.as, `fut |=> 'name'`: names the step's result (replacing an earlier name).
std::string as(const std::string &fut, const std::string &name);

// df.sleep: SLEEP with query "<seconds>".
std::string sleep(std::int64_t seconds);

// df.wait_for_schedule: WAIT_SCHEDULE {"cron_expr":..[,"timezone":..]}, the
// expression and zone checked by durable::cron now rather than at run time.
std::string wait_for_schedule(const std::string &cron_expr, const std::optional<std::string> &timezone);

// df.loop: LOOP, body on the left, optional while-condition, query
// {"min_interval_ms":N} only when an interval is given.
std::string loop(const std::string &body, const std::optional<std::string> &condition,
                 std::optional<std::int64_t> min_interval_ms);

// df.break: BREAK {"break_value":<string|null>}; the value is a literal.
std::string break_loop(const std::optional<std::string> &value);

// df.if: IF, then on the left, else on the right, the condition as
// condition_node.
std::string if_then_else(const std::string &condition, const std::string &then_branch,
                         const std::string &else_branch);

// df.if_rows: IF decided by whether a named SQL result has rows.
std::string if_rows(const std::string &result_name, const std::string &then_branch,
                    const std::string &else_branch);

// df.join / `a & b`, df.join3 (third branch in extra_nodes), df.race / `a | b`.
std::string join(const std::string &a, const std::string &b);
std::string join3(const std::string &a, const std::string &b, const std::string &c);
std::string race(const std::string &a, const std::string &b);

// df.http's arguments, defaults as in SPEC §6.
struct HttpStep {
    std::string url;
    std::string method = "POST";
    std::optional<std::string> body;
    std::string headers_json = "{}";
    std::int64_t timeout_seconds = 30;
};

// df.http: HTTP {"url","method" (uppercased),"body","headers","timeout_seconds"}
// after the DSL-time checks of SPEC §14, in their order.
std::string http(const HttpStep &step, bool http_enabled);

// df.wait_for_signal: SIGNAL {"signal_name":..,"timeout_seconds":<int|null>}.
std::string wait_for_signal(const std::string &name, std::optional<std::int64_t> timeout_seconds);

// df.retry: RETRY with the child on the left and query
// {"max_attempts":N,"initial_interval_seconds":x,"backoff_rate":x,"max_interval_seconds":x}
// (numbers as float8 prints them), after the checks of SPEC §19.3.
std::string retry(const std::string &fut, std::int64_t max_attempts, double initial_interval_seconds = 1,
                  double backoff_rate = 2, double max_interval_seconds = 60);

// df.timeout: TIMEOUT with the child on the left and query {"seconds":x}.
std::string timeout(const std::string &fut, double seconds);

// The left side of `!>`: what df.if_then_op (`cond ?> then`) built.
struct PartialIf {
    std::string condition;
    std::string then_branch;
};

// Reads df.if_then_op's jsonb text; anything else raises
// "Invalid if-then-else: left side of !> must be a ?> expression".
PartialIf read_partial_if(const std::string &text);

// df.if_else_op, `partial !> else`: df.if(cond, then, else).
std::string if_else_op(const std::string &partial_if, const std::string &else_branch);

}  // namespace durable::dsl
