#include "cluster.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>

#ifndef PGD_PG_BINDIR
#error "PGD_PG_BINDIR must be defined by the build"
#endif
#ifndef PGD_DAEMON_BINARY
#error "PGD_DAEMON_BINARY must be defined by the build"
#endif

namespace pgd::test {

namespace {

constexpr const char *kClusterOsUser = "postgres";

bool running_as_root() { return ::geteuid() == 0; }

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::string current_user_name() {
    const passwd *pw = ::getpwuid(::geteuid());
    if (pw == nullptr) throw std::runtime_error("cannot determine the current OS user");
    return pw->pw_name;
}

// A port nobody listens on right now. With listen_addresses = '' the port
// only names the socket file and the shared memory key, but a free TCP port
// keeps clusters of parallel test runs apart.
int pick_free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket(): " + std::string(std::strerror(errno)));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot pick a free port: " + std::string(std::strerror(errno)));
    }
    const int port = ntohs(addr.sin_port);
    ::close(fd);
    return port;
}

// fork + exec with stdout/stderr appended to log_path; returns the pid.
pid_t spawn(const std::vector<std::string> &argv, const std::string &log_path) {
    std::vector<char *> cargv;
    for (const auto &a : argv) cargv.push_back(const_cast<char *>(a.c_str()));
    cargv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork(): " + std::string(std::strerror(errno)));
    if (pid == 0) {
        // Child: async-signal-safe calls only until exec.
        const int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        const int in = ::open("/dev/null", O_RDONLY);
        if (out < 0 || in < 0) ::_exit(126);
        ::dup2(in, STDIN_FILENO);
        ::dup2(out, STDOUT_FILENO);
        ::dup2(out, STDERR_FILENO);
        // Nothing else of the test process leaks into the child: a listening
        // socket (the HTTP test server) inherited by a daemon or a postmaster
        // would keep its port taken and swallow connections.
        // A descriptor handed over on purpose (the daemon's --parent-fd
        // lifeline) stays.
        int keep = -1;
        for (std::size_t i = 0; i + 1 < argv.size(); ++i)
            if (argv[i] == "--parent-fd") keep = std::atoi(argv[i + 1].c_str());
        for (int fd = STDERR_FILENO + 1; fd < 1024; ++fd)
            if (fd != keep) ::close(fd);
        ::execv(cargv[0], cargv.data());
        ::_exit(127);
    }
    return pid;
}

int wait_status_to_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

int run_and_wait(const std::vector<std::string> &argv, const std::string &log_path) {
    const pid_t pid = spawn(argv, log_path);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) throw std::runtime_error("waitpid(): " + std::string(std::strerror(errno)));
    }
    return wait_status_to_code(status);
}

std::string quote_conninfo(const std::string &value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

const char *mode_name(StopMode mode) {
    switch (mode) {
        case StopMode::smart: return "smart";
        case StopMode::fast: return "fast";
        case StopMode::immediate: return "immediate";
    }
    return "fast";
}

}  // namespace

// The daemon this build made, or PGD_TEST_DAEMON when set (e.g. a sanitizer
// build's daemon, docs/RELIABILITY.md).
std::string daemon_binary() {
    const char *override_path = std::getenv("PGD_TEST_DAEMON");
    if (override_path != nullptr && *override_path != '\0') return override_path;
    return PGD_DAEMON_BINARY;
}

bool wait_until(const std::function<bool()> &predicate, std::chrono::milliseconds deadline,
                std::chrono::milliseconds poll) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
        if (predicate()) return true;
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(poll);
    }
}

std::size_t count_occurrences(const std::string &text, const std::string &needle) {
    std::size_t count = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size()))
        ++count;
    return count;
}

bool in_order(const std::string &text, const std::vector<std::string> &needles) {
    std::size_t pos = 0;
    for (const auto &needle : needles) {
        pos = text.find(needle, pos);
        if (pos == std::string::npos) return false;
        pos += needle.size();
    }
    return true;
}

