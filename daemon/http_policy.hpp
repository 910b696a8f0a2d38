// The pure half of HTTP steps (SPEC.md §14): URL pieces, the allow-list,
// restricted address ranges, the response envelope, the failure texts and the
// retry schedule. No I/O here, so the rules are unit-tested directly; the
// Beast client in http.{hpp,cpp} applies them.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>

namespace pgd::daemon::http {

// The pieces of an http(s) URL the client needs.
struct Url {
    std::string scheme;     // lowercased text before "://"
    std::string host;       // SPEC host: no userinfo, port, brackets or trailing dot; lowercased
    std::string host_header;  // Host header value: authority minus userinfo
    std::string port;       // explicit port or the scheme's default
    std::string target;     // path + query ("/" when empty), fragment dropped
};

// Text before "://", lowercased; "" when there is none.
std::string url_scheme(const std::string &url);
// The SPEC host of a URL ("" when it has none).
std::string url_host(const std::string &url);
// Splits an http/https URL; nullopt when it is malformed (no host, bad port).
std::optional<Url> parse_url(const std::string &url);

// True when `host` matches the comma list of patterns (SPEC §14): `*` any
// host, `*.example.org` names ending in `.example.org`, else exact. Case-insensitive.
bool host_allowed(const std::string &host, const std::string &allowed_hosts);

// True for addresses df.http must not reach unless private networks are
// allowed; IPv4-mapped IPv6 addresses are judged as their IPv4 address.
bool restricted_address(const boost::asio::ip::address &address);

// True when the Content-Type names a textual media type.
bool textual_content_type(const std::string &content_type);
// True when the bytes are valid UTF-8 and hold no NUL.
bool utf8_without_nul(const std::string &bytes);
std::string base64(const std::string &bytes);
// True when the text parses as JSON.
bool valid_json(const std::string &text);

// A received response. Header names as received, in order.
struct Response {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

// {"status","body","encoding","headers","ok","duration_ms","attempts"}, keys in that order.
std::string envelope(const Response &response, long long duration_ms, int attempts);

// Failure texts of SPEC §14.
std::string disabled_error();
std::string privilege_error(const std::string &role);
std::string scheme_error(const std::string &scheme);
std::string allow_list_error(const std::string &host);
std::string restricted_error(const std::string &host);
std::string status_error(const std::string &method, const std::string &url, int status, const std::string &body);
std::string timeout_error(long long timeout_seconds, const std::string &url);
std::string connection_error(const std::string &url, const std::string &error);
std::string request_error(const std::string &url, const std::string &error);
std::string too_large_error(const std::string &url, long long max_bytes);

// The wait after failed attempt `attempt` (1-based): 1 s, 2 s, 4 s, ...
std::chrono::milliseconds retry_delay(int attempt);
// True when an attempt with this status is retried (5xx).
bool retryable_status(int status);

std::string idempotency_key(const std::string &instance_id, const std::string &node_id, long long execution);
std::string user_agent();

}  // namespace pgd::daemon::http
