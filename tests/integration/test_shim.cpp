// The shim (SPEC.md §2): with pg_durable.launch_daemon = on the server
// launches the daemon, restarts it when it dies and stops it on shutdown.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "catch_compat.hpp"

#include "cluster.hpp"

using namespace pgd::test;

namespace {

constexpr const char *kProcessing = "pg_durable: processing durable functions...";

// The server (the postgres OS user) must be able to execute the daemon, but
// the build tree may sit where that user cannot reach (e.g. under /root):
// run a copy of the freshly built binary from a world-readable scratch dir.
std::string server_visible_daemon() {
    static const std::string path = [] {
        char tmpl[] = "/tmp/pgd-shim-daemon.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        ::chmod(tmpl, 0755);
        const std::string dir = tmpl;
        const std::string copy = dir + "/pg_durable_daemon";
        std::filesystem::copy_file(daemon_binary(), copy);
        ::chmod(copy.c_str(), 0755);
        static const std::string cleanup_dir = dir;
        std::atexit([] { std::filesystem::remove_all(cleanup_dir); });
        return copy;
    }();
    return path;
}

ClusterOptions shim_options() {
    ClusterOptions options;
    options.launch_daemon = true;
    options.settings["pg_durable.daemon_path"] = server_visible_daemon();
    return options;
}

pid_t shim_pid(const TestCluster &cluster) {
    const auto pid = cluster.query_value("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_durable shim'");
    return pid ? static_cast<pid_t>(std::stol(*pid)) : 0;
}

// The daemon is the shim's only child process.
pid_t daemon_pid(pid_t shim) {
    const auto children = child_processes(shim);
    return children.size() == 1 ? children.front() : 0;
}

// Every pg_durable_daemon process launched for `cluster` (its --host is the
// cluster's socket directory), whoever its parent is now: a daemon orphaned
// by the death of its shim is reparented and no longer the shim's child.
std::vector<pid_t> cluster_daemons(const TestCluster &cluster) {
    std::vector<pid_t> found;
    for (const auto &entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream in(entry.path() / "cmdline", std::ios::binary);
        std::vector<std::string> argv;
        for (std::string arg; std::getline(in, arg, '\0');) argv.push_back(arg);
        if (argv.empty() || argv[0] != server_visible_daemon()) continue;
        for (std::size_t i = 0; i + 1 < argv.size(); ++i)
            if (argv[i] == "--host" && argv[i + 1] == cluster.dir() && process_alive(std::stoi(name)))
                found.push_back(std::stoi(name));
    }
    return found;
}

std::string pids_text(const std::vector<pid_t> &pids) {
    std::ostringstream out;
    for (const pid_t pid : pids) out << pid << ' ';
    return out.str();
}

}  // namespace

TEST_CASE("the shim launches the daemon, restarts it after SIGKILL and stops it with the server", "[shim]") {
    TestCluster cluster(shim_options());
    cluster.exec("CREATE EXTENSION pg_durable");

    pid_t shim = 0;
    REQUIRE_EVENTUALLY((shim = shim_pid(cluster)) != 0, 30s, cluster.server_log());
    pid_t first = 0;
    REQUIRE_EVENTUALLY((first = daemon_pid(shim)) != 0, 30s, cluster.server_log());
    // The daemon's stderr is the server's log.
    REQUIRE_EVENTUALLY(count_occurrences(cluster.server_log(), kProcessing) == 1, 30s, cluster.server_log());
    CHECK(cluster.server_log().find("pg_durable shim: started daemon") != std::string::npos);
    // It holds the orchestrator lock as the bootstrap superuser, in pg_durable.database
    // (pg_try_advisory_lock(0x70676475, 1), see daemon/store.cpp).
    CHECK(cluster.query_value("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                              "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 1885824117 "
                              "AND l.objid = 1 AND l.objsubid = 2 AND a.application_name = 'pg_durable orchestrator' "
                              "AND a.usename = '" + cluster.superuser() + "' AND a.datname = 'postgres'") ==
          std::optional<std::string>("1"));

    ::kill(first, SIGKILL);
    pid_t second = 0;
    REQUIRE_EVENTUALLY((second = daemon_pid(shim)) != 0 && second != first, 30s, cluster.server_log());
    CHECK_FALSE(process_alive(first));
    REQUIRE_EVENTUALLY(count_occurrences(cluster.server_log(), kProcessing) == 2, 30s, cluster.server_log());
    CHECK(cluster.server_log().find("was terminated by signal 9") != std::string::npos);
    CHECK(cluster.server_log().find("restarting in 1000 ms") != std::string::npos);

    // A second quick death backs off further.
    ::kill(second, SIGKILL);
    REQUIRE_EVENTUALLY(cluster.server_log().find("restarting in 2000 ms") != std::string::npos, 10s,
                       cluster.server_log());
    pid_t third = 0;
    REQUIRE_EVENTUALLY((third = daemon_pid(shim)) != 0 && third != second, 30s, cluster.server_log());
    REQUIRE_EVENTUALLY(count_occurrences(cluster.server_log(), kProcessing) == 3, 30s, cluster.server_log());
    second = third;

    cluster.stop(StopMode::fast);
    REQUIRE_EVENTUALLY(!process_alive(second), 15s, cluster.server_log());
    CHECK_FALSE(process_alive(shim));
    CHECK(cluster.server_log().find("pg_durable: daemon stopped") != std::string::npos);
}

