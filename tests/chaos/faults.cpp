#include "faults.hpp"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace pgd::chaos {

namespace {

using namespace std::chrono_literals;

// The orchestrator lock (daemon/store.cpp): advisory (0x70676475, 1).
constexpr const char *kLockHolder =
    "SELECT pid FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND classid = 1885824117 AND objid = 1 "
    "AND objsubid = 2 AND granted";

// The daemon's sessions other than its step connections (and other than the
// harness's own sessions and this one).
constexpr const char *kDaemonSessions =
    "SELECT pid FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend' AND usename = current_user "
    "AND pid <> pg_catalog.pg_backend_pid() AND application_name IS DISTINCT FROM 'pg_durable step' "
    "AND application_name IS DISTINCT FROM 'pgd_chaos'";

// The backend pid of the daemon's orchestrator session, from its last
// "connected ... (backend pid N)" log line.
std::optional<int> logged_backend_pid(const std::string &log) {
    const std::string needle = "(backend pid ";
    const auto pos = log.rfind(needle);
    if (pos == std::string::npos) return std::nullopt;
    try {
        return std::stoi(log.substr(pos + needle.size()));
    } catch (const std::exception &) {
        return std::nullopt;
    }
}

std::string tail(const std::string &text, std::size_t bytes) {
    return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

}  // namespace

FaultInjector::FaultInjector(test::TestCluster &cluster, RunLog &log, unsigned seed, FaultTiming timing)
    : cluster_(cluster), log_(log), rng_(seed), timing_(timing), http_seed_(seed) {
    start_http();
    http_port_ = http_->port();
}

FaultInjector::~FaultInjector() {
    // Resume paused daemons so their destructors can stop them.
    for (auto &d : daemons_)
        if (d.stopped) d.process->signal(SIGCONT);
}

int FaultInjector::start_daemon(const std::string &why) {
    Daemon d;
    d.id = ++next_daemon_id_;
    d.process = std::make_unique<test::DaemonProcess>(cluster_, std::vector<std::string>{"--log-level", "info"},
                                                      "chaos-daemon-" + std::to_string(d.id));
    log_.line("daemon #" + std::to_string(d.id) + " started (pid " + std::to_string(d.process->pid()) + "): " + why);
    daemons_.push_back(std::move(d));
    return daemons_.back().id;
}

void FaultInjector::start_first_daemon() {
    const int id = start_daemon("first daemon");
    auto *d = find(id);
    if (!test::wait_until([&] { return d->process->log_contains("pg_durable: processing durable functions..."); },
                          30s))
        throw std::runtime_error("the first daemon did not start processing:\n" + d->process->log());
}

FaultInjector::Daemon *FaultInjector::find(int id) {
    for (auto &d : daemons_)
        if (d.id == id) return &d;
    return nullptr;
}

int FaultInjector::alive_unstopped() {
    int n = 0;
    for (auto &d : daemons_)
        if (!d.stopped && d.process->running()) ++n;
    return n;
}

void FaultInjector::ensure_daemon() {
    // A daemon that exited by itself is a finding, not a fault of ours: log it.
    for (auto it = daemons_.begin(); it != daemons_.end();) {
        if (!it->process->running()) {
            log_.line("daemon #" + std::to_string(it->id) + " had exited by itself (code " +
                      std::to_string(it->process->wait_exit(0ms).value_or(-1)) + "); log tail:\n" +
                      tail(it->process->log(), 2000));
            it = daemons_.erase(it);
        } else {
            ++it;
        }
    }
    if (alive_unstopped() == 0) start_daemon("no running daemon left");
}

std::optional<int> FaultInjector::active_daemon() {
    std::optional<std::string> holder;
    try {
        holder = query_value(cluster_, kLockHolder);
    } catch (const std::exception &) {
        return std::nullopt;  // the server is down: nobody is active
    }
    if (!holder) return std::nullopt;
    const int pid = std::stoi(*holder);
    for (auto &d : daemons_)
        if (logged_backend_pid(d.process->log()) == pid) return d.id;
    return std::nullopt;
}

void FaultInjector::later(double seconds, const std::string &what, std::function<void()> action) {
    pending_.push_back({Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000)), what,
                        std::move(action)});
}

