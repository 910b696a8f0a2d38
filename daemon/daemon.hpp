// The composition root of pg_durable_daemon: one io_context on the main
// thread, the orchestrator link, the lifecycle, process signals and the
// parent lifeline. main() only parses the command line and calls run().
#pragma once

#include <optional>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>

#include "daemon/config.hpp"
#include "daemon/lifecycle.hpp"
#include "daemon/orchestrator.hpp"
#include "daemon/orchestrator_link.hpp"
#include "daemon/work.hpp"

namespace pgd::daemon {

class Daemon {
public:
    explicit Daemon(const CommandLine &cmd, LifecycleTiming timing = {});
    Daemon(const Daemon &) = delete;
    Daemon &operator=(const Daemon &) = delete;

    // Runs the event loop until the daemon stops; returns the exit code.
    int run();

private:
    void wait_for_signal();
    void on_signal(int signo);
    void watch_parent();
    void on_finished(int exit_code);
    [[noreturn]] static void exit_now(int exit_code);

    boost::asio::io_context io_;
    // Keeps run() going while only DbWorker jobs are in flight (they are not
    // Asio operations); dropped when the lifecycle finishes.
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> keep_running_;
    boost::asio::signal_set signals_;
    boost::asio::posix::stream_descriptor parent_lifeline_;
    OrchestratorLink link_;
    Orchestrator work_;
    Lifecycle lifecycle_;
    int terminate_requests_ = 0;
    bool finished_ = false;  // the lifecycle finished: no wait is re-armed
    int exit_code_ = 0;
};

}  // namespace pgd::daemon
