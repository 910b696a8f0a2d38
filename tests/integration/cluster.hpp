// Throw-away PostgreSQL clusters and daemon processes for integration tests.
//
// TestCluster: initdb into a fresh mktemp directory (owned by the postgres OS
// user: initdb and postgres refuse to run as root, so as root they run through
// `runuser -u postgres --`), socket directory = that directory, no TCP,
// fsync off, pg_durable preloaded, scram-sha-256 for every connection (no
// trust): every role logs in with kRolePassword, which libpq finds in the
// cluster's passfile (one wildcard line; conninfo() names it, and the server
// passes PGPASSFILE on to a daemon the shim launches). The
// destructor stops the server (immediate) and removes the directory even when
// a test fails (set PGD_KEEP_CLUSTER=1 to keep it for a post-mortem).
//
// DaemonProcess: runs the built pg_durable_daemon against a cluster with its
// log captured to a file; always stopped in the destructor.
//
// Tests wait for states with wait_until() and a deadline, never fixed sleeps.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

// Fails a Catch2 test with `diagnostics` (e.g. a daemon or server log) when
// `condition` does not become true within `deadline`.
#define REQUIRE_EVENTUALLY(condition, deadline, diagnostics)                                  \
    do {                                                                                      \
        if (!::pgd::test::wait_until([&] { return static_cast<bool>(condition); }, deadline)) \
            FAIL("timed out waiting for: " #condition "\n--- log ---\n" << (diagnostics));   \
    } while (0)

namespace pgd::test {

using namespace std::chrono_literals;

// Password of every login role of a test cluster (the bootstrap superuser's
// from initdb). A role a test creates gets it with kLogin:
// "CREATE ROLE alice " + kLogin.
inline constexpr const char *kRolePassword = "pgd-test-password";
inline const std::string kLogin = std::string("LOGIN PASSWORD '") + kRolePassword + "'";

// Polls predicate until it is true or the deadline passes; true if it became true.
bool wait_until(const std::function<bool()> &predicate, std::chrono::milliseconds deadline,
                std::chrono::milliseconds poll = 50ms);

// Number of occurrences of needle in text.
std::size_t count_occurrences(const std::string &text, const std::string &needle);
// True when the needles occur in text in this order (each after the previous).
bool in_order(const std::string &text, const std::vector<std::string> &needles);

// Processes: alive means it exists and is not a zombie.
bool process_alive(pid_t pid);
std::vector<pid_t> child_processes(pid_t parent);

struct ClusterOptions {
    bool launch_daemon = false;  // pg_durable.launch_daemon
    // Further postgresql.conf settings, e.g. {"pg_durable.max_duroxide_connections", "1"}.
    std::map<std::string, std::string> settings;
};

enum class StopMode { smart, fast, immediate };

// Tag of the constructor that makes a streaming replica of a running cluster.
struct StandbyOf {};

class TestCluster {
public:
    explicit TestCluster(ClusterOptions options = {});
    // A streaming replica of `primary`: pg_basebackup -R (as the cluster's OS
    // user, over the primary's socket, scram like every connection), its own
    // port and socket directory, then started (hot standby). `options`
    // settings are added to the copied postgresql.conf.
    TestCluster(const TestCluster &primary, StandbyOf, ClusterOptions options = {});
    ~TestCluster();
    TestCluster(const TestCluster &) = delete;
    TestCluster &operator=(const TestCluster &) = delete;

    const std::string &dir() const { return dir_; }  // also the socket directory
    std::string data_dir() const { return dir_ + "/data"; }
    int port() const { return port_; }
    const std::string &superuser() const { return superuser_; }
    // The passfile every connection of this cluster uses (also PGPASSFILE of
    // the server, so of a daemon the shim launches).
    std::string passfile() const { return dir_ + "/pgpass"; }

    // libpq connection string; role "" = the bootstrap superuser.
    std::string conninfo(const std::string &role = "", const std::string &dbname = "postgres") const;

    // Runs SQL (autocommit) as the superuser.
    void exec(const std::string &sql, const std::string &dbname = "postgres") const;
    // First column of the first row; nullopt for no rows or NULL.
    std::optional<std::string> query_value(const std::string &sql,
                                           const std::string &dbname = "postgres") const;

    void start();
    void stop(StopMode mode = StopMode::fast);
    void restart(StopMode mode = StopMode::fast);
    // pg_ctl promote -w: a replica leaves recovery.
    void promote();
    bool running() const { return running_; }

    std::string server_log() const;

private:
    void make_dir();
    void write_config(const ClusterOptions &options);
    void write_credentials() const;
    // Runs a PostgreSQL program as the cluster's OS user; output goes to the
    // tool log. Returns the exit status.
    int run_pg_tool(const std::vector<std::string> &args) const;

    std::string dir_;
    std::string superuser_;
    int port_ = 0;
    bool running_ = false;
};

// A connection string of the test's own making for DaemonProcess (e.g. a
// multi-host one), instead of the cluster's.
struct WithConninfo {
    std::string conninfo;
};

class DaemonProcess {
public:
    // Starts pg_durable_daemon --conninfo <cluster superuser> plus extra_args.
    explicit DaemonProcess(const TestCluster &cluster,
                           std::vector<std::string> extra_args = {"--log-level", "debug"},
                           const std::string &log_name = "");
    // The same with --conninfo <conninfo>; the log goes to the cluster's directory.
    DaemonProcess(const TestCluster &cluster, const WithConninfo &conninfo, std::vector<std::string> extra_args,
                  const std::string &log_name);
    // Stops the daemon (SIGTERM, SIGKILL after a deadline) if it still runs.
    ~DaemonProcess();
    DaemonProcess(const DaemonProcess &) = delete;
    DaemonProcess &operator=(const DaemonProcess &) = delete;

    pid_t pid() const { return pid_; }
    const std::string &log_path() const { return log_path_; }
    std::string log() const;
    bool log_contains(const std::string &needle) const;

    void signal(int signo) const;
    void kill_hard();  // SIGKILL and reap
    // Waits for the process to exit; its exit code (128 + signal when
    // killed), or nullopt when it is still running at the deadline.
    std::optional<int> wait_exit(std::chrono::milliseconds deadline);
    bool running();

private:
    pid_t pid_ = -1;
    std::optional<int> exit_code_;
    std::string log_path_;
};

// Any other program a test runs (e.g. prometheus-postgres-exporter): started
// with the test process's environment, output appended to log_path; SIGTERM
// (SIGKILL after a deadline) in the destructor, so it never outlives a test.
class ChildProcess {
public:
    ChildProcess(const std::vector<std::string> &argv, std::string log_path);
    ~ChildProcess();
    ChildProcess(const ChildProcess &) = delete;
    ChildProcess &operator=(const ChildProcess &) = delete;

    pid_t pid() const { return pid_; }
    std::string log() const;
    bool running();
    // SIGTERM, then SIGKILL when it has not exited within `deadline`; reaped.
    void stop(std::chrono::milliseconds deadline = 5s);

private:
    pid_t pid_ = -1;
    std::optional<int> exit_code_;
    std::string log_path_;
};

// A TCP port on 127.0.0.1 nobody listens on right now.
int free_tcp_port();

// Path of the built daemon binary.
std::string daemon_binary();

}  // namespace pgd::test
