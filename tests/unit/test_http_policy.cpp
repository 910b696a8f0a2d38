// The pure rules of HTTP steps (SPEC.md §14): hosts, allow-list, restricted
// ranges, textual bodies, the envelope, failure texts, retry schedule.
#include "catch_compat.hpp"

#include "daemon/http_policy.hpp"

using namespace pgd::daemon::http;
using boost::asio::ip::make_address;

TEST_CASE("host extraction drops userinfo, port, brackets and a trailing dot, lowercased", "[http]") {
    CHECK(url_host("http://Example.ORG/path") == "example.org");
    CHECK(url_host("https://user:pw@api.example.org:8443/x?y=1") == "api.example.org");
    CHECK(url_host("http://[::1]:8080/") == "::1");
    CHECK(url_host("http://[FE80::1]/") == "fe80::1");
    CHECK(url_host("http://localhost./") == "localhost");
    CHECK(url_host("http://127.0.0.1:5000") == "127.0.0.1");
    CHECK(url_host("http://a@b@evil.example:1/") == "evil.example");
    CHECK(url_host("http:///path") == "");
    CHECK(url_scheme("FILE:///etc/passwd") == "file");
    CHECK(url_scheme("no scheme") == "");
}

TEST_CASE("URL parsing gives port, Host header and target", "[http]") {
    auto url = parse_url("https://u@Example.org/a/b?c=d#frag");
    REQUIRE(url);
    CHECK(url->scheme == "https");
    CHECK(url->port == "443");
    CHECK(url->host_header == "Example.org");
    CHECK(url->target == "/a/b?c=d");
    url = parse_url("http://[::1]:81");
    REQUIRE(url);
    CHECK(url->host == "::1");
    CHECK(url->port == "81");
    CHECK(url->host_header == "[::1]:81");
    CHECK(url->target == "/");
    url = parse_url("http://h?q");
    REQUIRE(url);
    CHECK(url->target == "/?q");
    CHECK(url->port == "80");
    CHECK_FALSE(parse_url("http://h:99999/"));
    CHECK_FALSE(parse_url("http://h:8x/"));
    CHECK_FALSE(parse_url("http://[::1/"));
    CHECK_FALSE(parse_url("nothing"));
}

TEST_CASE("allow-list: star, suffix patterns, exact names, trimmed and case-insensitive", "[http]") {
    CHECK(host_allowed("anything.example", "*"));
    CHECK(host_allowed("api.example.org", " *.Example.org "));
    CHECK(host_allowed("a.b.example.org", "*.example.org"));
    CHECK_FALSE(host_allowed("example.org", "*.example.org"));
    CHECK_FALSE(host_allowed("badexample.org", "*.example.org"));
    CHECK(host_allowed("example.org", "foo.test, EXAMPLE.org"));
    CHECK(host_allowed("10.0.0.1", "10.0.0.1"));
    CHECK_FALSE(host_allowed("10.0.0.2", "10.0.0.1"));
    CHECK_FALSE(host_allowed("example.org", ""));
    CHECK_FALSE(host_allowed("example.org", " , "));
    CHECK_FALSE(host_allowed("example.org.evil", "example.org"));
}

TEST_CASE("restricted address ranges, IPv4-mapped IPv6 unwrapped", "[http]") {
    for (const char *blocked :
         {"0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.255", "127.0.0.1",
          "127.1.2.3", "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.168.1.1", "::", "::1", "fe80::1",
          "febf::1", "fc00::1", "fdff::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254"})
        CHECK(restricted_address(make_address(blocked)));
    for (const char *open : {"1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.1", "172.15.0.1", "172.32.0.1",
                             "192.167.1.1", "169.253.1.1", "11.0.0.1", "2001:db8::1", "2606:4700::1111",
                             "fec0::1", "::ffff:8.8.8.8"})
        CHECK_FALSE(restricted_address(make_address(open)));
}

TEST_CASE("textual content types", "[http]") {
    for (const char *type : {"text/plain", "TEXT/HTML; charset=utf-8", "application/json", "application/problem+json",
                             "image/svg+xml", "application/x-yaml", "application/yaml", "application/xml",
                             "application/javascript", "application/ecmascript", "application/graphql",
                             "application/x-www-form-urlencoded", "application/vnd.foo+yaml"})
        CHECK(textual_content_type(type));
    for (const char *type : {"application/octet-stream", "image/png", "", "application/jsonx", "application/pdf"})
        CHECK_FALSE(textual_content_type(type));
}

