// Catch2 runner of the chaos harness, with its own options:
//   --mode quick|long   quick: 150 workflows, 110 s of faults (ctest);
//                       long: 1,000 workflows, 30 min of faults (make chaos)
//   --seed N            seed of every random choice (0 = from the clock); printed
//   --workflows N       override the mode's number of workflows
//   --duration S        override the mode's fault window in seconds
#define CATCH_CONFIG_RUNNER
#include "catch_compat.hpp"

#include <csignal>

#include "chaos_log.hpp"

int main(int argc, char *argv[]) {
    // A server that goes away under the harness must fail a check, not kill the run.
    std::signal(SIGPIPE, SIG_IGN);
    Catch::Session session;
    auto &options = pgd::chaos::options();
    using Catch::clara::Opt;
    session.cli(session.cli() | Opt(options.mode, "quick|long")["--mode"]("chaos mode (default quick)") |
                Opt(options.seed, "seed")["--seed"]("random seed, 0 = from the clock") |
                Opt(options.workflows, "count")["--workflows"]("number of workflows (default by mode)") |
                Opt(options.duration_s, "seconds")["--duration"]("fault window in seconds (default by mode)"));
    if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
    return session.run();
}
