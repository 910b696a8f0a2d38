// Command-line configuration of pg_durable_daemon: where the server is and how
// to log. Everything else (the pg_durable.* settings) is read from the server
// itself, so postgresql.conf is the one place that configures both parts
// (SPEC.md §3; see settings.hpp).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace pgd::daemon {

// A bad command line; main() prints it with the usage hint and exits 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// TCP keepalives and tcp_user_timeout for every connection the daemon opens,
// so a network partition ends a blocked libpq call (and frees the server's
// side, the orchestrator lock among it) in about a minute instead of the
// kernel's two hours. 0 leaves that parameter to the OS default (libpq).
struct TcpKeepalives {
    int idle_s = 10;               // --keepalives-idle: silence before the first probe
    int interval_s = 5;            // --keepalives-interval: between probes
    int count = 3;                 // --keepalives-count: lost probes that end the connection
    int user_timeout_ms = 30000;   // --tcp-user-timeout: unacknowledged data that ends it
};

struct CommandLine {
    std::string conninfo;  // --conninfo: libpq keyword/value string or URI
    // Discrete flags, as the shim passes them; empty = not given.
    std::string host;      // --host: socket directory or host name
    std::string port;      // --port
    std::string dbname;    // --dbname
    std::string user;      // --user
    std::string log_level = "info";  // --log-level: trace|debug|info|warn|error|critical|off
    int parent_fd = -1;    // --parent-fd: exit when this pipe reaches EOF (the shim's lifeline)
    TcpKeepalives keepalives;
    bool show_help = false;
    bool show_version = false;
};

// Parses argv[1..]. Accepts "--flag value" and "--flag=value". Throws UsageError.
CommandLine parse_command_line(const std::vector<std::string> &args);

// The libpq connection string: --conninfo, then the discrete flags (libpq
// lets a later keyword override an earlier one), plus
// fallback_application_name='pg_durable orchestrator', client_encoding=UTF8
// (always: the daemon's JSON is UTF-8) and the keepalive parameters
// (with_keepalives). A URI cannot be combined with discrete flags (UsageError).
// Every connection of the daemon derives from it.
std::string connection_string(const CommandLine &cmd);

// conninfo (keyword/value string or URI) plus keepalives=1, keepalives_idle,
// keepalives_interval, keepalives_count and tcp_user_timeout from `k`, each
// only where conninfo does not set it itself: the operator's word wins.
// A string libpq cannot parse is returned as is (connecting reports it).
std::string with_keepalives(const std::string &conninfo, const TcpKeepalives &k);

// Quotes a value for a libpq keyword/value string.
std::string quote_conninfo_value(const std::string &value);

// The connection string with any password replaced, fit for a log line.
std::string redact_conninfo(const std::string &conninfo);

std::string usage_text();
// "pg_durable_daemon <version> (built <time>)"
std::string version_text();

}  // namespace pgd::daemon
