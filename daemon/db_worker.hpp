// A thread that runs blocking jobs in order. libpqxx is blocking and
// thread-confined, so each connection is owned by one DbWorker for life and
// touched only by its jobs; results go back to the io thread with asio::post
// (STYLE A4 item 2). The io thread never calls libpqxx, not even to connect.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace pgd::daemon {

class DbWorker {
public:
    explicit DbWorker(std::string name);
    // Runs every job already posted, then joins the thread.
    ~DbWorker();
    DbWorker(const DbWorker &) = delete;
    DbWorker &operator=(const DbWorker &) = delete;

    // Queues a job; jobs run one at a time in posting order. A job must not throw.
    void post(std::function<void()> job);

private:
    void run();

    std::string name_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    bool closing_ = false;
    std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace pgd::daemon
