// The DSL functions of SPEC.md §6 and the C halves of the §7 operators. Each
// entry point reads its arguments in the PG zone (NULL checks, the setvar
// guard on every argument that is auto-wrapped as a step), then builds the
// graph text in the C++ zone with common/dsl.hpp.
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"
}

#include <optional>
#include <string>

#include "common/dsl.hpp"
#include "extension/boundary.hpp"
#include "extension/guc.hpp"
#include "extension/helper_guard.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df_sql);
PG_FUNCTION_INFO_V1(df_seq);
PG_FUNCTION_INFO_V1(df_as);
PG_FUNCTION_INFO_V1(df_sleep);
PG_FUNCTION_INFO_V1(df_wait_for_schedule);
PG_FUNCTION_INFO_V1(df_loop);
PG_FUNCTION_INFO_V1(df_break);
PG_FUNCTION_INFO_V1(df_if);
PG_FUNCTION_INFO_V1(df_if_rows);
PG_FUNCTION_INFO_V1(df_join);
PG_FUNCTION_INFO_V1(df_join3);
PG_FUNCTION_INFO_V1(df_race);
PG_FUNCTION_INFO_V1(df_http);
PG_FUNCTION_INFO_V1(df_wait_for_signal);
PG_FUNCTION_INFO_V1(df_if_else_op);
PG_FUNCTION_INFO_V1(df_loop_prefix_op);
PG_FUNCTION_INFO_V1(df_retry);
PG_FUNCTION_INFO_V1(df_timeout);
}

namespace {

// PG zone. A text argument of a STRICT function as a C string.
const char *text_arg(FunctionCallInfo fcinfo, int n) { return text_to_cstring(PG_GETARG_TEXT_PP(n)); }

// PG zone. An argument the function takes as a workflow step: refused when it
// is what df.setvar & co. returned in this statement (SPEC §8 "Guard").
const char *step_arg(FunctionCallInfo fcinfo, int n) {
    const char *arg = text_arg(fcinfo, n);
    pgd_check_composer_input(arg);
    return arg;
}

// PG zone. A required argument of a non-STRICT function (SPEC §1).
const char *required_text_arg(FunctionCallInfo fcinfo, int n, const char *null_message) {
    if (PG_ARGISNULL(n)) ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s", null_message)));
    return text_arg(fcinfo, n);
}

// C++ zone. A nullable C string as an optional.
std::optional<std::string> optional_string(const char *value) {
    return value ? std::optional<std::string>(value) : std::nullopt;
}

}  // namespace

// df.sql(query text): one SQL node.
Datum df_sql(PG_FUNCTION_ARGS) {
    const char *query = text_arg(fcinfo, 0);
    return pgd::text_result([&] { return durable::dsl::sql(query); });
}

// df.seq(a text, b text), operator ~>: THEN.
Datum df_seq(PG_FUNCTION_ARGS) {
    const char *first = step_arg(fcinfo, 0);
    const char *second = step_arg(fcinfo, 1);
    return pgd::text_result([&] { return durable::dsl::seq(first, second); });
}

// df."as"(fut text, name text), and df.as_op behind operator |=>.
Datum df_as(PG_FUNCTION_ARGS) {
    const char *fut = step_arg(fcinfo, 0);
    const char *name = text_arg(fcinfo, 1);
    return pgd::text_result([&] { return durable::dsl::as(fut, name); });
}

// df.sleep(seconds bigint).
Datum df_sleep(PG_FUNCTION_ARGS) {
    const int64 seconds = PG_GETARG_INT64(0);
    return pgd::text_result([&] { return durable::dsl::sleep(seconds); });
}

// df.wait_for_schedule(cron_expr text, timezone text DEFAULT NULL).
Datum df_wait_for_schedule(PG_FUNCTION_ARGS) {
    const char *cron_expr = required_text_arg(fcinfo, 0, "df.wait_for_schedule: cron_expr cannot be NULL");
    const char *timezone = pgd::text_arg_or_null(fcinfo, 1);
    return pgd::text_result(
        [&] { return durable::dsl::wait_for_schedule(cron_expr, optional_string(timezone)); });
}

