#include "daemon/socket_watcher.hpp"

namespace pgd::daemon {

SocketWatcher::SocketWatcher(boost::asio::io_context &io, std::function<void()> on_readable)
    : descriptor_(io), on_readable_(std::move(on_readable)) {}

SocketWatcher::~SocketWatcher() { stop(); }

void SocketWatcher::watch(int fd) {
    stop();
    ++generation_;
    descriptor_.assign(fd);
    arm();
}

void SocketWatcher::stop() {
    if (!descriptor_.is_open()) return;
    ++generation_;
    boost::system::error_code ignored;
    descriptor_.cancel(ignored);
    descriptor_.release();
}

void SocketWatcher::arm() {
    const unsigned generation = generation_;
    descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this, generation](const boost::system::error_code &ec) {
                               if (ec == boost::asio::error::operation_aborted || generation != generation_)
                                   return;
                               // Re-arm before the owner drains: the reactor is
                               // edge-triggered, and data arriving between the
                               // drain and a later re-arm would wait for the next
                               // notification.
                               if (!ec) arm();
                               on_readable_();
                           });
}

}  // namespace pgd::daemon
