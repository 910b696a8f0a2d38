#include "daemon/config.hpp"

#include <memory>
#include <regex>
#include <set>

#include <libpq-fe.h>

#ifndef PGD_VERSION
#error "PGD_VERSION must be defined by the build"
#endif
#ifndef PGD_BUILD_TIME
#error "PGD_BUILD_TIME must be defined by the build"
#endif

namespace pgd::daemon {

namespace {

bool is_uri(const std::string &conninfo) {
    return conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
}

bool valid_log_level(const std::string &level) {
    static const char *const levels[] = {"trace", "debug", "info",     "warn",
                                         "warning", "error", "critical", "off"};
    for (const char *l : levels)
        if (level == l) return true;
    return false;
}

int parse_fd(const std::string &text) {
    std::size_t used = 0;
    int fd = -1;
    try {
        fd = std::stoi(text, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    if (used != text.size() || fd < 0) throw UsageError("--parent-fd needs a file descriptor number, got '" + text + "'");
    return fd;
}

int parse_non_negative(const std::string &flag, const std::string &text) {
    std::size_t used = 0;
    int value = -1;
    try {
        value = std::stoi(text, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    if (used == 0 || used != text.size() || value < 0)
        throw UsageError(flag + " needs a non-negative integer, got '" + text + "'");
    return value;
}

}  // namespace

CommandLine parse_command_line(const std::vector<std::string> &args) {
    CommandLine cmd;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string flag = args[i];
        std::string value;
        bool has_inline_value = false;
        if (flag.rfind("--", 0) == 0) {
            const auto eq = flag.find('=');
            if (eq != std::string::npos) {
                value = flag.substr(eq + 1);
                flag = flag.substr(0, eq);
                has_inline_value = true;
            }
        }
        if (flag == "--help" || flag == "-h") {
            cmd.show_help = true;
            continue;
        }
        if (flag == "--version" || flag == "-V") {
            cmd.show_version = true;
            continue;
        }
        std::string *target = nullptr;
        int *number = nullptr;
        if (flag == "--conninfo" || flag == "-d")
            target = &cmd.conninfo;
        else if (flag == "--host")
            target = &cmd.host;
        else if (flag == "--port")
            target = &cmd.port;
        else if (flag == "--dbname")
            target = &cmd.dbname;
        else if (flag == "--user")
            target = &cmd.user;
        else if (flag == "--log-level")
            target = &cmd.log_level;
        else if (flag == "--keepalives-idle")
            number = &cmd.keepalives.idle_s;
        else if (flag == "--keepalives-interval")
            number = &cmd.keepalives.interval_s;
        else if (flag == "--keepalives-count")
            number = &cmd.keepalives.count;
        else if (flag == "--tcp-user-timeout")
            number = &cmd.keepalives.user_timeout_ms;
        else if (flag != "--parent-fd")
            throw UsageError("unknown option '" + args[i] + "'");

        if (!has_inline_value) {
            if (i + 1 >= args.size()) throw UsageError("option '" + flag + "' needs a value");
            value = args[++i];
        }
        if (target != nullptr)
            *target = value;
        else if (number != nullptr)
            *number = parse_non_negative(flag, value);
        else
            cmd.parent_fd = parse_fd(value);
    }
    if (cmd.log_level == "warning") cmd.log_level = "warn";
    if (!valid_log_level(cmd.log_level))
        throw UsageError("--log-level must be one of trace, debug, info, warn, error, critical, off");
    return cmd;
}

std::string quote_conninfo_value(const std::string &value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    out += '\'';
    return out;
}

std::string connection_string(const CommandLine &cmd) {
    const bool discrete = !cmd.host.empty() || !cmd.port.empty() || !cmd.dbname.empty() ||
                          !cmd.user.empty();
    if (is_uri(cmd.conninfo)) {
        if (discrete)
            throw UsageError("--conninfo given as a URI cannot be combined with --host, --port, --dbname or --user");
        std::string uri = cmd.conninfo;
        uri += uri.find('?') == std::string::npos ? '?' : '&';
        uri += "fallback_application_name=pg_durable%20orchestrator&client_encoding=UTF8";
        return with_keepalives(uri, cmd.keepalives);
    }
    std::string out = cmd.conninfo;
    auto add = [&out](const char *key, const std::string &value) {
        if (value.empty()) return;
        if (!out.empty()) out += ' ';
        out += key;
        out += '=';
        out += quote_conninfo_value(value);
    };
    add("host", cmd.host);
    add("port", cmd.port);
    add("dbname", cmd.dbname);
    add("user", cmd.user);
    add("fallback_application_name", "pg_durable orchestrator");
    // Last, so it wins: the daemon reads and writes JSON text, which is UTF-8
    // whatever the database's encoding (the server converts).
    add("client_encoding", "UTF8");
    return with_keepalives(out, cmd.keepalives);
}

std::string with_keepalives(const std::string &conninfo, const TcpKeepalives &k) {
    char *error = nullptr;
    const std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
        PQconninfoParse(conninfo.c_str(), &error), &PQconninfoFree);
    if (!options) {
        PQfreemem(error);
        return conninfo;
    }
    std::set<std::string> given;
    for (const PQconninfoOption *o = options.get(); o->keyword != nullptr; ++o)
        if (o->val != nullptr) given.insert(o->keyword);

    const std::pair<const char *, int> wanted[] = {
        {"keepalives", 1},
        {"keepalives_idle", k.idle_s},
        {"keepalives_interval", k.interval_s},
        {"keepalives_count", k.count},
        {"tcp_user_timeout", k.user_timeout_ms},
    };
    const bool uri = is_uri(conninfo);
    std::string out = conninfo;
    for (const auto &[key, value] : wanted) {
        if (given.count(key) != 0) continue;
        if (uri)
            out += out.find('?') == std::string::npos ? '?' : '&';
        else if (!out.empty())
            out += ' ';
        out += key;
        out += '=';
        out += uri ? std::to_string(value) : quote_conninfo_value(std::to_string(value));
    }
    return out;
}

std::string redact_conninfo(const std::string &conninfo) {
    // keyword/value form: password = 'quoted' | bare
    static const std::regex kv(R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+))", std::regex::icase);
    // URI form: scheme://user:secret@host
    static const std::regex uri(R"((postgres(?:ql)?://[^:/@]*:)([^@]*)(@))", std::regex::icase);
    std::string out = std::regex_replace(conninfo, kv, "$1********");
    out = std::regex_replace(out, uri, "$1********$3");
    return out;
}

std::string usage_text() {
    return "pg_durable_daemon: the pg_durable orchestrator (durable SQL workflows for PostgreSQL).\n"
           "\n"
           "Usage:\n"
           "  pg_durable_daemon [--conninfo CONNINFO] [--host DIR] [--port PORT]\n"
           "                    [--dbname DB] [--user ROLE] [--log-level LEVEL] [--parent-fd FD]\n"
           "                    [--keepalives-idle S] [--keepalives-interval S]\n"
           "                    [--keepalives-count N] [--tcp-user-timeout MS]\n"
           "\n"
           "Options:\n"
           "  --conninfo, -d CONNINFO  libpq connection string or URI of the pg_durable.database\n"
           "                           database (defaults come from libpq: PGHOST, PGPORT, ...)\n"
           "  --host DIR|HOST          socket directory or host (overrides --conninfo)\n"
           "  --port PORT              server port (overrides --conninfo)\n"
           "  --dbname DB              database, normally pg_durable.database (overrides --conninfo)\n"
           "  --user ROLE              the daemon's own role, = pg_durable.worker_role (e.g.\n"
           "                           durable_worker; a superuser when that setting is empty)\n"
           "  --log-level LEVEL        trace, debug, info (default), warn, error, critical, off;\n"
           "                           SPDLOG_LEVEL in the environment can set per-module levels\n"
           "  --parent-fd FD           exit when FD reaches end of file (used by the shim)\n"
           "  --keepalives-idle S      TCP keepalive: idle seconds before the first probe (10)\n"
           "  --keepalives-interval S  TCP keepalive: seconds between probes (5)\n"
           "  --keepalives-count N     TCP keepalive: lost probes that end a connection (3)\n"
           "  --tcp-user-timeout MS    unacknowledged data that ends a connection (30000);\n"
           "                           0 = OS default; a value set in --conninfo wins\n"
           "  --version, -V            print the version and exit\n"
           "  --help, -h               print this help and exit\n"
           "\n"
           "All pg_durable.* settings are read from the server (SHOW), again on SIGHUP.\n"
           "Signals: SIGTERM/SIGINT drain and exit (a second one exits at once), SIGHUP reloads.\n"
           "Passwords belong in a passfile (PGPASSFILE, ~/.pgpass), not on the command line.\n";
}

std::string version_text() {
    return std::string("pg_durable_daemon ") + PGD_VERSION + " (built " + PGD_BUILD_TIME + ")";
}

}  // namespace pgd::daemon