namespace {

// Fields of /proc/<pid>/stat after the command name: state, ppid.
bool read_proc_stat(pid_t pid, char &state, pid_t &ppid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) return false;
    std::istringstream rest(stat.substr(close_paren + 1));
    return static_cast<bool>(rest >> state >> ppid);
}

}  // namespace

bool process_alive(pid_t pid) {
    char state = 0;
    pid_t ppid = 0;
    return pid > 0 && read_proc_stat(pid, state, ppid) && state != 'Z' && state != 'X';
}

std::vector<pid_t> child_processes(pid_t parent) {
    std::vector<pid_t> children;
    DIR *proc = ::opendir("/proc");
    if (proc == nullptr) return children;
    while (const dirent *entry = ::readdir(proc)) {
        char *end = nullptr;
        const long pid = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0') continue;
        char state = 0;
        pid_t ppid = 0;
        if (read_proc_stat(static_cast<pid_t>(pid), state, ppid) && ppid == parent && state != 'Z')
            children.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(proc);
    return children;
}

// --- TestCluster -------------------------------------------------------------

void TestCluster::make_dir() {
    char tmpl[] = "/tmp/pgd-it-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp(): " + std::string(std::strerror(errno)));
    dir_ = tmpl;
    if (running_as_root()) {
        const passwd *pw = ::getpwnam(kClusterOsUser);
        if (pw == nullptr) throw std::runtime_error("running as root needs a 'postgres' OS user");
        if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
            throw std::runtime_error("chown(" + dir_ + "): " + std::strerror(errno));
        superuser_ = kClusterOsUser;
    } else {
        superuser_ = current_user_name();
    }
}

TestCluster::TestCluster(const TestCluster &primary, StandbyOf, ClusterOptions options) {
    make_dir();
    try {
        port_ = pick_free_port();
        write_credentials();
        // -R: standby.signal and primary_conninfo (with the passfile) in
        // postgresql.auto.conf; the copied postgresql.conf names the
        // primary's port and socket directory, overridden below (a later
        // line wins).
        const int rc = run_pg_tool({"/usr/bin/env", "PGPASSFILE=" + primary.passfile(),
                                    std::string(PGD_PG_BINDIR) + "/pg_basebackup", "-D", data_dir(), "-h",
                                    primary.dir(), "-p", std::to_string(primary.port()), "-U", primary.superuser(),
                                    "-R", "-X", "stream", "-c", "fast", "--no-sync"});
        if (rc != 0)
            throw std::runtime_error("pg_basebackup failed (exit " + std::to_string(rc) + "); see " + dir_ +
                                     "/tools.log");
        std::ofstream conf(data_dir() + "/postgresql.conf", std::ios::app);
        conf << "\n# pg_durable integration test replica\n"
             << "port = " << port_ << "\n"
             << "unix_socket_directories = '" << dir_ << "'\n"
             << "hot_standby = on\n";
        for (const auto &[name, value] : options.settings) conf << name << " = '" << value << "'\n";
        if (!conf) throw std::runtime_error("cannot write postgresql.conf");
        conf.close();
        start();
    } catch (...) {
        std::error_code ignored;
        if (!std::getenv("PGD_KEEP_CLUSTER")) std::filesystem::remove_all(dir_, ignored);
        throw;
    }
}

TestCluster::TestCluster(ClusterOptions options) {
    make_dir();
    try {
        port_ = pick_free_port();
        write_credentials();
        const int rc = run_pg_tool({std::string(PGD_PG_BINDIR) + "/initdb", "-D", data_dir(),
                                    "--auth=scram-sha-256", "--pwfile=" + dir_ + "/pwfile", "-U", superuser_,
                                    "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"});
        if (rc != 0) throw std::runtime_error("initdb failed (exit " + std::to_string(rc) + "); see " + dir_ + "/tools.log");
        write_config(options);
        start();
    } catch (...) {
        std::error_code ignored;
        if (!std::getenv("PGD_KEEP_CLUSTER")) std::filesystem::remove_all(dir_, ignored);
        throw;
    }
}