TEST_CASE("UTF-8 detection and base64", "[http]") {
    CHECK(utf8_without_nul("plain"));
    CHECK(utf8_without_nul("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    CHECK_FALSE(utf8_without_nul(std::string("a\0b", 3)));
    CHECK_FALSE(utf8_without_nul("\xff\xfe"));
    CHECK_FALSE(utf8_without_nul("\xc3"));          // cut sequence
    CHECK_FALSE(utf8_without_nul("\xc0\xaf"));      // overlong
    CHECK_FALSE(utf8_without_nul("\xed\xa0\x80"));  // surrogate
    CHECK(base64("") == "");
    CHECK(base64("f") == "Zg==");
    CHECK(base64("fo") == "Zm8=");
    CHECK(base64("foo") == "Zm9v");
    CHECK(base64(std::string("\x00\xff\x10", 3)) == "AP8Q");
    CHECK(valid_json("{\"a\":1}"));
    CHECK(valid_json("42"));
    CHECK_FALSE(valid_json("hello"));
}

TEST_CASE("envelope: keys in order, lowercased names, repeats joined, text or base64", "[http]") {
    Response response;
    response.status = 200;
    response.headers = {{"Content-Type", "application/json"}, {"X-Multi", "a"}, {"x-multi", "b"}};
    response.body = "{\"k\":\"v\"}";
    CHECK(envelope(response, 12, 1) ==
          "{\"status\":200,\"body\":\"{\\\"k\\\":\\\"v\\\"}\",\"encoding\":\"text\",\"headers\":{\"content-type\":"
          "\"application/json\",\"x-multi\":\"a, b\"},\"ok\":true,\"duration_ms\":12,\"attempts\":1}");

    Response binary;
    binary.status = 404;
    binary.headers = {{"Content-Type", "application/octet-stream"}};
    binary.body = std::string("\x00\xff\x10", 3);
    CHECK(envelope(binary, 3, 2) ==
          "{\"status\":404,\"body\":\"AP8Q\",\"encoding\":\"base64\",\"headers\":{\"content-type\":"
          "\"application/octet-stream\"},\"ok\":false,\"duration_ms\":3,\"attempts\":2}");

    Response utf8_unlabelled;  // no Content-Type, but UTF-8 bytes: text
    utf8_unlabelled.status = 302;
    utf8_unlabelled.body = "moved";
    CHECK(envelope(utf8_unlabelled, 0, 1) ==
          "{\"status\":302,\"body\":\"moved\",\"encoding\":\"text\",\"headers\":{},\"ok\":false,"
          "\"duration_ms\":0,\"attempts\":1}");
}

TEST_CASE("failure texts", "[http]") {
    CHECK(disabled_error() ==
          "df.http() is disabled. Set pg_durable.http_enabled = on to enable outbound HTTP requests.");
    CHECK(privilege_error("alice") ==
          "Blocked: role 'alice' does not have EXECUTE privilege on df.http(). Grant EXECUTE ON FUNCTION "
          "df.http(text,text,text,jsonb,integer) TO alice to allow HTTP requests.");
    CHECK(scheme_error("file") == "Blocked: unsupported URL scheme 'file'. Only http and https are allowed.");
    CHECK(allow_list_error("evil.example") == "Blocked: 'evil.example' is not in pg_durable.http_allowed_hosts.");
    CHECK(restricted_error("localhost") ==
          "Blocked: the resolved IP address for 'localhost' is in a restricted range. df.http() cannot access "
          "private or internal network addresses.");
    CHECK(status_error("GET", "http://h/x", 500, "oops") == "HTTP GET http://h/x returned 500: oops");
    const std::string big(600, 'a');
    CHECK(status_error("POST", "http://h/", 503, big) ==
          "HTTP POST http://h/ returned 503: " + std::string(512, 'a') + "... [truncated, 600 bytes total]");
    // The preview stays valid UTF-8: a cut sequence is dropped, bad bytes become '?'.
    const std::string euro = std::string(511, 'a') + "\xe2\x82\xac";
    CHECK(status_error("GET", "u", 500, euro) ==
          "HTTP GET u returned 500: " + std::string(511, 'a') + "... [truncated, 514 bytes total]");
    CHECK(status_error("GET", "u", 500, std::string("a\0\xff", 3)) == "HTTP GET u returned 500: a??");
    CHECK(timeout_error(5, "http://h/") == "HTTP timeout after 5s: http://h/");
    CHECK(connection_error("http://h/", "Connection refused") == "HTTP connection failed: http://h/ - Connection refused");
    CHECK(request_error("http://h/", "end of stream") == "HTTP request failed: http://h/ - end of stream");
    CHECK(too_large_error("http://h/", 1024) ==
          "HTTP response from http://h/ exceeds pg_durable.http_max_response_bytes (1024 bytes)");
}

TEST_CASE("retry schedule doubles from one second; only 5xx is retried", "[http]") {
    using std::chrono::milliseconds;
    CHECK(retry_delay(1) == milliseconds(1000));
    CHECK(retry_delay(2) == milliseconds(2000));
    CHECK(retry_delay(3) == milliseconds(4000));
    CHECK(retry_delay(9) == milliseconds(256000));
    CHECK(retryable_status(500));
    CHECK(retryable_status(503));
    CHECK_FALSE(retryable_status(404));
    CHECK_FALSE(retryable_status(302));
    CHECK_FALSE(retryable_status(200));
    CHECK(idempotency_key("abc", "n1", 3) == "abc-n1-3");
    CHECK(user_agent().rfind("pg_durable/", 0) == 0);
}
