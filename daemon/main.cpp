// pg_durable_daemon: the out-of-process orchestrator of pg_durable.
// main() parses the command line, sets up logging and hands over to Daemon.
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/logging.hpp"

int main(int argc, char **argv) {
    using namespace pgd::daemon;
    // A write to a connection the server closed must be an error, not death.
    std::signal(SIGPIPE, SIG_IGN);

    CommandLine cmd;
    try {
        cmd = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
        if (!cmd.show_help && !cmd.show_version) (void) connection_string(cmd);
    } catch (const UsageError &e) {
        std::fprintf(stderr, "pg_durable_daemon: %s\nTry \"pg_durable_daemon --help\" for more information.\n",
                     e.what());
        return 2;
    }
    if (cmd.show_help) {
        std::fputs(usage_text().c_str(), stdout);
        return 0;
    }
    if (cmd.show_version) {
        std::puts(version_text().c_str());
        return 0;
    }

    init_logging(cmd.log_level);
    try {
        logger("daemon")->info("{}", version_text());
        Daemon daemon(cmd);
        return daemon.run();
    } catch (const std::exception &e) {
        logger("daemon")->critical("pg_durable: fatal error: {}", e.what());
        flush_logs();
        return 1;
    }
}
