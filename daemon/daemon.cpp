#include "daemon/daemon.hpp"

#include <csignal>
#include <cstdlib>
#include <sys/prctl.h>
#include <unistd.h>

#include "daemon/logging.hpp"

namespace pgd::daemon {

Daemon::Daemon(const CommandLine &cmd, LifecycleTiming timing)
    : keep_running_(boost::asio::make_work_guard(io_)),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      parent_lifeline_(io_),
      link_(io_, connection_string(cmd)),
      work_(io_, postgres_parts(io_, connection_string(cmd))),
      lifecycle_(io_, link_, work_, timing, [this](int code) { on_finished(code); },
                 [](int code) { exit_now(code); }) {
    if (cmd.parent_fd >= 0) {
        // Backstop for the lifeline pipe: a signal when the parent dies.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        parent_lifeline_.assign(cmd.parent_fd);
    }
}

int Daemon::run() {
    wait_for_signal();
    if (parent_lifeline_.is_open()) watch_parent();
    lifecycle_.start();
    io_.run();
    return exit_code_;
}

void Daemon::wait_for_signal() {
    signals_.async_wait([this](const boost::system::error_code &ec, int signo) {
        if (ec || finished_) return;  // cancelled, or a signal that came as we finished
        on_signal(signo);
        // Not once finished: a re-armed wait would keep run() going for ever
        // (a parent-death SIGTERM racing the lifeline's EOF did just that).
        if (!finished_) wait_for_signal();
    });
}

void Daemon::on_signal(int signo) {
    auto log = logger("signals");
    if (signo == SIGHUP) {
        lifecycle_.reload();
        return;
    }
    ++terminate_requests_;
    if (terminate_requests_ == 1) {
        lifecycle_.request_stop(signo == SIGINT ? "SIGINT received" : "SIGTERM received");
        return;
    }
    // Second request: the operator does not want to wait for the drain.
    log->warn("pg_durable: second {} received; exiting immediately", signo == SIGINT ? "SIGINT" : "SIGTERM");
    exit_now(1);
}

void Daemon::watch_parent() {
    // The lifeline carries no data: readability means EOF, i.e. the shim is gone.
    parent_lifeline_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                                [this](const boost::system::error_code &ec) {
                                    if (ec == boost::asio::error::operation_aborted || finished_) return;
                                    lifecycle_.request_stop("the parent process (shim) is gone");
                                });
}

void Daemon::on_finished(int exit_code) {
    exit_code_ = exit_code;
    finished_ = true;
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    if (parent_lifeline_.is_open()) parent_lifeline_.cancel(ignored);
    keep_running_.reset();
    // The lifecycle is over, so run() returns now: whatever is still pending
    // (a late completion that re-armed itself, a component's timer) must not
    // keep a daemon alive whose server may be gone. Pending handlers are
    // destroyed with the io_context, never run.
    io_.stop();
}

void Daemon::exit_now(int exit_code) {
    flush_logs();
    // Skips destructors on purpose: a DbWorker may be blocked in libpq. The
    // kernel closes our sockets and the server releases the lock with them.
    std::_Exit(exit_code);
}

}  // namespace pgd::daemon
