// Catch2 runner of the integration tests. Each test creates the clusters it
// needs (cluster.hpp); the extension must be installed into the system
// PostgreSQL first (cmake --install <build dir>).
#define CATCH_CONFIG_RUNNER
#include "catch_compat.hpp"

#include <csignal>

int main(int argc, char *argv[]) {
    // A server that goes away under a test must fail that test, not kill the run.
    std::signal(SIGPIPE, SIG_IGN);
    return Catch::Session().run(argc, argv);
}
