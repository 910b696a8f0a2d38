// deploy/monitoring/queries.yaml with Debian's prometheus-postgres-exporter
// (issue 11 item 6): a cluster with workflows in every interesting state, an
// active and a standby daemon, the exporter as a child process connecting as
// a pg_monitor member (scram password in DATA_SOURCE_NAME), its /metrics
// scraped over HTTP: every pg_durable series is there and equals what the
// tables say; nothing of the users' data is.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "http_test_server.hpp"
#include "test_engine_common.hpp"

using namespace pgd::test;
using namespace std::chrono_literals;

namespace {

constexpr const char *kExporter = "/usr/bin/prometheus-postgres-exporter";

// The flag that turns off the bgwriter collector: postgres_exporter 0.15
// renamed the collector (Debian 12 ships 0.11: bgwriter; Debian 13 0.17:
// stat_bgwriter); its --help tells which one this exporter has.
std::string no_bgwriter_flag() {
    std::string help;
    if (FILE *out = ::popen((std::string(kExporter) + " --help 2>&1").c_str(), "r")) {
        char buf[4096];
        while (std::fgets(buf, sizeof buf, out) != nullptr) help += buf;
        ::pclose(out);
    }
    return help.find("--collector.stat_bgwriter") != std::string::npos ? "--no-collector.stat_bgwriter"
                                                                        : "--no-collector.bgwriter";
}

// GET http://127.0.0.1:<port><path> (HTTP/1.0, the server closes); the body,
// or "" when nothing answers.
std::string http_get(int port, const std::string &path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return "";
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string response;
    if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0) {
        const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
            char buf[65536];
            ssize_t n;
            while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    const auto body = response.find("\r\n\r\n");
    if (response.compare(0, 12, "HTTP/1.0 200") != 0 && response.compare(0, 12, "HTTP/1.1 200") != 0) return "";
    return body == std::string::npos ? "" : response.substr(body + 4);
}

// name -> value of every sample in a Prometheus text exposition (one series
// per name here: the exporter adds only its `server` label).
std::map<std::string, double> samples(const std::string &text) {
    std::map<std::string, double> out;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto name_end = line.find_first_of("{ ");
        const auto value_at = line.rfind(' ');
        if (name_end == std::string::npos || value_at == std::string::npos) continue;
        try {
            out[line.substr(0, name_end)] = std::stod(line.substr(value_at + 1));
        } catch (const std::exception &) {
        }
    }
    return out;
}

// The pg_durable_* lines of a scrape (for the failure report and the docs).
std::string pg_durable_lines(const std::string &text) {
    std::istringstream lines(text);
    std::string line, out;
    while (std::getline(lines, line))
        if (line.find("pg_durable_") != std::string::npos || line.rfind("pg_up", 0) == 0) out += line + "\n";
    return out;
}

}  // namespace

