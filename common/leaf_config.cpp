// See leaf_config.hpp.
#include "common/leaf_config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

#include "common/cron.hpp"
#include "common/errors.hpp"
#include "common/graph.hpp"

namespace durable::leaf {

namespace {

using Json = nlohmann::ordered_json;

// The SQL types of the DSL arguments a number may come from.
enum class SqlInt { integer, bigint };

const char *type_name(SqlInt type) { return type == SqlInt::integer ? "integer" : "bigint"; }

std::int64_t max_of(SqlInt type) {
    return type == SqlInt::integer ? std::numeric_limits<std::int32_t>::max()
                                   : std::numeric_limits<std::int64_t>::max();
}

std::int64_t min_of(SqlInt type) {
    return type == SqlInt::integer ? std::numeric_limits<std::int32_t>::min()
                                   : std::numeric_limits<std::int64_t>::min();
}

[[noreturn]] void invalid(const std::string &message) { throw UserError(message); }

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

bool is_blank(const std::string &text) {
    return std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

// At most 64 bytes of `text` for an error message, cut on a UTF-8 boundary:
// a query can be megabytes long, the message needs only its start.
std::string excerpt(const std::string &text) {
    constexpr std::size_t kMax = 64;
    if (text.size() <= kMax) return text;
    std::size_t end = kMax;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    return text.substr(0, end) + "...";
}

// The node's query as a JSON object. Missing: "<TYPE> nodes require a query";
// otherwise "query in <TYPE> must be valid JSON config: ..." as for IF (§8).
Json config_object(const std::optional<std::string> &query, const char *node_type) {
    if (!query) invalid(std::string(node_type) + " nodes require a query");
    Json config = Json::parse(*query, nullptr, /*allow_exceptions=*/false);
    const std::string prefix = std::string("query in ") + node_type + " must be valid JSON config: ";
    if (config.is_discarded()) invalid(prefix + "not valid JSON");
    if (!config.is_object()) invalid(prefix + "not a JSON object");
    return config;
}

// A field given a value: present and not null (null means "not given").
const Json *given(const Json &config, const char *field) {
    const auto it = config.find(field);
    if (it == config.end() || it->is_null()) return nullptr;
    return &*it;
}

std::optional<std::string> optional_string(const Json &config, const char *field, const char *node_type) {
    const Json *value = given(config, field);
    if (value == nullptr) return std::nullopt;
    if (!value->is_string()) invalid(std::string(field) + " in " + node_type + " must be a string or null");
    return value->get<std::string>();
}

// An integer field within the range of the DSL argument's SQL type; nullopt
// when not given.
std::optional<std::int64_t> optional_integer(const Json &config, const char *field, const char *node_type,
                                             SqlInt type) {
    const Json *value = given(config, field);
    if (value == nullptr) return std::nullopt;
    const std::string where = std::string(field) + " in " + node_type;
    const std::string out_of_range = where + " is out of range for type " + type_name(type);
    if (value->is_number_unsigned()) {
        const auto number = value->get<std::uint64_t>();
        if (number > static_cast<std::uint64_t>(max_of(type))) invalid(out_of_range);
        return static_cast<std::int64_t>(number);
    }
    if (value->is_number_integer()) {
        const auto number = value->get<std::int64_t>();
        if (number < min_of(type) || number > max_of(type)) invalid(out_of_range);
        return number;
    }
    // nlohmann reads an integer literal beyond 64 bits as a float.
    if (value->is_number_float()) {
        const double number = value->get<double>();
        if (std::isfinite(number) && std::floor(number) == number &&
            (number > static_cast<double>(max_of(type)) || number < static_cast<double>(min_of(type))))
            invalid(out_of_range);
    }
    invalid(where + " must be an integer or null");
}

// A number field; nullopt when not given. Booleans and strings are refused.
std::optional<double> optional_number(const Json &config, const char *field, const char *node_type) {
    const Json *value = given(config, field);
    if (value == nullptr) return std::nullopt;
    if (!value->is_number()) invalid(std::string(field) + " in " + node_type + " must be a number or null");
    return value->get<double>();
}

void check_finite(double value, const char *name) {
    if (std::isinf(value)) invalid(std::string(name) + " must be finite");
}

void check_http_scheme(const std::string &url) {
    // A templated URL gets its scheme only at run time; the run-time gate
    // checks it after substitution.
    if (url.find_first_of("{$") != std::string::npos) return;
    const auto separator = url.find("://");
    const std::string scheme = lower(separator == std::string::npos ? std::string() : url.substr(0, separator));
    if (scheme != "http" && scheme != "https")
        invalid("Blocked: unsupported URL scheme '" + scheme + "'. Only http and https are allowed.");
}

void check_http_method(const std::string &method) {
    for (const char *allowed : {"GET", "POST", "PUT", "DELETE", "PATCH"})
        if (method == allowed) return;
    invalid("Invalid HTTP method: " + method + ". Must be GET, POST, PUT, DELETE, or PATCH");
}

}  // namespace

std::chrono::seconds bounded_delay(std::int64_t seconds) {
    return std::chrono::seconds(std::clamp<std::int64_t>(seconds, 0, kMaxDelay.count()));
}

std::string float8_text(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
    // Shortest round-trip digits, in scientific form: "-1.2345e+17".
    char buf[64];
    const auto written = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
    const std::string sci(buf, written.ptr);
    const std::size_t e = sci.find('e');
    std::string mantissa = sci.substr(0, e);
    const int exponent = std::stoi(sci.substr(e + 1));
    std::string sign;
    if (!mantissa.empty() && mantissa.front() == '-') {
        sign = "-";
        mantissa.erase(0, 1);
    }
    std::string digits;
    for (char c : mantissa)
        if (c != '.') digits += c;
    if (exponent >= -4 && exponent < 15) {
        if (exponent < 0) return sign + "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
        const auto point = static_cast<std::size_t>(exponent) + 1;
        if (digits.size() <= point) return sign + digits + std::string(point - digits.size(), '0');
        return sign + digits.substr(0, point) + "." + digits.substr(point);
    }
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const int magnitude = exponent < 0 ? -exponent : exponent;
    out += exponent < 0 ? "e-" : "e+";
    if (magnitude < 10) out += "0";
    return out + std::to_string(magnitude);
}

std::chrono::microseconds bounded_delay_seconds(double seconds) {
    const double max = static_cast<double>(kMaxDelay.count());
    const double bounded = std::isnan(seconds) || seconds <= 0 ? 0 : std::min(seconds, max);
    return std::chrono::microseconds(static_cast<std::int64_t>(std::ceil(bounded * 1e6)));
}

std::chrono::microseconds retry_interval(const RetryConfig &config, std::int64_t next_attempt) {
    double seconds = 0;
    if (config.initial_interval_seconds > 0) {
        const double exponent = static_cast<double>(std::max<std::int64_t>(next_attempt - 2, 0));
        seconds = config.initial_interval_seconds * std::pow(config.backoff_rate, exponent);
        // Overflow gives infinity, never NaN: initial > 0 and rate >= 1.
        if (!(seconds <= config.max_interval_seconds)) seconds = config.max_interval_seconds;
    }
    return bounded_delay_seconds(seconds);
}

// ---------------------------------------------------------------------------
// Checks

void check(const SleepConfig &config) {
    if (config.seconds < 0) invalid("Sleep duration must be non-negative");
}

void check(const SignalConfig &config) {
    if (is_blank(config.name)) invalid("Signal name cannot be empty");
    if (config.timeout_seconds && *config.timeout_seconds <= 0) invalid("Timeout must be positive");
}

void check(const ScheduleConfig &config) {
    cron::validate(config.cron_expr, config.timezone.value_or(""));
    // validate() reads an empty zone as "none given"; a given empty name is
    // still not a zone.
    if (config.timezone && config.timezone->empty()) cron::load_zone(*config.timezone);
}

void check(const HttpConfig &config) {
    check_http_scheme(config.url);
    check_http_method(config.method);
    if (config.timeout_seconds <= 0) invalid("Timeout must be positive");
    if (!config.headers.is_object()) invalid("HTTP headers must be a JSON object");
}

void check(const LoopConfig &config) {
    if (config.min_interval_ms && *config.min_interval_ms < 0) invalid("min_interval_ms must be non-negative");
}

void check(const RetryConfig &config) {
    if (config.max_attempts < 1 || config.max_attempts > 1000) invalid("max_attempts must be between 1 and 1000");
    // Written so that NaN fails each comparison.
    if (!(config.initial_interval_seconds >= 0)) invalid("initial_interval_seconds must be non-negative");
    check_finite(config.initial_interval_seconds, "initial_interval_seconds");
    if (!(config.backoff_rate >= 1)) invalid("backoff_rate must be at least 1");
    check_finite(config.backoff_rate, "backoff_rate");
    if (!(config.max_interval_seconds >= 0)) invalid("max_interval_seconds must be non-negative");
    check_finite(config.max_interval_seconds, "max_interval_seconds");
}

void check(const TimeoutConfig &config) {
    if (!(config.seconds > 0)) invalid("seconds must be positive");
    check_finite(config.seconds, "seconds");
}

// ---------------------------------------------------------------------------
// Query text

std::string query(const SleepConfig &config) { return std::to_string(config.seconds); }

std::string query(const SignalConfig &config) {
    Json out = {{"signal_name", config.name}, {"timeout_seconds", nullptr}};
    if (config.timeout_seconds) out["timeout_seconds"] = *config.timeout_seconds;
    return dump_json(out);
}

std::string query(const ScheduleConfig &config) {
    Json out = {{"cron_expr", config.cron_expr}};
    if (config.timezone) out["timezone"] = *config.timezone;
    return dump_json(out);
}

std::string query(const HttpConfig &config) {
    Json out = {{"url", config.url}, {"method", config.method}, {"body", nullptr}};
    if (config.body) out["body"] = *config.body;
    out["headers"] = config.headers;
    out["timeout_seconds"] = config.timeout_seconds;
    return dump_json(out);
}

std::string query(const BreakConfig &config) {
    Json out = {{"break_value", nullptr}};
    if (config.value) out["break_value"] = *config.value;
    return dump_json(out);
}

std::optional<std::string> query(const LoopConfig &config) {
    if (!config.min_interval_ms) return std::nullopt;
    return dump_json(Json{{"min_interval_ms", *config.min_interval_ms}});
}

// Written by hand: nlohmann would print 1.0 where float8 prints 1.
std::string query(const RetryConfig &config) {
    return "{\"max_attempts\":" + std::to_string(config.max_attempts) +
           ",\"initial_interval_seconds\":" + float8_text(config.initial_interval_seconds) +
           ",\"backoff_rate\":" + float8_text(config.backoff_rate) +
           ",\"max_interval_seconds\":" + float8_text(config.max_interval_seconds) + "}";
}

std::string query(const TimeoutConfig &config) { return "{\"seconds\":" + float8_text(config.seconds) + "}"; }

// ---------------------------------------------------------------------------
// Reading

SleepConfig read_sleep(const std::optional<std::string> &query) {
    if (!query) invalid("SLEEP nodes require a query");
    // What df.sleep writes: a decimal bigint, optional minus sign, no spaces.
    const std::string &text = *query;
    const std::size_t digits = !text.empty() && text.front() == '-' ? 1 : 0;
    if (text.size() == digits ||
        !std::all_of(text.begin() + digits, text.end(), [](unsigned char c) { return std::isdigit(c) != 0; }))
        invalid("query in SLEEP must be a whole number of seconds, got '" + excerpt(text) + "'");
    SleepConfig config;
    if (std::from_chars(text.data(), text.data() + text.size(), config.seconds).ec != std::errc())
        invalid("query in SLEEP is out of range for type bigint: '" + excerpt(text) + "'");
    check(config);
    return config;
}

SignalConfig read_signal(const std::optional<std::string> &query) {
    const Json config = config_object(query, "SIGNAL");
    SignalConfig out;
    // A missing or null name is no name at all, as df.wait_for_signal(NULL).
    if (const Json *name = given(config, "signal_name")) {
        if (!name->is_string()) invalid("signal_name in SIGNAL must be a string");
        out.name = name->get<std::string>();
    }
    out.timeout_seconds = optional_integer(config, "timeout_seconds", "SIGNAL", SqlInt::integer);
    check(out);
    return out;
}

ScheduleConfig read_schedule(const std::optional<std::string> &query) {
    const Json config = config_object(query, "WAIT_SCHEDULE");
    const Json *expr = given(config, "cron_expr");
    if (expr == nullptr || !expr->is_string()) invalid("cron_expr in WAIT_SCHEDULE must be a string");
    ScheduleConfig out;
    out.cron_expr = expr->get<std::string>();
    out.timezone = optional_string(config, "timezone", "WAIT_SCHEDULE");
    check(out);
    return out;
}

HttpConfig read_http(const std::optional<std::string> &query) {
    const Json config = config_object(query, "HTTP");
    const Json *url = given(config, "url");
    if (url == nullptr || !url->is_string()) invalid("url in HTTP must be a string");
    HttpConfig out;
    out.url = url->get<std::string>();
    if (const Json *method = given(config, "method")) {
        if (!method->is_string()) invalid("method in HTTP must be a string");
        out.method = method->get<std::string>();
    }
    out.body = optional_string(config, "body", "HTTP");
    if (const Json *headers = given(config, "headers")) out.headers = *headers;
    if (auto timeout = optional_integer(config, "timeout_seconds", "HTTP", SqlInt::integer))
        out.timeout_seconds = *timeout;
    check(out);
    return out;
}

BreakConfig read_break(const std::optional<std::string> &query) {
    BreakConfig out;
    if (!query) return out;  // df.break() always writes one; none means no value
    out.value = optional_string(config_object(query, "BREAK"), "break_value", "BREAK");
    return out;
}

LoopConfig read_loop(const std::optional<std::string> &query) {
    LoopConfig out;
    if (!query) return out;
    out.min_interval_ms = optional_integer(config_object(query, "LOOP"), "min_interval_ms", "LOOP", SqlInt::integer);
    check(out);
    return out;
}

RetryConfig read_retry(const std::optional<std::string> &query) {
    const Json config = config_object(query, "RETRY");
    RetryConfig out;
    const auto attempts = optional_integer(config, "max_attempts", "RETRY", SqlInt::integer);
    if (!attempts) invalid("max_attempts in RETRY must be an integer");
    out.max_attempts = *attempts;
    if (auto v = optional_number(config, "initial_interval_seconds", "RETRY")) out.initial_interval_seconds = *v;
    if (auto v = optional_number(config, "backoff_rate", "RETRY")) out.backoff_rate = *v;
    if (auto v = optional_number(config, "max_interval_seconds", "RETRY")) out.max_interval_seconds = *v;
    check(out);
    return out;
}

TimeoutConfig read_timeout(const std::optional<std::string> &query) {
    const Json config = config_object(query, "TIMEOUT");
    const auto seconds = optional_number(config, "seconds", "TIMEOUT");
    if (!seconds) invalid("seconds in TIMEOUT must be a number");
    TimeoutConfig out{*seconds};
    check(out);
    return out;
}

std::optional<std::string> config_problem(const std::string &node_type, const std::optional<std::string> &query) {
    try {
        if (node_type == "SLEEP") read_sleep(query);
        else if (node_type == "SIGNAL") read_signal(query);
        else if (node_type == "WAIT_SCHEDULE") read_schedule(query);
        else if (node_type == "HTTP") read_http(query);
        else if (node_type == "BREAK") read_break(query);
        else if (node_type == "LOOP") read_loop(query);
        else if (node_type == "RETRY") read_retry(query);
        else if (node_type == "TIMEOUT") read_timeout(query);
    } catch (const UserError &e) {
        return std::string(e.what());
    }
    return std::nullopt;
}

}  // namespace durable::leaf