void FaultInjector::run_due(bool all) {
    std::sort(pending_.begin(), pending_.end(), [](const Pending &a, const Pending &b) { return a.at < b.at; });
    while (!pending_.empty() && (all || pending_.front().at <= Clock::now())) {
        Pending p = std::move(pending_.front());
        pending_.erase(pending_.begin());
        try {
            p.action();
        } catch (const std::exception &e) {
            log_.line("  (" + p.what + " failed: " + e.what() + ")");
        }
    }
}

void FaultInjector::fault(const std::string &kind, const std::string &text) {
    ++faults_;
    ++by_kind_[kind];
    log_.line("fault #" + std::to_string(faults_) + " " + kind + ": " + text);
}

std::string FaultInjector::breakdown() const {
    std::string out;
    for (const auto &[kind, n] : by_kind_) out += (out.empty() ? "" : ", ") + kind + " " + std::to_string(n);
    return out;
}

void FaultInjector::run(Clock::time_point until, const std::function<bool()> &stop) {
    const auto interval = [&] {
        const double s = std::uniform_real_distribution<double>(timing_.min_interval_s, timing_.max_interval_s)(rng_);
        return Clock::now() + std::chrono::milliseconds(static_cast<long>(s * 1000));
    };
    auto next = interval();
    while (Clock::now() < until && !stop()) {
        run_due(false);
        if (Clock::now() >= next) {
            fire();
            next = interval();
        }
        std::this_thread::sleep_for(100ms);
    }
}

void FaultInjector::fire() {
    using Fault = void (FaultInjector::*)();
    // weight, fault
    static const std::vector<std::pair<int, Fault>> kFaults = {
        {3, &FaultInjector::kill_daemon},    {2, &FaultInjector::restart_server},
        {3, &FaultInjector::terminate_steps}, {2, &FaultInjector::terminate_daemon_sessions},
        {2, &FaultInjector::pause_daemon},    {2, &FaultInjector::second_daemon},
        {2, &FaultInjector::http_outage},
    };
    int total = 0;
    for (const auto &f : kFaults) total += f.first;
    const int before = faults_;
    // A fault that does not apply right now (e.g. a pause while one lasts) does nothing: try another.
    for (int tries = 0; tries < 6 && faults_ == before; ++tries) {
        int roll = std::uniform_int_distribution<int>(0, total - 1)(rng_);
        std::size_t i = 0;
        for (; roll >= kFaults[i].first; ++i) roll -= kFaults[i].first;
        try {
            (this->*kFaults[i].second)();
        } catch (const std::exception &e) {
            log_.line("  (fault attempt failed: " + std::string(e.what()) + ")");
        }
    }
}

void FaultInjector::kill_daemon() {
    ensure_daemon();
    auto target = active_daemon();
    std::string role = "active";
    if (!target) {
        const auto i = std::uniform_int_distribution<std::size_t>(0, daemons_.size() - 1)(rng_);
        target = daemons_[i].id;
        role = "no lock holder known, picked at random";
    }
    auto *d = find(*target);
    if (d->stopped) role += ", paused";
    const pid_t pid = d->process->pid();
    d->process->kill_hard();
    daemons_.erase(std::find_if(daemons_.begin(), daemons_.end(), [&](const Daemon &x) { return x.id == *target; }));
    fault("kill-9", "daemon #" + std::to_string(*target) + " pid " + std::to_string(pid) + " (" + role + ")");
    ensure_daemon();
}

