// HTTP steps (SPEC.md §14) against a local test server: methods, headers,
// bodies, envelopes, retries, timeouts, size limit, redirects, concurrency
// and its cap, aborts on df.cancel and on a lost RACE, the Idempotency-Key,
// and every SSRF gate.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <map>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "cluster.hpp"
#include "http_test_server.hpp"

using namespace pgd::test;
using Json = nlohmann::json;

namespace {

constexpr const char *kProcessing = "pg_durable: processing durable functions...";

std::string quote(const std::string &text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + "'";
}

// A cluster with HTTP on, a daemon attached to it.
struct HttpEnv {
    TestCluster cluster;
    DaemonProcess daemon;

    explicit HttpEnv(std::map<std::string, std::string> settings)
        : cluster(options(std::move(settings))), daemon((cluster.exec("CREATE EXTENSION pg_durable"), cluster)) {
        REQUIRE_EVENTUALLY(daemon.log_contains(kProcessing), 30s, daemon.log());
    }

    static ClusterOptions options(std::map<std::string, std::string> settings) {
        ClusterOptions o;
        o.settings = {{"pg_durable.http_enabled", "on"},
                      {"pg_durable.enable_superuser_instances", "on"},
                      {"pg_durable.http_max_response_bytes", "64kB"}};
        for (auto &[k, v] : settings) o.settings[k] = v;
        return o;
    }

    std::string start(const std::string &fut) const {
        const auto id = cluster.query_value("SELECT df.start(" + fut + ")");
        REQUIRE(id);
        return *id;
    }
    std::string status(const std::string &id) const {
        return cluster.query_value("SELECT df.status(" + quote(id) + ")").value_or("");
    }
    bool terminal(const std::string &id) const {
        const auto s = status(id);
        return s == "completed" || s == "failed" || s == "cancelled";
    }
    // Waits for the instance to end; its df.result as JSON.
    Json finish(const std::string &id, std::chrono::milliseconds deadline = 60s) const {
        REQUIRE_EVENTUALLY(terminal(id), deadline, daemon.log());
        return Json::parse(cluster.query_value("SELECT df.result(" + quote(id) + ")").value_or("null"));
    }
};

std::string http_call(const std::string &url, const std::string &method = "GET", const std::string &body = "NULL",
                      const std::string &headers = "'{}'", int timeout = 30) {
    return "df.http(" + quote(url) + ", " + quote(method) + ", " + body + ", " + headers + "::jsonb, " +
           std::to_string(timeout) + ")";
}

using Clock = std::chrono::steady_clock;

}  // namespace