// df."loop"(body text, condition text DEFAULT NULL, min_interval_ms int DEFAULT NULL).
Datum df_loop(PG_FUNCTION_ARGS) {
    const char *body = required_text_arg(fcinfo, 0, "df.loop: body cannot be NULL");
    pgd_check_composer_input(body);
    const char *condition = PG_ARGISNULL(1) ? nullptr : step_arg(fcinfo, 1);
    const bool has_interval = !PG_ARGISNULL(2);
    const int32 min_interval_ms = has_interval ? PG_GETARG_INT32(2) : 0;
    return pgd::text_result([&] {
        std::optional<std::int64_t> interval;
        if (has_interval) interval = min_interval_ms;
        return durable::dsl::loop(body, optional_string(condition), interval);
    });
}

// df."break"(value text DEFAULT NULL): the value is a literal, never a step.
Datum df_break(PG_FUNCTION_ARGS) {
    const char *value = pgd::text_arg_or_null(fcinfo, 0);
    return pgd::text_result([&] { return durable::dsl::break_loop(optional_string(value)); });
}

// df."if"(condition text, then_branch text, else_branch text).
Datum df_if(PG_FUNCTION_ARGS) {
    const char *condition = step_arg(fcinfo, 0);
    const char *then_branch = step_arg(fcinfo, 1);
    const char *else_branch = step_arg(fcinfo, 2);
    return pgd::text_result([&] { return durable::dsl::if_then_else(condition, then_branch, else_branch); });
}

// df.if_rows(result_name text, then_branch text, else_branch text).
Datum df_if_rows(PG_FUNCTION_ARGS) {
    const char *result_name = text_arg(fcinfo, 0);
    const char *then_branch = step_arg(fcinfo, 1);
    const char *else_branch = step_arg(fcinfo, 2);
    return pgd::text_result([&] { return durable::dsl::if_rows(result_name, then_branch, else_branch); });
}

// df."join"(a text, b text), operator &.
Datum df_join(PG_FUNCTION_ARGS) {
    const char *a = step_arg(fcinfo, 0);
    const char *b = step_arg(fcinfo, 1);
    return pgd::text_result([&] { return durable::dsl::join(a, b); });
}

// df.join3(a text, b text, c text).
Datum df_join3(PG_FUNCTION_ARGS) {
    const char *a = step_arg(fcinfo, 0);
    const char *b = step_arg(fcinfo, 1);
    const char *c = step_arg(fcinfo, 2);
    return pgd::text_result([&] { return durable::dsl::join3(a, b, c); });
}

// df.race(a text, b text), operator |.
Datum df_race(PG_FUNCTION_ARGS) {
    const char *a = step_arg(fcinfo, 0);
    const char *b = step_arg(fcinfo, 1);
    return pgd::text_result([&] { return durable::dsl::race(a, b); });
}

// df.http(url text, method text DEFAULT 'POST', body text DEFAULT NULL,
//         headers jsonb DEFAULT '{}', timeout_seconds int DEFAULT 30).
// An explicit NULL for an optional argument means its default (body: none).
Datum df_http(PG_FUNCTION_ARGS) {
    const char *url = required_text_arg(fcinfo, 0, "df.http: url cannot be NULL");
    const char *method = pgd::text_arg_or_null(fcinfo, 1);
    const char *body = pgd::text_arg_or_null(fcinfo, 2);
    const char *headers =
        PG_ARGISNULL(3) ? nullptr : DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(3)));
    const bool has_timeout = !PG_ARGISNULL(4);
    const int32 timeout_seconds = has_timeout ? PG_GETARG_INT32(4) : 0;
    const bool http_enabled = pgd_http_enabled;
    return pgd::text_result([&] {
        durable::dsl::HttpStep step;
        step.url = url;
        if (method) step.method = method;
        step.body = optional_string(body);
        if (headers) step.headers_json = headers;
        if (has_timeout) step.timeout_seconds = timeout_seconds;
        return durable::dsl::http(step, http_enabled);
    });
}

