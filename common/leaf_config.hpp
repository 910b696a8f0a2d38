// The configurations of SLEEP, SIGNAL, WAIT_SCHEDULE, HTTP, BREAK and LOOP
// nodes (SPEC.md §6, §8, §10.6-§10.9, §14): one definition of each config,
// its checks and its query text, used by every path that makes or meets one.
//
// * The DSL functions fill a config from their arguments, check() it and
//   write its query() text into the node.
// * df.start (raw graph JSON), df.explain and the daemon's load read() a
//   node's query back: read() refuses a shape the DSL cannot produce (a field
//   of the wrong JSON type, a number outside the SQL type of the DSL
//   argument) and then runs the same check(). So raw JSON meets exactly the
//   DSL's checks with the DSL's texts, and whatever passes can be run.
//
// Absent optional fields (and null ones) take the DSL defaults; unknown keys
// are ignored. read() throws UserError with the reason alone; graph.cpp puts
// the node path in front ("Invalid durable function graph: root.left: ...").
//
// Pure C++: no PostgreSQL headers, no I/O but cctz's zoneinfo files.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace durable::leaf {

// ---------------------------------------------------------------------------
// Durations
//
// df.sleep takes bigint seconds and SPEC §6 refuses only negative ones, so
// df.sleep(1000000000000) is a valid step. A system_clock time point counts
// nanoseconds in 64 bits (about ±292 years around 1970): adding 10^12 s to
// now() overflows. Rule: a durable timer (SLEEP, signal timeout) is due at
// most kMaxDelay after it starts; a longer one waits kMaxDelay (100 years,
// "forever" for any workflow) and still reports the seconds it was given.
// The deadline stays representable until about 2160.
inline constexpr std::chrono::seconds kMaxDelay{100LL * 366 * 24 * 60 * 60};

// `seconds` bounded to [0, kMaxDelay]: safe to add to a system_clock time point.
std::chrono::seconds bounded_delay(std::int64_t seconds);

// ---------------------------------------------------------------------------
// Configs

// SLEEP, query "<seconds>" (df.sleep(seconds bigint)).
struct SleepConfig {
    std::int64_t seconds = 0;
};

// SIGNAL, {"signal_name":..,"timeout_seconds":<int|null>}
// (df.wait_for_signal(name text, timeout_seconds int)).
struct SignalConfig {
    std::string name;
    std::optional<std::int64_t> timeout_seconds;
};

// WAIT_SCHEDULE, {"cron_expr":..} plus "timezone" when given
// (df.wait_for_schedule(cron_expr text, timezone text)).
struct ScheduleConfig {
    std::string cron_expr;
    std::optional<std::string> timezone;
};

// HTTP, {"url","method","body","headers","timeout_seconds"}
// (df.http(url, method, body, headers jsonb, timeout_seconds int)).
struct HttpConfig {
    std::string url;
    std::string method = "POST";  // canonical: uppercase
    std::optional<std::string> body;
    // Checked to be an object; anything else (a discarded parse included)
    // fails check() with the DSL's text.
    nlohmann::ordered_json headers = nlohmann::ordered_json::object();
    std::int64_t timeout_seconds = 30;
};

// BREAK, {"break_value":<string|null>} (df.break(value text)).
struct BreakConfig {
    std::optional<std::string> value;
};

// LOOP, {"min_interval_ms":N} only when given (df.loop(.., min_interval_ms int)).
struct LoopConfig {
    std::optional<std::int64_t> min_interval_ms;
};

// RETRY, {"max_attempts":N,"initial_interval_seconds":x,"backoff_rate":x,"max_interval_seconds":x}
// (df.retry(fut, max_attempts int, initial_interval_seconds float8 DEFAULT 1,
// backoff_rate float8 DEFAULT 2, max_interval_seconds float8 DEFAULT 60), SPEC §19.3).
struct RetryConfig {
    std::int64_t max_attempts = 0;
    double initial_interval_seconds = 1;
    double backoff_rate = 2;
    double max_interval_seconds = 60;
};

// TIMEOUT, {"seconds":x} (df.timeout(fut, seconds float8), SPEC §19.3).
struct TimeoutConfig {
    double seconds = 0;
};

// A float8 as PostgreSQL's float8out prints it (extra_float_digits = 1, the
// default): the shortest text that reads back exactly, fixed notation for
// decimal exponents -4..14, else "1e+15" / "1.5e-05"; "NaN", "Infinity",
// "-Infinity". SPEC §19.3 writes RETRY and TIMEOUT numbers this way in graph
// JSON, error texts and explain.
std::string float8_text(double value);

// The wait before attempt `next_attempt` (2 = after the first failure):
// min(initial × rate^(next_attempt-2), max) seconds, bounded to [0, kMaxDelay]
// so it can be added to a clock reading. Never overflows, whatever the config.
std::chrono::microseconds retry_interval(const RetryConfig &config, std::int64_t next_attempt);

// `seconds` (finite, positive) as a delay bounded to kMaxDelay, rounded up to
// whole microseconds.
std::chrono::microseconds bounded_delay_seconds(double seconds);

// ---------------------------------------------------------------------------
// Checks: the DSL-time errors of SPEC §6, §10.8 and §14, in their order.
// Each throws durable::UserError with the SPEC text.

void check(const SleepConfig &config);     // "Sleep duration must be non-negative"
void check(const SignalConfig &config);    // "Signal name cannot be empty", "Timeout must be positive"
void check(const ScheduleConfig &config);  // "Invalid cron expression '..': ..", "Invalid time zone '..'"
// Scheme (skipped for a templated url), method, timeout, headers. Whether
// HTTP is enabled and the caller may use it are settings and privileges, not
// part of the config: df.http checks them before, the daemon at run time.
void check(const HttpConfig &config);
void check(const LoopConfig &config);      // "min_interval_ms must be non-negative"
// "max_attempts must be between 1 and 1000", "initial_interval_seconds must be
// non-negative", "backoff_rate must be at least 1", "max_interval_seconds must
// be non-negative" (NaN fails each); an infinite value: "<name> must be finite".
void check(const RetryConfig &config);
void check(const TimeoutConfig &config);   // "seconds must be positive"; "seconds must be finite"

// ---------------------------------------------------------------------------
// Query text, as the DSL writes it (SPEC §8)

std::string query(const SleepConfig &config);
std::string query(const SignalConfig &config);
std::string query(const ScheduleConfig &config);
std::string query(const HttpConfig &config);
std::string query(const BreakConfig &config);
// nullopt when no interval is given: the LOOP then has no query.
std::optional<std::string> query(const LoopConfig &config);
std::string query(const RetryConfig &config);
std::string query(const TimeoutConfig &config);

// ---------------------------------------------------------------------------
// Reading a node's query: shape, then check(). Throw UserError.

SleepConfig read_sleep(const std::optional<std::string> &query);
SignalConfig read_signal(const std::optional<std::string> &query);
ScheduleConfig read_schedule(const std::optional<std::string> &query);
HttpConfig read_http(const std::optional<std::string> &query);
BreakConfig read_break(const std::optional<std::string> &query);
LoopConfig read_loop(const std::optional<std::string> &query);
// max_attempts required (an integer); the intervals and rate optional numbers.
RetryConfig read_retry(const std::optional<std::string> &query);
// seconds required (a number).
TimeoutConfig read_timeout(const std::optional<std::string> &query);

// The problem with the config of a node of type `node_type`, or nullopt when
// it is fine or the type has no config of its own (SQL, THEN, IF, JOIN, RACE).
std::optional<std::string> config_problem(const std::string &node_type, const std::optional<std::string> &query);

}  // namespace durable::leaf