TEST_CASE("HTTP steps: methods, headers, JSON and binary bodies, status handling, retries, limits", "[http]") {
    HttpTestServer server;
    HttpEnv env({{"pg_durable.http_allowed_hosts", "*"}, {"pg_durable.http_allow_private_networks", "on"}});

    // Everything starts at once; each instance is checked below.
    const auto get = env.start(http_call(server.url("/echo"), "GET"));
    const auto post = env.start(http_call(server.url("/echo"), "POST", "'{\"a\": [1, 2]}'"));
    const auto put = env.start(http_call(server.url("/echo"), "put", "'plain words'"));
    const auto del = env.start(http_call(server.url("/echo"), "DELETE"));
    const auto patch = env.start(http_call(server.url("/echo"), "PATCH", "'{\"x\":1}'",
                                           "'{\"Content-Type\":\"text/x-custom\",\"X-Test\":\"yes\",\"X-Num\":5}'"));
    const auto binary = env.start(http_call(server.url("/binary")));
    const auto not_found = env.start("df.seq(df.as(" + http_call(server.url("/status/404")) +
                                     ", 'r'), df.sql('SELECT $r.status AS code, $r.ok AS ok'))");
    const auto redirect = env.start(http_call(server.url("/redirect")));
    const auto flaky = env.start(http_call(server.url("/flaky/one")));
    const auto failing = env.start(http_call(server.url("/fail")));
    const auto big = env.start(http_call(server.url("/big")));
    const auto slow = env.start(http_call(server.url("/slow/3000"), "GET", "NULL", "'{}'", 1));

    {  // "methods, default and given headers, JSON body"
        Json g = env.finish(get);
        INFO(g.dump());
        CHECK(g["status"] == 200);
        CHECK(g["ok"] == true);
        CHECK(g["encoding"] == "text");
        CHECK(g["attempts"] == 1);
        CHECK(g["duration_ms"].is_number_integer());
        CHECK(g["headers"]["content-type"] == "application/json");
        std::vector<std::string> keys;
        const auto raw = env.cluster.query_value("SELECT df.result(" + quote(get) + ")").value_or("{}");
        const auto ordered = nlohmann::ordered_json::parse(raw);
        for (const auto &item : ordered.items()) keys.push_back(item.key());
        CHECK(keys == std::vector<std::string>{"status", "body", "encoding", "headers", "ok", "duration_ms",
                                               "attempts"});
        Json echo = Json::parse(g["body"].get<std::string>());
        CHECK(echo["method"] == "GET");
        CHECK(echo["headers"]["user-agent"].get<std::string>().rfind("pg_durable/", 0) == 0);
        const std::string key = echo["headers"]["idempotency-key"];
        CHECK(key.rfind(get + "-", 0) == 0);
        CHECK(key.size() > 2);
        CHECK(key.substr(key.size() - 2) == "-1");

        Json post_result = env.finish(post);
        INFO(post_result.dump());
        REQUIRE(post_result["body"].is_string());
        Json p = Json::parse(post_result["body"].get<std::string>());
        CHECK(p["method"] == "POST");
        CHECK(p["body"] == "{\"a\": [1, 2]}");
        CHECK(p["headers"]["content-type"] == "application/json");

        Json u = Json::parse(env.finish(put)["body"].get<std::string>());
        CHECK(u["method"] == "PUT");
        CHECK(u["body"] == "plain words");
        CHECK_FALSE(u["headers"].contains("content-type"));

        CHECK(Json::parse(env.finish(del)["body"].get<std::string>())["method"] == "DELETE");

        Json pa = Json::parse(env.finish(patch)["body"].get<std::string>());
        CHECK(pa["method"] == "PATCH");
        CHECK(pa["headers"]["content-type"] == "text/x-custom");
        CHECK(pa["headers"]["x-test"] == "yes");
        CHECK_FALSE(pa["headers"].contains("x-num"));  // not a string: ignored
    }

    {  // "binary body is base64"
        Json b = env.finish(binary);
        CHECK(b["encoding"] == "base64");
        CHECK(b["body"].get<std::string>().rfind("AAECAwQFBgc", 0) == 0);
        CHECK(b["headers"]["content-type"] == "application/octet-stream");
    }

    {  // "404 completes with ok=false and the workflow goes on; redirects are not followed"
        Json r = env.finish(not_found);
        INFO(r.dump());
        CHECK(env.status(not_found) == "completed");
        CHECK(r.dump().find("404") != std::string::npos);
        CHECK(r.dump().find("false") != std::string::npos);

        Json d = env.finish(redirect);
        CHECK(d["status"] == 302);
        CHECK(d["ok"] == false);
        CHECK(d["headers"]["location"] == "/echo");
        CHECK(server.hits("/echo").size() == 5);  // the five method requests, nothing from the redirect
    }

    {  // "500 then 200 succeeds on the second attempt with the same Idempotency-Key"
        Json f = env.finish(flaky);
        INFO(f.dump());
        CHECK(f["status"] == 200);
        CHECK(f["attempts"] == 2);
        const auto hits = server.hits("/flaky/one");
        REQUIRE(hits.size() == 2);
        CHECK(hits[0].idempotency_key == hits[1].idempotency_key);
        CHECK(hits[0].idempotency_key.rfind(flaky + "-", 0) == 0);
    }

    {  // "persistent 500 fails after http_max_attempts with the status text"
        Json f = env.finish(failing);
        INFO(f.dump());
        CHECK(env.status(failing) == "failed");
        CHECK(f["error"] == "HTTP GET " + server.url("/fail") + " returned 500: always failing");
        CHECK(server.hits("/fail").size() == 3);
    }

    {  // "a body over http_max_response_bytes fails at once"
        Json f = env.finish(big);
        CHECK(f["error"] == "HTTP response from " + server.url("/big") +
                                " exceeds pg_durable.http_max_response_bytes (65536 bytes)");
        CHECK(server.hits("/big").size() == 1);
    }

    {  // "each attempt is bounded by timeout_seconds"
        Json f = env.finish(slow);
        CHECK(f["error"] == "HTTP timeout after 1s: " + server.url("/slow/3000"));
        CHECK(server.hits("/slow/3000").size() == 3);
    }
}