void FaultInjector::restart_server() {
    const double down_s = std::uniform_real_distribution<double>(0.0, 3.0)(rng_);
    fault("server-restart", "immediate shutdown, down for " + std::to_string(down_s).substr(0, 4) + " s");
    try {
        cluster_.stop(test::StopMode::immediate);
    } catch (const std::exception &e) {
        log_.line("  (pg_ctl stop failed: " + std::string(e.what()) + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(down_s * 1000)));
    for (int attempt = 1;; ++attempt) {
        try {
            cluster_.start();
            break;
        } catch (const std::exception &e) {
            if (attempt >= 5) throw;
            log_.line("  (server start failed, retrying: " + std::string(e.what()).substr(0, 200) + ")");
            std::this_thread::sleep_for(1s);
        }
    }
    log_.line("  server up again");
}

void FaultInjector::terminate_steps() {
    const int k = std::uniform_int_distribution<int>(1, 3)(rng_);
    const auto terminated = query_value(
        cluster_,
        "SELECT string_agg(format('%s (%s, %s)', pid, datname, state), ', ') FROM ("
        "  SELECT pid, datname, state, pg_catalog.pg_terminate_backend(pid) FROM ("
        "    SELECT pid, datname, state FROM pg_catalog.pg_stat_activity "
        "     WHERE application_name = 'pg_durable step' "
        "     ORDER BY state = 'active' DESC, random() LIMIT " + std::to_string(k) + ") s) t");
    if (terminated) fault("terminate-steps", "pg_terminate_backend of step backends " + *terminated);
}

void FaultInjector::terminate_daemon_sessions() {
    const int k = std::uniform_int_distribution<int>(1, 2)(rng_);
    const bool holder = std::uniform_int_distribution<int>(0, 1)(rng_) == 1;
    const std::string pick = holder ? "(" + std::string(kLockHolder) + ") UNION (" + kDaemonSessions +
                                          " ORDER BY random() LIMIT " + std::to_string(k - 1) + ")"
                                    : std::string(kDaemonSessions) + " ORDER BY random() LIMIT " + std::to_string(k);
    const auto terminated = query_value(
        cluster_, "SELECT string_agg(format('%s%s', pid, CASE WHEN pid IN (" + std::string(kLockHolder) +
                      ") THEN ' (orchestrator lock holder)' ELSE '' END), ', ') FROM ("
                      "  SELECT pid, pg_catalog.pg_terminate_backend(pid) FROM (" + pick + ") s) t");
    if (terminated) fault("terminate-daemon-sessions", "pg_terminate_backend of daemon sessions " + *terminated);
}

void FaultInjector::pause_daemon() {
    for (const auto &d : daemons_)
        if (d.stopped) return;  // one pause at a time
    ensure_daemon();
    const bool with_standby = daemons_.size() == 1 && std::uniform_int_distribution<int>(0, 1)(rng_) == 1;
    if (with_standby) {
        const int id = start_daemon("standby for a pause (second daemon)");
        auto *sb = find(id);
        test::wait_until([&] { return sb->process->log_contains("standby, another daemon holds"); }, 10s);
        later(std::uniform_real_distribution<double>(25.0, 45.0)(rng_), "kill of daemon #" + std::to_string(id),
              [this, id] {
                  auto *x = find(id);
                  if (x == nullptr) return;
                  const pid_t pid = x->process->pid();
                  x->process->kill_hard();
                  daemons_.erase(std::find_if(daemons_.begin(), daemons_.end(),
                                              [&](const Daemon &y) { return y.id == id; }));
                  fault("kill-9", "second daemon #" + std::to_string(id) + " pid " + std::to_string(pid) +
                                      " (started for a pause)");
                  ensure_daemon();
              });
    }
    auto target = active_daemon();
    if (!target) target = daemons_.front().id;
    auto *d = find(*target);
    const double pause_s = std::uniform_real_distribution<double>(12.0, 20.0)(rng_);
    d->process->signal(SIGSTOP);
    d->stopped = true;
    const int id = *target;
    fault("sigstop", "daemon #" + std::to_string(id) + " pid " + std::to_string(d->process->pid()) + " for " +
                         std::to_string(pause_s).substr(0, 4) + " s" +
                         (daemons_.size() > 1 ? " (a standby runs: takeover expected)" : " (no standby)"));
    later(pause_s, "SIGCONT of daemon #" + std::to_string(id), [this, id] {
        auto *x = find(id);
        if (x == nullptr || !x->stopped) return;
        x->process->signal(SIGCONT);
        x->stopped = false;
        log_.line("  SIGCONT daemon #" + std::to_string(id));
    });
}

