// Command-line parsing and connection strings of pg_durable_daemon.
#include <catch2/catch.hpp>

#include "daemon/config.hpp"

using namespace pgd::daemon;

TEST_CASE("discrete flags as the shim passes them build a quoted conninfo", "[daemon]") {
    const auto cmd = parse_command_line({"--host", "/var/run/postgresql", "--port", "5433", "--dbname",
                                         "my db", "--user", "o'neil", "--parent-fd", "3"});
    CHECK(cmd.parent_fd == 3);
    CHECK(connection_string(cmd) ==
          "host='/var/run/postgresql' port='5433' dbname='my db' user='o\\'neil' "
          "fallback_application_name='pg_durable_daemon'");
}

TEST_CASE("--conninfo comes first so discrete flags override it", "[daemon]") {
    const auto cmd = parse_command_line({"--conninfo=host=/tmp dbname=a", "--dbname=b"});
    CHECK(connection_string(cmd) == "host=/tmp dbname=a dbname='b' fallback_application_name='pg_durable_daemon'");
}

TEST_CASE("a URI is passed through but cannot be mixed with discrete flags", "[daemon]") {
    CHECK(connection_string(parse_command_line({"--conninfo", "postgresql://u@h/db"})) == "postgresql://u@h/db");
    CHECK_THROWS_AS(connection_string(parse_command_line({"--conninfo", "postgres://h/db", "--user", "x"})),
                    UsageError);
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
}

TEST_CASE("passwords never reach a log line", "[daemon]") {
    CHECK(redact_conninfo("host=x password=secret user=u") == "host=x password=******** user=u");
    CHECK(redact_conninfo("password = 'se cr\\'et' dbname=d") == "password = ******** dbname=d");
    CHECK(redact_conninfo("postgresql://user:secret@host/db") == "postgresql://user:********@host/db");
    CHECK(redact_conninfo("host=x dbname=d") == "host=x dbname=d");
}