TEST_CASE("HTTP steps run concurrently: a JOIN of five and fifty instances", "[http]") {
    HttpTestServer server;
    HttpEnv env({{"pg_durable.http_allowed_hosts", "*"}, {"pg_durable.http_allow_private_networks", "on"}});
    const std::string one = http_call(server.url("/slow/1000"));

    {  // "JOIN of five 1 s requests"
        const auto begin = Clock::now();
        const auto id = env.start("df.join(df.join3(" + one + ", " + one + ", " + one + "), df.join(" + one + ", " +
                                  one + "))");
        Json r = env.finish(id);
        const auto elapsed = Clock::now() - begin;
        INFO(r.dump());
        CHECK(env.status(id) == "completed");
        CHECK(server.hits("/slow/1000").size() == 5);
        CHECK(elapsed < 3500ms);
    }

    {  // "fifty instances with one 1 s request each"
        const auto begin = Clock::now();
        std::vector<std::string> ids;
        for (int i = 0; i < 50; ++i) ids.push_back(env.start(one));
        const auto completed = [&] {
            return env.cluster.query_value("SELECT count(*) FROM df.instances WHERE status = 'completed'");
        };
        REQUIRE_EVENTUALLY(completed().value_or("") == "51", 30s, env.daemon.log());  // + the JOIN
        const auto elapsed = Clock::now() - begin;
        CHECK(elapsed < 6s);
        CHECK(server.hits("/slow/1000").size() == 55);
    }
}

TEST_CASE("SSRF: restricted addresses, schemes, the allow-list and EXECUTE on df.http", "[http]") {
    HttpTestServer server;
    const std::string port = std::to_string(server.port());
    HttpEnv env({{"pg_durable.http_allowed_hosts",
                  "127.0.0.1, 169.254.169.254, 10.1.2.3, ::1, ::ffff:127.0.0.1, LOCALHOST, *.example.com"},
                 {"pg_durable.http_allow_private_networks", "off"}});
    const std::string restricted =
        "' is in a restricted range. df.http() cannot access private or internal network addresses.";

    std::map<std::string, std::string> cases = {
        {"http://127.0.0.1:" + port + "/echo", "127.0.0.1"},
        {"http://169.254.169.254/latest/meta-data/", "169.254.169.254"},
        {"http://10.1.2.3/", "10.1.2.3"},
        {"http://[::1]:" + port + "/echo", "::1"},
        {"http://[::ffff:127.0.0.1]:" + port + "/echo", "::ffff:127.0.0.1"},
        {"http://localhost:" + port + "/echo", "localhost"},
    };
    std::map<std::string, std::string> ids;
    for (const auto &[url, host] : cases) ids[url] = env.start(http_call(url));
    for (const auto &[url, host] : cases) {
        Json r = env.finish(ids[url]);
        INFO(url << " -> " << r.dump());
        CHECK(r["error"] == "Blocked: the resolved IP address for '" + host + restricted);
    }
    CHECK(server.total_hits() == 0);

    // Outside the allow-list.
    const Json outside = env.finish(env.start(http_call("http://203.0.113.7/x")));
    CHECK(outside["error"] == "Blocked: '203.0.113.7' is not in pg_durable.http_allowed_hosts.");

    // file:// at DSL time, and at execution time through substitution.
    CHECK_THROWS_WITH(env.cluster.exec("SELECT " + http_call("file:///etc/passwd")),
                      Catch::Contains("Blocked: unsupported URL scheme 'file'. Only http and https are allowed."));
    env.cluster.exec("SELECT df.setvar('u', 'file:///etc/passwd')");
    const Json file = env.finish(env.start(http_call("{u}")));
    CHECK(file["error"] == "Blocked: unsupported URL scheme 'file'. Only http and https are allowed.");

    // A role without EXECUTE on df.http: the graph is built by the superuser,
    // started by alice.
    env.cluster.exec("CREATE ROLE alice " + kLogin);
    env.cluster.exec("SELECT df.grant_usage('alice')");
    const auto graph = env.cluster.query_value("SELECT " + http_call("http://api.example.com/x"));
    REQUIRE(graph);
    pqxx::connection alice(env.cluster.conninfo("alice"));
    pqxx::nontransaction tx(alice);
    const std::string id = tx.exec("SELECT df.start(" + quote(*graph) + ")")[0][0].as<std::string>();
    REQUIRE_EVENTUALLY(env.terminal(id), 30s, env.daemon.log());
    const auto error = env.cluster.query_value("SELECT error FROM df.instances WHERE id = " + quote(id));
    CHECK(error.value_or("") ==
          "Blocked: role 'alice' does not have EXECUTE privilege on df.http(). Grant EXECUTE ON FUNCTION "
          "df.http(text,text,text,jsonb,integer) TO alice to allow HTTP requests.");
}