TEST_CASE("exporter: queries.yaml serves every pg_durable series, equal to the tables, to a pg_monitor role",
          "[exporter]") {
    if (::access(kExporter, X_OK) != 0)
        FAIL(std::string(kExporter) + " is not installed (Debian package prometheus-postgres-exporter; "
                                      "scripts/install-deps.sh installs it)");

    ClusterOptions options;
    options.settings = {{"pg_durable.http_enabled", "on"},
                        {"pg_durable.http_allowed_hosts", "*"},
                        {"pg_durable.http_allow_private_networks", "on"},
                        {"pg_durable.max_user_connections", "4"}};
    EngineCluster ec(options);
    TestCluster &cluster = ec.cluster();
    HttpTestServer server;
    cluster.exec("GRANT EXECUTE ON FUNCTION df.http(text, text, text, jsonb, integer) TO alice");
    cluster.exec("CREATE ROLE watcher " + kLogin + " IN ROLE pg_monitor");
    DaemonProcess standby(cluster, {"--log-level", "debug"}, "standby");
    REQUIRE_EVENTUALLY(standby.log_contains("standby, another daemon holds the orchestrator lock"), 30s,
                       standby.log());

    // Workflows in every state the metrics distinguish.
    std::vector<std::string> done;
    for (int i = 0; i < 3; ++i) done.push_back(ec.start("'SELECT 1 AS n' ~> 'SELECT ''secret-result'' AS n'"));
    const auto failing = ec.start("'SELECT 1/0'");
    const auto long_step = ec.start("'SELECT pg_sleep(120)'", "bob");
    const auto timer = ec.start("df.sleep(600)");
    const auto signal = ec.start("df.wait_for_signal('go')");
    const auto http = ec.start("df.http(" + lit(server.url("/hold/120000")) + ", 'GET', NULL, '{}'::jsonb, 150)");
    for (const auto &id : done) CHECK(ec.await(id) == "completed");
    CHECK(ec.await(failing) == "failed");
    REQUIRE_EVENTUALLY(count_of(ec, kSleepingStep) == 1, 20s, ec.diagnostics(long_step));
    REQUIRE_EVENTUALLY(server.holding() == 1, 20s, ec.diagnostics(http));
    REQUIRE_EVENTUALLY(count_of(ec, "SELECT count(*) FROM df._activations WHERE status = 'running'") == 2, 20s,
                       ec.diagnostics(timer) + ec.diagnostics(signal));

    // The exporter, as the monitoring role, on a free port; always stopped.
    const int port = free_tcp_port();
    const std::string dsn = "host=" + cluster.dir() + " port=" + std::to_string(cluster.port()) +
                            " user=watcher password=" + kRolePassword + " dbname=postgres sslmode=disable";
    ::setenv("DATA_SOURCE_NAME", dsn.c_str(), 1);
    ChildProcess exporter({kExporter, "--web.listen-address=127.0.0.1:" + std::to_string(port),
                           "--extend.query-path=" + std::string(PGD_SOURCE_DIR) + "/deploy/monitoring/queries.yaml",
                           "--disable-default-metrics", "--disable-settings-metrics", "--no-collector.database",
                           no_bgwriter_flag(), "--log.level=warn"},
                          cluster.dir() + "/exporter.log");
    ::unsetenv("DATA_SOURCE_NAME");

    // What the tables say, read as the superuser.
    auto table = [&](const std::string &sql) { return std::stod(cluster.query_value(sql).value_or("-1")); };
    const std::string steps_with =
        "SELECT count(*) FROM df._activations a JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id "
        " WHERE n.node_type IN ('SQL', 'HTTP') AND a.status = ";
    const std::string waiting =
        "SELECT count(DISTINCT a.instance_id) FROM df._activations a "
        "  JOIN df.nodes n ON n.instance_id = a.instance_id AND n.id = a.node_id "
        " WHERE a.status = 'running' AND ";

    std::string scrape, report;
    auto matches = [&]() {
        scrape = http_get(port, "/metrics");
        const auto got = samples(scrape);
        const double completed = table(steps_with + "'completed'");
        const double failed = table(steps_with + "'failed'");
        // In flight: the pg_sleep step and the held HTTP request.
        const double in_flight = table(kSleepingStep) + server.holding();
        const std::map<std::string, double> want = {
            {"pg_up", 1},
            {"pg_durable_instances_pending", table("SELECT count(*) FROM df.instances WHERE status = 'pending'")},
            {"pg_durable_instances_running", table("SELECT count(*) FROM df.instances WHERE status = 'running'")},
            {"pg_durable_instances_completed", table("SELECT count(*) FROM df.instances WHERE status = 'completed'")},
            {"pg_durable_instances_failed", table("SELECT count(*) FROM df.instances WHERE status = 'failed'")},
            {"pg_durable_instances_cancelled", table("SELECT count(*) FROM df.instances WHERE status = 'cancelled'")},
            {"pg_durable_steps_completed_total", completed},
            {"pg_durable_steps_failed_total", failed},
            {"pg_durable_steps_cancelled_total", table(steps_with + "'cancelled'")},
            {"pg_durable_steps_started_total", completed + failed + in_flight},
            {"pg_durable_dispatch_lag_samples",
             table("SELECT count(*) FROM df.instances i WHERE i.created_at > now() - interval '1 minute' "
                   "AND EXISTS (SELECT FROM df._activations a WHERE a.instance_id = i.id AND a.started_at IS NOT NULL)")},
            {"pg_durable_oldest_pending_age_seconds", 0},
            {"pg_durable_instances_waiting_timer", table(waiting + "a.wake_at IS NOT NULL AND n.node_type <> 'SIGNAL'")},
            {"pg_durable_instances_waiting_signal", table(waiting + "n.node_type = 'SIGNAL'")},
            {"pg_durable_user_connections_in_use",
             table("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_durable step' "
                   "AND state <> 'idle'")},
            {"pg_durable_user_connections_open",
             table("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_durable step'")},
            {"pg_durable_user_connections_max", 4},
            {"pg_durable_http_requests_in_flight", static_cast<double>(server.holding())},
            {"pg_durable_daemon_active", 1},
            {"pg_durable_daemon_standbys", 1},
            {"pg_durable_retention_backlog_instances", 0},
        };
        std::ostringstream out;
        for (const auto &[name, value] : want) {
            const auto it = got.find(name);
            if (it == got.end())
                out << name << " missing\n";
            else if (it->second != value)
                out << name << " = " << it->second << ", tables say " << value << "\n";
        }
        const auto age = got.find("pg_durable_daemon_heartbeat_age_seconds");
        if (age == got.end() || !(age->second >= 0 && age->second < 6))
            out << "pg_durable_daemon_heartbeat_age_seconds missing or not fresh\n";
        for (const char *lag : {"pg_durable_dispatch_lag_p50_seconds", "pg_durable_dispatch_lag_p99_seconds"}) {
            const auto it = got.find(lag);
            if (it == got.end() || !std::isfinite(it->second) || it->second < 0 || it->second > 30)
                out << lag << " missing or out of range\n";
        }
        report = out.str();
        return report.empty();
    };
    REQUIRE_EVENTUALLY(matches(), 45s,
                       report + "--- scrape ---\n" + pg_durable_lines(scrape) + "--- exporter log ---\n" +
                           exporter.log());
    CHECK(exporter.running());
    CHECK(samples(scrape).at("pg_durable_dispatch_lag_p99_seconds") >=
          samples(scrape).at("pg_durable_dispatch_lag_p50_seconds"));
    // Numbers only: no instance id, label, query text or result in the scrape.
    for (const auto &id : std::vector<std::string>{done[0], failing, long_step, timer, signal, http})
        CHECK(scrape.find(id) == std::string::npos);
    CHECK(scrape.find("secret-result") == std::string::npos);
    CHECK(scrape.find("pg_sleep") == std::string::npos);
    CHECK(scrape.find("division by zero") == std::string::npos);

    if (const char *out = std::getenv("PGD_EXPORTER_SCRAPE_OUT")) std::ofstream(out) << pg_durable_lines(scrape);

    // The monitoring role itself reads nothing in df.
    CHECK(ec.error_of("watcher", "SELECT count(*) FROM df.instances").value_or("").find("permission denied") !=
          std::string::npos);

    // Counters only grow: the failed step's instance deleted (as retention
    // would), steps_failed_total stays.
    cluster.exec("DELETE FROM df.instances WHERE id = " + lit(failing));
    REQUIRE_EVENTUALLY(samples(http_get(port, "/metrics")).count("pg_durable_instances_failed") &&
                           samples(http_get(port, "/metrics")).at("pg_durable_instances_failed") == 0,
                       20s, exporter.log());
    CHECK(samples(http_get(port, "/metrics")).at("pg_durable_steps_failed_total") == 1);

    exporter.stop();
    CHECK_FALSE(exporter.running());
}
