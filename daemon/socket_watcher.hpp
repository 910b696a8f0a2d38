// Watches a socket someone else owns (libpq's) for readability on the io
// thread. The descriptor is released, never closed, when watching stops, so
// Asio cannot close libpq's fd, and stop() must run before the connection
// dies so a reused fd number is never misrouted (STYLE A4 item 3, A6.3).
#pragma once

#include <functional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

namespace pgd::daemon {

class SocketWatcher {
public:
    SocketWatcher(boost::asio::io_context &io, std::function<void()> on_readable);
    ~SocketWatcher();
    SocketWatcher(const SocketWatcher &) = delete;
    SocketWatcher &operator=(const SocketWatcher &) = delete;

    // Starts watching fd; on_readable runs on the io thread each time data arrives.
    void watch(int fd);
    // Cancels the wait and releases the fd. Safe to call when not watching.
    void stop();
    bool watching() const { return descriptor_.is_open(); }

private:
    void arm();

    boost::asio::posix::stream_descriptor descriptor_;
    std::function<void()> on_readable_;
    unsigned generation_ = 0;  // completions of an earlier watch() are ignored
};

}  // namespace pgd::daemon