TEST_CASE("max_http_concurrency caps requests in flight; the rest queue, and a reload changes the cap", "[http]") {
    HttpTestServer server;
    HttpEnv env({{"pg_durable.http_allowed_hosts", "*"},
                 {"pg_durable.http_allow_private_networks", "on"},
                 {"pg_durable.max_http_concurrency", "2"}});
    const std::string held = http_call(server.url("/hold/700"));
    const auto all_completed = [&](const std::vector<std::string> &ids) {
        return std::all_of(ids.begin(), ids.end(), [&](const std::string &id) { return env.terminal(id); });
    };

    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(env.start(held));
    REQUIRE_EVENTUALLY(all_completed(ids), 30s, env.daemon.log());
    for (const auto &id : ids) {
        INFO(id << ": " << env.finish(id).dump());
        CHECK(env.status(id) == "completed");
        CHECK(env.finish(id)["status"] == 200);
    }
    CHECK(server.hits("/hold/700").size() == 6);
    CHECK(server.max_holding() == 2);

    // SIGHUP: new requests see the new cap.
    env.cluster.exec("ALTER SYSTEM SET pg_durable.max_http_concurrency = 3");
    env.cluster.exec("SELECT pg_reload_conf()");
    REQUIRE_EVENTUALLY((env.daemon.signal(SIGHUP),
                        wait_until([&] { return env.daemon.log_contains("pg_durable.max_http_concurrency changed from 2 to 3"); },
                                   500ms)),
                       15s, env.daemon.log());
    server.reset_max_holding();
    ids.clear();
    for (int i = 0; i < 7; ++i) ids.push_back(env.start(held));
    REQUIRE_EVENTUALLY(all_completed(ids), 30s, env.daemon.log());
    for (const auto &id : ids) CHECK(env.status(id) == "completed");
    CHECK(server.hits("/hold/700").size() == 13);
    CHECK(server.max_holding() == 3);
}

TEST_CASE("df.cancel aborts an HTTP request in flight and frees its slot", "[http]") {
    HttpTestServer server;
    HttpEnv env({{"pg_durable.http_allowed_hosts", "*"},
                 {"pg_durable.http_allow_private_networks", "on"},
                 {"pg_durable.max_http_concurrency", "1"}});
    const auto id = env.start(http_call(server.url("/hold/30000"), "GET", "NULL", "'{}'", 60));
    REQUIRE_EVENTUALLY(server.holding() == 1, 15s, env.daemon.log());
    // Queued behind it (one slot): must not wait for the aborted one's 30 s.
    const auto next = env.start(http_call(server.url("/echo")));

    const auto cancelled_at = Clock::now();
    env.cluster.exec("SELECT df.cancel(" + quote(id) + ", 'enough')");
    REQUIRE_EVENTUALLY(server.closed_while_held() == 1, 3s, env.daemon.log());
    CHECK(Clock::now() - cancelled_at < 3s);
    CHECK(env.status(id) == "cancelled");
    // The HTTP node is a running step: it becomes cancelled like a SQL step.
    REQUIRE_EVENTUALLY(env.cluster.query_value("SELECT status || ': ' || error FROM df.nodes WHERE instance_id = " +
                                               quote(id) + " AND node_type = 'HTTP'") == "cancelled: Cancelled: enough",
                       10s, env.daemon.log());

    CHECK(env.finish(next, 10s)["status"] == 200);
    CHECK(server.hits("/hold/30000").size() == 1);
}

TEST_CASE("an HTTP step that loses a RACE is aborted at once", "[http]") {
    HttpTestServer server;
    HttpEnv env({{"pg_durable.http_allowed_hosts", "*"}, {"pg_durable.http_allow_private_networks", "on"}});
    // The SQL branch wins only once the test has seen the HTTP request arrive.
    env.cluster.exec("CREATE TABLE go (x int)");
    env.cluster.exec("CREATE FUNCTION wait_go() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
                     "WHILE NOT EXISTS (SELECT 1 FROM go) LOOP PERFORM pg_sleep(0.05); END LOOP; RETURN 7; END $$");
    const auto id = env.start(http_call(server.url("/hold/30000"), "GET", "NULL", "'{}'", 60) +
                              " | 'SELECT wait_go() AS w'");
    REQUIRE_EVENTUALLY(server.holding() == 1, 15s, env.daemon.log());

    env.cluster.exec("INSERT INTO go VALUES (1)");
    const auto released_at = Clock::now();
    REQUIRE_EVENTUALLY(env.terminal(id), 10s, env.daemon.log());
    CHECK(env.status(id) == "completed");
    CHECK(env.finish(id) == Json::parse(R"({"rows":[{"w":7}],"row_count":1})"));
    REQUIRE_EVENTUALLY(server.closed_while_held() == 1, 3s, env.daemon.log());
    CHECK(Clock::now() - released_at < 5s);
    CHECK(env.cluster.query_value("SELECT status || ': ' || error FROM df.nodes WHERE instance_id = " + quote(id) +
                                  " AND node_type = 'HTTP'") == "cancelled: Branch cancelled after losing RACE");
}