TEST_CASE("the daemon exits when the shim dies (immediate shutdown)", "[shim]") {
    TestCluster cluster(shim_options());
    cluster.exec("CREATE EXTENSION pg_durable");
    pid_t shim = 0;
    REQUIRE_EVENTUALLY((shim = shim_pid(cluster)) != 0, 30s, cluster.server_log());
    pid_t daemon = 0;
    REQUIRE_EVENTUALLY((daemon = daemon_pid(shim)) != 0, 30s, cluster.server_log());
    REQUIRE_EVENTUALLY(cluster.server_log().find(kProcessing) != std::string::npos, 30s, cluster.server_log());

    // Immediate shutdown gives the shim no chance to stop the daemon; the
    // lifeline pipe (and PR_SET_PDEATHSIG) must.
    cluster.stop(StopMode::immediate);
    REQUIRE_EVENTUALLY(!process_alive(daemon), 15s, cluster.server_log());
}

TEST_CASE("no daemon outlives an immediate shutdown in 30 cycles", "[shim]") {
    // Issue 8 item 11: about one immediate shutdown in ten left the daemon
    // running without a parent. One data directory, restarted each cycle.
    TestCluster cluster(shim_options());
    cluster.exec("CREATE EXTENSION pg_durable");
    for (int cycle = 1; cycle <= 30; ++cycle) {
        INFO("cycle " << cycle);
        if (cycle > 1) cluster.start();
        pid_t shim = 0;
        REQUIRE_EVENTUALLY((shim = shim_pid(cluster)) != 0, 30s, cluster.server_log());
        pid_t daemon = 0;
        REQUIRE_EVENTUALLY((daemon = daemon_pid(shim)) != 0, 30s, cluster.server_log());
        // Attached and working: it holds connections (and their sockets).
        REQUIRE_EVENTUALLY(count_occurrences(cluster.server_log(), kProcessing) == static_cast<std::size_t>(cycle),
                           30s, cluster.server_log());

        cluster.stop(StopMode::immediate);
        REQUIRE_EVENTUALLY(cluster_daemons(cluster).empty(), 5s,
                           "daemons left: " + pids_text(cluster_daemons(cluster)) + "\n" + cluster.server_log());
        // A daemon that is exiting has already lost its command line (how
        // cluster_daemons finds it) before it is gone: wait for the end.
        REQUIRE_EVENTUALLY(!process_alive(daemon), 5s, "daemon " + std::to_string(daemon) + " still alive");
    }
}

TEST_CASE("the shim and the daemon exit when the postmaster is killed", "[shim]") {
    TestCluster cluster(shim_options());
    cluster.exec("CREATE EXTENSION pg_durable");
    pid_t shim = 0;
    REQUIRE_EVENTUALLY((shim = shim_pid(cluster)) != 0, 30s, cluster.server_log());
    pid_t daemon = 0;
    REQUIRE_EVENTUALLY((daemon = daemon_pid(shim)) != 0, 30s, cluster.server_log());
    REQUIRE_EVENTUALLY(cluster.server_log().find(kProcessing) != std::string::npos, 30s, cluster.server_log());

    std::ifstream pid_file(cluster.data_dir() + "/postmaster.pid");
    pid_t postmaster = 0;
    REQUIRE(pid_file >> postmaster);
    const auto server_processes = child_processes(postmaster);
    ::kill(postmaster, SIGKILL);
    // No SIGQUIT this time: the shim notices the postmaster's death itself.
    REQUIRE_EVENTUALLY(!process_alive(shim), 5s, cluster.server_log());
    REQUIRE_EVENTUALLY(cluster_daemons(cluster).empty(), 5s,
                       "daemons left: " + pids_text(cluster_daemons(cluster)) + "\n" + cluster.server_log());
    // An exiting daemon loses its command line before it is gone: wait for the end.
    REQUIRE_EVENTUALLY(!process_alive(daemon), 5s, "daemon " + std::to_string(daemon) + " still alive");

    // Let the orphaned backends go, then start once more so the server cleans
    // up after its killed postmaster (shared memory) before the fixture stops it.
    REQUIRE_EVENTUALLY(std::none_of(server_processes.begin(), server_processes.end(), process_alive), 30s,
                       cluster.server_log());
    // Until it is reaped, the killed postmaster's pid still answers kill(pid, 0)
    // and the server refuses to start ("lock file already exists").
    REQUIRE_EVENTUALLY(!std::filesystem::exists("/proc/" + std::to_string(postmaster)), 30s, cluster.server_log());
    cluster.start();
}

TEST_CASE("the shim forwards SIGHUP to the daemon", "[shim]") {
    TestCluster cluster(shim_options());
    cluster.exec("CREATE EXTENSION pg_durable");
    REQUIRE_EVENTUALLY(cluster.server_log().find(kProcessing) != std::string::npos, 30s, cluster.server_log());
    cluster.exec("ALTER SYSTEM SET pg_durable.retention_days = 3");
    cluster.exec("SELECT pg_reload_conf()");
    REQUIRE_EVENTUALLY(cluster.server_log().find("pg_durable.retention_days changed from 30 to 3") !=
                           std::string::npos,
                       15s, cluster.server_log());
}

TEST_CASE("with an empty daemon_path the shim runs pg_durable_daemon from PostgreSQL's bindir", "[shim]") {
    ClusterOptions options;
    options.launch_daemon = true;
    TestCluster cluster(options);
    const std::string expected = std::string("\"") + PGD_PG_BINDIR + "/pg_durable_daemon\"";
    // Started, or (when nothing is installed there) refused with that path.
    REQUIRE_EVENTUALLY(cluster.server_log().find("started daemon " + expected) != std::string::npos ||
                           cluster.server_log().find("cannot execute daemon binary " + expected) !=
                               std::string::npos,
                       30s, cluster.server_log());
}
