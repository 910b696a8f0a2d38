// TCP keepalives on every daemon connection (issue 8 item 8): after a network
// partition no thread may block in libpq for hours, and the server must end
// the orchestrator session (and its lock) about as soon as the daemon gives
// up on it. Checked on the live sockets with ss(8): the keepalive timer of an
// idle TCP socket counts down from keepalives_idle.
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <regex>
#include <sstream>

#include "catch_compat.hpp"

#include "test_engine_common.hpp"

using namespace pgd::test;

namespace {

struct TcpSocket {
    pid_t pid = 0;                // owning process, from ss -p
    double keepalive_s = -1;      // remaining keepalive time; -1: no keepalive timer
    std::string line;
};

// Established TCP sockets with `filter` (an ss filter expression).
std::vector<TcpSocket> tcp_sockets(const std::string &filter) {
    const std::string command = "ss -tnopH state established '" + filter + "' 2>&1";
    std::vector<TcpSocket> sockets;
    FILE *out = ::popen(command.c_str(), "r");
    if (out == nullptr) return sockets;
    std::string text;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, out) != nullptr) text += buf;
    ::pclose(out);
    static const std::regex pid_re(R"(pid=(\d+),)");
    // ss prints the time left as [<m>min][<s>sec | <s>.][<ms>ms]: 119min,
    // 10sec, 9.832ms (9 s 832 ms), 250ms; iproute2 6.x (Debian 13) also
    // <s>.<fraction>sec: 4.860sec.
    static const std::regex timer_re(
        R"(timer:\(keepalive,(?:(\d+)min)?(?:(\d+(?:\.\d+)?)sec|(\d+)\.)?(?:(\d+)ms)?,)");
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        TcpSocket socket;
        socket.line = line;
        std::smatch m;
        if (std::regex_search(line, m, pid_re)) socket.pid = std::stoi(m[1]);
        if (std::regex_search(line, m, timer_re))
            socket.keepalive_s = (m[1].matched ? 60.0 * std::stod(m[1]) : 0.0) +
                                 (m[2].matched ? std::stod(m[2]) : 0.0) + (m[3].matched ? std::stod(m[3]) : 0.0) +
                                 (m[4].matched ? std::stod(m[4]) / 1000.0 : 0.0);
        sockets.push_back(socket);
    }
    return sockets;
}

std::string lines_of(const std::vector<TcpSocket> &sockets) {
    std::string out;
    for (const auto &s : sockets) out += s.line + "\n";
    return out;
}

}  // namespace

TEST_CASE("every daemon connection over TCP probes with keepalives on both ends", "[daemon][keepalive]") {
    ClusterOptions options;
    options.settings["listen_addresses"] = "127.0.0.1";  // after the fixture's '' in postgresql.conf: wins
    EngineCluster ec(options, false);
    const std::string port = std::to_string(ec.cluster().port());
    // Discrete flags override --conninfo's socket directory: TCP to localhost.
    DaemonProcess daemon(ec.cluster(), {"--host", "127.0.0.1", "--log-level", "debug"});
    REQUIRE_EVENTUALLY(daemon.log_contains("pg_durable: processing durable functions..."), 30s, daemon.log());

    // A running step holds a user connection (as alice) while we look.
    const auto id = ec.start("'SELECT pg_sleep(8)'");
    REQUIRE_EVENTUALLY(ec.cluster().query_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                                "'pg_durable step' AND state = 'active'") ==
                           std::optional<std::string>("1"),
                       10s, daemon.log());

    // A socket shows its keepalive timer while nothing is in flight (else the
    // retransmit timer, "on"), so sample until each one has been seen idle.
    auto probing = [](const std::vector<TcpSocket> &sockets) {
        return std::all_of(sockets.begin(), sockets.end(),
                           [](const TcpSocket &s) { return s.keepalive_s >= 0 && s.keepalive_s <= 10.0; });
    };

    // The daemon's side: orchestrator session, state connection, the step's
    // connection, all with keepalive timers of at most keepalives_idle (10 s,
    // where libpq's default leaves the kernel's 7200 s).
    std::vector<TcpSocket> ours;
    auto daemon_sockets = [&] {
        ours.clear();
        for (const auto &s : tcp_sockets("( dport = :" + port + " )"))
            if (s.pid == daemon.pid()) ours.push_back(s);
        return ours;
    };
    REQUIRE_EVENTUALLY(daemon_sockets().size() >= 3 && probing(ours), 5s, lines_of(ours));

    // The server's side of the session holding the orchestrator lock probes alike.
    const auto holder = ec.cluster().query_value(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 1885824117 AND objid = 1");
    REQUIRE(holder);
    std::vector<TcpSocket> server_side;
    auto lock_session = [&] {
        server_side.clear();
        for (const auto &s : tcp_sockets("( sport = :" + port + " )"))
            if (s.pid == std::stoi(*holder)) server_side.push_back(s);
        return server_side;
    };
    REQUIRE_EVENTUALLY(lock_session().size() == 1 && probing(server_side), 5s, lines_of(server_side));

    CHECK(ec.await(id) == "completed");
}
