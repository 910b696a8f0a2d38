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

struct CommandLine {
    std::string conninfo;  // --conninfo: libpq keyword/value string or URI
    // Discrete flags, as the shim passes them; empty = not given.
    std::string host;      // --host: socket directory or host name
    std::string port;      // --port
    std::string dbname;    // --dbname
    std::string user;      // --user
    std::string log_level = "info";  // --log-level: trace|debug|info|warn|error|critical|off
    int parent_fd = -1;    // --parent-fd: exit when this pipe reaches EOF (the shim's lifeline)
    bool show_help = false;
    bool show_version = false;
};

// Parses argv[1..]. Accepts "--flag value" and "--flag=value". Throws UsageError.
CommandLine parse_command_line(const std::vector<std::string> &args);

// The libpq connection string: --conninfo, then the discrete flags (libpq
// lets a later keyword override an earlier one), plus
// fallback_application_name=pg_durable_daemon. A URI cannot be combined with
// discrete flags (UsageError).
std::string connection_string(const CommandLine &cmd);

// Quotes a value for a libpq keyword/value string.
std::string quote_conninfo_value(const std::string &value);

// The connection string with any password replaced, fit for a log line.
std::string redact_conninfo(const std::string &conninfo);

std::string usage_text();
// "pg_durable_daemon <version> (built <time>)"
std::string version_text();

}  // namespace pgd::daemon