void FaultInjector::second_daemon() {
    if (daemons_.size() >= 2) return;
    const int id = start_daemon("second daemon");
    const double life_s = std::uniform_real_distribution<double>(3.0, 20.0)(rng_);
    fault("second-daemon", "daemon #" + std::to_string(id) + " started, killed in " +
                               std::to_string(life_s).substr(0, 4) + " s");
    later(life_s, "kill of daemon #" + std::to_string(id), [this, id] {
        auto *x = find(id);
        if (x == nullptr) return;
        const bool active = active_daemon() == id;
        x->process->kill_hard();
        daemons_.erase(std::find_if(daemons_.begin(), daemons_.end(), [&](const Daemon &y) { return y.id == id; }));
        log_.line(std::string("  killed the second daemon #") + std::to_string(id) + (active ? " (it was active)" : ""));
        ensure_daemon();
    });
}

void FaultInjector::start_http() {
    for (int attempt = 1;; ++attempt) {
        try {
            http_ = std::make_unique<test::HttpTestServer>(http_port_, ++http_seed_);
            return;
        } catch (const std::exception &e) {
            if (attempt >= 50) throw;
            std::this_thread::sleep_for(200ms);  // the port is not free yet
        }
    }
}

void FaultInjector::stop_http() {
    auto hits = http_->all_hits();
    hits_.insert(hits_.end(), hits.begin(), hits.end());
    http_.reset();
}

void FaultInjector::http_outage() {
    if (!http_) return;
    const double down_s = std::uniform_real_distribution<double>(2.0, 8.0)(rng_);
    fault("http-outage", "HTTP server stopped for " + std::to_string(down_s).substr(0, 4) + " s");
    stop_http();
    later(down_s, "restart of the HTTP server", [this] {
        if (http_) return;
        start_http();
        log_.line("  HTTP server up again");
    });
}

void FaultInjector::heal() {
    run_due(true);
    bool up = false;
    try {
        up = query_value(cluster_, "SELECT 1").has_value();
    } catch (const std::exception &) {
    }
    if (!up) cluster_.start();
    for (auto &d : daemons_)
        if (d.stopped) {
            d.process->signal(SIGCONT);
            d.stopped = false;
        }
    if (!http_) start_http();
    ensure_daemon();
    log_.line("healed: " + std::to_string(daemons_.size()) + " daemon(s) running, server and HTTP server up");
}

std::vector<long> FaultInjector::daemon_rss_kb() {
    std::vector<long> out;
    for (auto &d : daemons_) {
        std::ifstream status("/proc/" + std::to_string(d.process->pid()) + "/status");
        std::string line;
        while (std::getline(status, line))
            if (line.rfind("VmRSS:", 0) == 0) out.push_back(std::stol(line.substr(6)));
    }
    return out;
}

std::vector<test::HttpTestServer::Hit> FaultInjector::http_hits() {
    auto out = hits_;
    if (http_) {
        const auto now = http_->all_hits();
        out.insert(out.end(), now.begin(), now.end());
    }
    return out;
}

std::string FaultInjector::daemon_log_tails(std::size_t bytes_each) {
    std::string out;
    for (auto &d : daemons_)
        out += "--- daemon #" + std::to_string(d.id) + " log (tail) ---\n" + tail(d.process->log(), bytes_each) + "\n";
    return out;
}

}  // namespace pgd::chaos
