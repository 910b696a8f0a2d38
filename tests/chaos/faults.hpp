// The fault injector of the chaos harness. It owns the daemons (one normally,
// two while a second daemon runs) and the local HTTP server, and fires, at
// seeded random intervals, one of: kill -9 of the active daemon (restarted if
// none is left), an immediate shutdown and restart of the server,
// pg_terminate_backend of running step backends and of the daemon's own
// sessions (orchestrator, LISTEN, bookkeeping), SIGSTOP of the active daemon
// for longer than the takeover threshold (often with a standby started first,
// which then takes over) followed by SIGCONT, a second daemon started and
// killed later, and the HTTP server stopped for a while. Every fault is
// logged with its time.
//
// Not thread-safe: run() on one thread; the rest before or after it.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "chaos_log.hpp"
#include "cluster.hpp"
#include "http_test_server.hpp"

namespace pgd::chaos {

struct FaultTiming {
    double min_interval_s = 3.0;
    double max_interval_s = 7.0;
};

class FaultInjector {
public:
    FaultInjector(test::TestCluster &cluster, RunLog &log, unsigned seed, FaultTiming timing);
    ~FaultInjector();

    int http_port() const { return http_port_; }
    // The first daemon; waits until it processes.
    void start_first_daemon();
    // Fires faults until `until` (steady clock) or `stop` becomes true.
    void run(Clock::time_point until, const std::function<bool()> &stop);
    // Undo every lasting fault: resume paused daemons, kill the extra ones,
    // bring the server and the HTTP server back, leave one daemon running.
    void heal();

    int faults() const { return faults_; }
    std::string breakdown() const;
    // VmRSS (kB) of each running daemon.
    std::vector<long> daemon_rss_kb();
    // Every request the HTTP server received, across its restarts.
    std::vector<test::HttpTestServer::Hit> http_hits();
    std::string daemon_log_tails(std::size_t bytes_each = 3000);

private:
    struct Daemon {
        int id = 0;
        std::unique_ptr<test::DaemonProcess> process;
        bool stopped = false;  // SIGSTOPped
    };
    struct Pending {
        Clock::time_point at;
        std::string what;
        std::function<void()> action;
    };

    void fire();
    void fault(const std::string &kind, const std::string &text);
    int start_daemon(const std::string &why);
    Daemon *find(int id);
    int alive_unstopped();
    void ensure_daemon();
    // The daemon holding the orchestrator lock (by its session's backend pid), if known.
    std::optional<int> active_daemon();
    void later(double seconds, const std::string &what, std::function<void()> action);
    void run_due(bool all);

    void kill_daemon();
    void restart_server();
    void terminate_steps();
    void terminate_daemon_sessions();
    void pause_daemon();
    void second_daemon();
    void http_outage();
    void start_http();
    void stop_http();

    test::TestCluster &cluster_;
    RunLog &log_;
    std::mt19937 rng_;
    FaultTiming timing_;
    std::vector<Daemon> daemons_;
    int next_daemon_id_ = 0;
    std::unique_ptr<test::HttpTestServer> http_;
    int http_port_ = 0;
    unsigned http_seed_ = 0;
    std::vector<test::HttpTestServer::Hit> hits_;  // of stopped servers
    std::vector<Pending> pending_;
    int faults_ = 0;
    std::map<std::string, int> by_kind_;
};

}  // namespace pgd::chaos
