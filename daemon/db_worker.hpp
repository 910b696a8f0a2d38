// A thread that runs blocking jobs in order. libpqxx is blocking and
// thread-confined, so each connection is owned by one DbWorker for life and
// touched only by its jobs; results go back to the io thread with asio::post
// (STYLE A4 item 2). The io thread never calls libpqxx, not even to connect.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace pgd::daemon {

class DbWorker {
public:
    explicit DbWorker(std::string name);
    // Runs every job already posted, then joins the thread. When one of its
    // own jobs destroys the worker (the job held the last reference to its
    // owner), the thread cannot join itself: it is detached instead and runs
    // the remaining jobs on its own before it ends.
    ~DbWorker();
    DbWorker(const DbWorker &) = delete;
    DbWorker &operator=(const DbWorker &) = delete;

    // Queues a job; jobs run one at a time in posting order. A job must not throw.
    void post(std::function<void()> job);

private:
    // Shared with the thread, so it outlives a worker destroyed by its own job.
    struct Queue {
        std::mutex mutex;
        std::condition_variable wake;
        std::deque<std::function<void()>> jobs;
        bool closing = false;
    };
    static void run(const std::string &name, const std::shared_ptr<Queue> &queue);

    std::shared_ptr<Queue> queue_;
    std::thread thread_;  // last: starts after the queue exists
};

}  // namespace pgd::daemon
