#include "daemon/db_worker.hpp"

#include <pthread.h>

namespace pgd::daemon {

DbWorker::DbWorker(std::string name)
    : queue_(std::make_shared<Queue>()), thread_([name = std::move(name), queue = queue_] { run(name, queue); }) {}

DbWorker::~DbWorker() {
    {
        std::lock_guard<std::mutex> lock(queue_->mutex);
        queue_->closing = true;
    }
    queue_->wake.notify_one();
    if (!thread_.joinable()) return;
    // Joining our own thread would throw (EDEADLK) out of a destructor and
    // abort the daemon; the thread holds the queue and ends by itself.
    if (thread_.get_id() == std::this_thread::get_id())
        thread_.detach();
    else
        thread_.join();
}

void DbWorker::post(std::function<void()> job) {
    {
        std::lock_guard<std::mutex> lock(queue_->mutex);
        queue_->jobs.push_back(std::move(job));
    }
    queue_->wake.notify_one();
}

void DbWorker::run(const std::string &name, const std::shared_ptr<Queue> &queue) {
    // Thread names show up in top/gdb; Linux allows 15 characters.
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock<std::mutex> lock(queue->mutex);
            queue->wake.wait(lock, [&] { return queue->closing || !queue->jobs.empty(); });
            if (queue->jobs.empty()) return;  // closing and drained
            job = std::move(queue->jobs.front());
            queue->jobs.pop_front();
        }
        job();
        // Destroyed here, on this thread: what it captured may own this
        // worker (see ~DbWorker).
        job = nullptr;
    }
}

}  // namespace pgd::daemon