// df.wait_for_signal(name text, timeout_seconds int DEFAULT NULL).
Datum df_wait_for_signal(PG_FUNCTION_ARGS) {
    // A NULL name is no name at all.
    const char *name = PG_ARGISNULL(0) ? "" : text_arg(fcinfo, 0);
    const bool has_timeout = !PG_ARGISNULL(1);
    const int32 timeout_seconds = has_timeout ? PG_GETARG_INT32(1) : 0;
    return pgd::text_result([&] {
        std::optional<std::int64_t> timeout;
        if (has_timeout) timeout = timeout_seconds;
        return durable::dsl::wait_for_signal(name, timeout);
    });
}

// df.if_else_op(partial_if text, else_branch text), operator !>: completes
// what `cond ?> then` (df.if_then_op) built. The condition and then-branch
// come out of the partial in the C++ zone and go through the guard like the
// arguments of df.if, so the partial is read first.
Datum df_if_else_op(PG_FUNCTION_ARGS) {
    const char *partial_text = text_arg(fcinfo, 0);
    const char *else_branch = step_arg(fcinfo, 1);
    char *condition = nullptr;
    char *then_branch = nullptr;
    pgd::Failure failure;
    if (!pgd::cpp_zone(failure, [&] {
            const durable::dsl::PartialIf partial = durable::dsl::read_partial_if(partial_text);
            condition = pgd::to_cstring(partial.condition);
            then_branch = pgd::to_cstring(partial.then_branch);
        }))
        pgd::raise(failure);
    pgd_check_composer_input(condition);
    pgd_check_composer_input(then_branch);
    return pgd::text_result([&] { return durable::dsl::if_then_else(condition, then_branch, else_branch); });
}

// df.loop_prefix_op(body text), prefix operator @>: df.loop(body).
Datum df_loop_prefix_op(PG_FUNCTION_ARGS) {
    const char *body = step_arg(fcinfo, 0);
    return pgd::text_result([&] { return durable::dsl::loop(body, std::nullopt, std::nullopt); });
}

// df.retry(fut text, max_attempts int, initial_interval_seconds float8 DEFAULT 1,
//          backoff_rate float8 DEFAULT 2, max_interval_seconds float8 DEFAULT 60)
// (SPEC §19.3). Not STRICT: a NULL fut or max_attempts is an error, an
// explicit NULL for an optional argument means its default.
Datum df_retry(PG_FUNCTION_ARGS) {
    const char *fut = required_text_arg(fcinfo, 0, "df.retry: fut cannot be NULL");
    pgd_check_composer_input(fut);
    if (PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("df.retry: max_attempts cannot be NULL")));
    const int32 max_attempts = PG_GETARG_INT32(1);
    const double initial = PG_ARGISNULL(2) ? 1.0 : PG_GETARG_FLOAT8(2);
    const double rate = PG_ARGISNULL(3) ? 2.0 : PG_GETARG_FLOAT8(3);
    const double max_interval = PG_ARGISNULL(4) ? 60.0 : PG_GETARG_FLOAT8(4);
    return pgd::text_result([&] { return durable::dsl::retry(fut, max_attempts, initial, rate, max_interval); });
}

// df.timeout(fut text, seconds float8) (SPEC §19.3). STRICT in SQL, as SPEC §1
// makes every function without optional arguments; the NULL checks keep a
// direct call safe all the same.
Datum df_timeout(PG_FUNCTION_ARGS) {
    const char *fut = required_text_arg(fcinfo, 0, "df.timeout: fut cannot be NULL");
    pgd_check_composer_input(fut);
    if (PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("df.timeout: seconds cannot be NULL")));
    const double seconds = PG_GETARG_FLOAT8(1);
    return pgd::text_result([&] { return durable::dsl::timeout(fut, seconds); });
}