TestCluster::~TestCluster() {
    try {
        if (running_) stop(StopMode::immediate);
    } catch (...) {
        // best effort: the directory goes anyway
    }
    if (std::getenv("PGD_KEEP_CLUSTER")) return;
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

void TestCluster::write_credentials() const {
    // Owned by the cluster's OS user (initdb, and a daemon the shim launches,
    // read them), mode 0600 (libpq ignores a passfile others can read).
    const std::pair<std::string, std::string> files[] = {
        {dir_ + "/pwfile", std::string(kRolePassword) + "\n"},
        {passfile(), std::string("*:*:*:*:") + kRolePassword + "\n"},
    };
    for (const auto &[path, text] : files) {
        std::ofstream out(path, std::ios::trunc);
        out << text;
        out.close();
        if (!out || ::chmod(path.c_str(), 0600) != 0)
            throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
        if (running_as_root()) {
            const passwd *pw = ::getpwnam(kClusterOsUser);
            if (pw == nullptr || ::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0)
                throw std::runtime_error("chown(" + path + "): " + std::strerror(errno));
        }
    }
}

void TestCluster::write_config(const ClusterOptions &options) {
    std::ofstream conf(data_dir() + "/postgresql.conf", std::ios::app);
    conf << "\n# pg_durable integration test cluster\n"
         << "port = " << port_ << "\n"
         << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << dir_ << "'\n"
         << "fsync = off\n"
         << "full_page_writes = off\n"
         << "shared_preload_libraries = 'pg_durable'\n"
         << "log_line_prefix = '%m [%p] '\n"
         << "pg_durable.launch_daemon = " << (options.launch_daemon ? "on" : "off") << "\n";
    for (const auto &[name, value] : options.settings) conf << name << " = '" << value << "'\n";
    if (!conf) throw std::runtime_error("cannot write postgresql.conf");
}

int TestCluster::run_pg_tool(const std::vector<std::string> &args) const {
    std::vector<std::string> argv;
    if (running_as_root()) argv = {"/usr/sbin/runuser", "-u", kClusterOsUser, "--"};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string log_path = dir_ + "/tools.log";
    const int rc = run_and_wait(argv, log_path);
    return rc;
}

void TestCluster::start() {
    // PGPASSFILE in the server's environment: a daemon the shim launches
    // inherits it, as with a production server's ~/.pgpass.
    const int rc = run_pg_tool({"/usr/bin/env", "PGPASSFILE=" + passfile(), std::string(PGD_PG_BINDIR) + "/pg_ctl",
                                "-D", data_dir(), "-l",
                                dir_ + "/server.log", "-w", "-t", "60", "start"});
    if (rc != 0)
        throw std::runtime_error("pg_ctl start failed (exit " + std::to_string(rc) + "):\n" + server_log());
    running_ = true;
}

void TestCluster::stop(StopMode mode) {
    const int rc = run_pg_tool({std::string(PGD_PG_BINDIR) + "/pg_ctl", "-D", data_dir(), "-w", "-t", "60",
                                "-m", mode_name(mode), "stop"});
    if (rc != 0) throw std::runtime_error("pg_ctl stop failed (exit " + std::to_string(rc) + ")");
    running_ = false;
}

void TestCluster::promote() {
    const int rc = run_pg_tool({std::string(PGD_PG_BINDIR) + "/pg_ctl", "-D", data_dir(), "-w", "-t", "60", "promote"});
    if (rc != 0) throw std::runtime_error("pg_ctl promote failed (exit " + std::to_string(rc) + ")");
}

void TestCluster::restart(StopMode mode) {
    stop(mode);
    start();
}

std::string TestCluster::conninfo(const std::string &role, const std::string &dbname) const {
    return "host=" + quote_conninfo(dir_) + " port=" + std::to_string(port_) +
           " dbname=" + quote_conninfo(dbname) + " user=" + quote_conninfo(role.empty() ? superuser_ : role) +
           " passfile=" + quote_conninfo(passfile());
}

void TestCluster::exec(const std::string &sql, const std::string &dbname) const {
    pqxx::connection conn(conninfo("", dbname));
    pqxx::nontransaction tx(conn);
    tx.exec(sql);
}

std::optional<std::string> TestCluster::query_value(const std::string &sql, const std::string &dbname) const {
    pqxx::connection conn(conninfo("", dbname));
    pqxx::nontransaction tx(conn);
    const auto result = tx.exec(sql);
    if (result.empty() || result[0][0].is_null()) return std::nullopt;
    return result[0][0].as<std::string>();
}

std::string TestCluster::server_log() const { return read_file(dir_ + "/server.log"); }

// --- DaemonProcess -----------------------------------------------------------

DaemonProcess::DaemonProcess(const TestCluster &cluster, std::vector<std::string> extra_args,
                             const std::string &log_name) {
    static std::atomic<int> counter{0};
    log_path_ = cluster.dir() + "/" +
                (log_name.empty() ? "daemon-" + std::to_string(++counter) : log_name) + ".log";
    std::vector<std::string> argv = {daemon_binary(), "--conninfo", cluster.conninfo()};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    pid_ = spawn(argv, log_path_);
}

DaemonProcess::DaemonProcess(const TestCluster &cluster, const WithConninfo &conninfo,
                             std::vector<std::string> extra_args, const std::string &log_name) {
    log_path_ = cluster.dir() + "/" + log_name + ".log";
    std::vector<std::string> argv = {daemon_binary(), "--conninfo", conninfo.conninfo};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    pid_ = spawn(argv, log_path_);
}

DaemonProcess::~DaemonProcess() {
    if (pid_ <= 0 || exit_code_) return;
    ::kill(pid_, SIGTERM);
    if (!wait_exit(10s)) kill_hard();
}

std::string DaemonProcess::log() const { return read_file(log_path_); }

bool DaemonProcess::log_contains(const std::string &needle) const {
    return log().find(needle) != std::string::npos;
}

void DaemonProcess::signal(int signo) const {
    if (pid_ > 0 && !exit_code_) ::kill(pid_, signo);
}

void DaemonProcess::kill_hard() {
    if (pid_ <= 0 || exit_code_) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_code_ = wait_status_to_code(status);
}

std::optional<int> DaemonProcess::wait_exit(std::chrono::milliseconds deadline) {
    if (exit_code_) return exit_code_;
    wait_until(
        [this] {
            int status = 0;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) exit_code_ = wait_status_to_code(status);
            return exit_code_.has_value();
        },
        deadline, 20ms);
    return exit_code_;
}

bool DaemonProcess::running() { return !wait_exit(0ms).has_value(); }

// --- ChildProcess ------------------------------------------------------------

ChildProcess::ChildProcess(const std::vector<std::string> &argv, std::string log_path)
    : log_path_(std::move(log_path)) {
    pid_ = spawn(argv, log_path_);
}

ChildProcess::~ChildProcess() { stop(); }

std::string ChildProcess::log() const { return read_file(log_path_); }

bool ChildProcess::running() {
    if (pid_ <= 0 || exit_code_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) exit_code_ = wait_status_to_code(status);
    return !exit_code_;
}

void ChildProcess::stop(std::chrono::milliseconds deadline) {
    if (!running()) return;
    ::kill(pid_, SIGTERM);
    if (wait_until([this] { return !running(); }, deadline, 20ms)) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_code_ = wait_status_to_code(status);
}

int free_tcp_port() { return pick_free_port(); }

}  // namespace pgd::test
