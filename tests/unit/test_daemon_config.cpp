// Command-line parsing and connection strings of pg_durable_daemon.
#include <map>
#include <string>

#include "catch_compat.hpp"
#include <libpq-fe.h>

#include "daemon/config.hpp"

using namespace pgd::daemon;

namespace {

constexpr const char *kDefaultKeepalives =
    "keepalives='1' keepalives_idle='10' keepalives_interval='5' keepalives_count='3' tcp_user_timeout='30000'";

// What libpq reads from a connection string: keyword -> value, set ones only.
std::map<std::string, std::string> parsed(const std::string &conninfo) {
    char *error = nullptr;
    PQconninfoOption *options = PQconninfoParse(conninfo.c_str(), &error);
    if (options == nullptr) {
        const std::string why = error ? error : "?";
        PQfreemem(error);
        FAIL("libpq cannot parse '" << conninfo << "': " << why);
    }
    std::map<std::string, std::string> out;
    for (const PQconninfoOption *o = options; o->keyword != nullptr; ++o)
        if (o->val != nullptr) out[o->keyword] = o->val;
    PQconninfoFree(options);
    return out;
}

}  // namespace

TEST_CASE("discrete flags as the shim passes them build a quoted conninfo", "[daemon]") {
    const auto cmd = parse_command_line({"--host", "/var/run/postgresql", "--port", "5433", "--dbname",
                                         "my db", "--user", "o'neil", "--parent-fd", "3"});
    CHECK(cmd.parent_fd == 3);
    CHECK(connection_string(cmd) ==
          "host='/var/run/postgresql' port='5433' dbname='my db' user='o\\'neil' "
          "fallback_application_name='pg_durable orchestrator' client_encoding='UTF8' " +
              std::string(kDefaultKeepalives));
}

TEST_CASE("--conninfo comes first so discrete flags override it", "[daemon]") {
    const auto cmd = parse_command_line({"--conninfo=host=/tmp dbname=a", "--dbname=b"});
    CHECK(connection_string(cmd) == "host=/tmp dbname=a dbname='b' fallback_application_name='pg_durable orchestrator' "
                                    "client_encoding='UTF8' " + std::string(kDefaultKeepalives));
}

TEST_CASE("a URI is passed through but cannot be mixed with discrete flags", "[daemon]") {
    CHECK(connection_string(parse_command_line({"--conninfo", "postgresql://u@h/db"})) ==
          "postgresql://u@h/db?fallback_application_name=pg_durable%20orchestrator&client_encoding=UTF8"
          "&keepalives=1&keepalives_idle=10&keepalives_interval=5&keepalives_count=3"
          "&tcp_user_timeout=30000");
    CHECK_THROWS_AS(connection_string(parse_command_line({"--conninfo", "postgres://h/db", "--user", "x"})),
                    UsageError);
}

TEST_CASE("every connection gets TCP keepalives and tcp_user_timeout, configurable by flags", "[daemon]") {
    // Issue 8 item 8: without them a partition left a thread blocked in libpq for hours.
    auto shim = parsed(connection_string(parse_command_line({"--host", "/run/pg", "--port", "5432"})));
    CHECK(shim["keepalives"] == "1");
    CHECK(shim["keepalives_idle"] == "10");
    CHECK(shim["keepalives_interval"] == "5");
    CHECK(shim["keepalives_count"] == "3");
    CHECK(shim["tcp_user_timeout"] == "30000");
    CHECK(shim["host"] == "/run/pg");

    auto tuned = parsed(connection_string(parse_command_line(
        {"--conninfo", "host=db", "--keepalives-idle", "30", "--keepalives-interval=2", "--keepalives-count", "9",
         "--tcp-user-timeout", "0"})));
    CHECK(tuned["keepalives_idle"] == "30");
    CHECK(tuned["keepalives_interval"] == "2");
    CHECK(tuned["keepalives_count"] == "9");
    CHECK(tuned["tcp_user_timeout"] == "0");
}

TEST_CASE("keepalive parameters the operator's conninfo sets are left alone", "[daemon]") {
    auto kv = parsed(connection_string(
        parse_command_line({"--conninfo", "host=db keepalives_idle=120 tcp_user_timeout = '5000'", "--user", "u"})));
    CHECK(kv["keepalives_idle"] == "120");
    CHECK(kv["tcp_user_timeout"] == "5000");
    CHECK(kv["keepalives"] == "1");
    CHECK(kv["keepalives_interval"] == "5");
    CHECK(kv["user"] == "u");

    // keepalives=0: the operator turned them off; the flags do not turn them on.
    CHECK(parsed(with_keepalives("host=db keepalives=0", TcpKeepalives{}))["keepalives"] == "0");

    const auto uri = with_keepalives("postgresql://u@db:5433/app?sslmode=require&keepalives_count=7", TcpKeepalives{});
    CHECK(uri ==
          "postgresql://u@db:5433/app?sslmode=require&keepalives_count=7&keepalives=1&keepalives_idle=10"
          "&keepalives_interval=5&tcp_user_timeout=30000");
    auto from_uri = parsed(uri);
    CHECK(from_uri["keepalives_count"] == "7");
    CHECK(from_uri["sslmode"] == "require");
    CHECK(from_uri["dbname"] == "app");
    CHECK(parsed(with_keepalives("postgresql://", TcpKeepalives{}))["keepalives_idle"] == "10");
    // Libpq's own error is what the operator should see for a broken string.
    CHECK(with_keepalives("host='unterminated", TcpKeepalives{}) == "host='unterminated");
}

TEST_CASE("help, version and log level flags", "[daemon]") {
    CHECK(parse_command_line({"--help"}).show_help);
    CHECK(parse_command_line({"-V"}).show_version);
    CHECK(parse_command_line({}).log_level == "info");
    CHECK(parse_command_line({"--log-level", "debug"}).log_level == "debug");
    CHECK(parse_command_line({"--log-level=warning"}).log_level == "warn");
    CHECK(version_text().rfind("pg_durable_daemon " PGD_VERSION " (built ", 0) == 0);
}

TEST_CASE("bad command lines are usage errors", "[daemon]") {
    CHECK_THROWS_AS(parse_command_line({"--bogus"}), UsageError);
    CHECK_THROWS_AS(parse_command_line({"--port"}), UsageError);
    CHECK_THROWS_AS(parse_command_line({"--log-level", "loud"}), UsageError);
    CHECK_THROWS_AS(parse_command_line({"--parent-fd", "three"}), UsageError);
    CHECK_THROWS_AS(parse_command_line({"--parent-fd", "-1"}), UsageError);
    CHECK_THROWS_AS(parse_command_line({"--keepalives-idle", "-1"}), UsageError);
    CHECK_THROWS_AS(parse_command_line({"--keepalives-count", "3x"}), UsageError);
    CHECK_THROWS_AS(parse_command_line({"--tcp-user-timeout="}), UsageError);
}

TEST_CASE("passwords never reach a log line", "[daemon]") {
    CHECK(redact_conninfo("host=x password=secret user=u") == "host=x password=******** user=u");
    CHECK(redact_conninfo("password = 'se cr\\'et' dbname=d") == "password = ******** dbname=d");
    CHECK(redact_conninfo("postgresql://user:secret@host/db") == "postgresql://user:********@host/db");
    CHECK(redact_conninfo("host=x dbname=d") == "host=x dbname=d");
}
