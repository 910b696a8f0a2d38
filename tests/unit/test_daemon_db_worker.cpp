// DbWorker (daemon/db_worker.hpp): jobs in order, and a worker whose last
// owner is released by one of its own jobs neither joins itself nor aborts.
#include <chrono>
#include <future>
#include <memory>
#include <vector>

#include "catch_compat.hpp"

#include "daemon/db_worker.hpp"

using pgd::daemon::DbWorker;

namespace {

// Fulfils a promise when destroyed: tells the test a job was run and freed.
struct Sentinel {
    std::shared_ptr<std::promise<void>> freed;
    ~Sentinel() {
        if (freed) freed->set_value();
    }
};

}  // namespace

TEST_CASE("a DbWorker runs its jobs in order and every posted job before it is destroyed", "[daemon][db_worker]") {
    std::vector<int> order;
    {
        DbWorker worker("order");
        for (int i = 0; i < 100; ++i) worker.post([&order, i] { order.push_back(i); });
    }
    REQUIRE(order.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(order[i] == i);
}

TEST_CASE("a DbWorker destroyed by its own job finishes its queue instead of joining itself", "[daemon][db_worker]") {
    // Issue 8 item 10: the last reference to an executor connection released
    // on its own worker thread made ~DbWorker join itself: std::system_error
    // "Resource deadlock avoided" from a destructor, and the daemon aborted.
    auto worker = std::make_shared<DbWorker>("self");
    std::promise<void> go;
    std::shared_future<void> released = go.get_future().share();
    auto freed = std::make_shared<std::promise<void>>();
    auto done = freed->get_future();

    // The first job holds a reference and waits until it is the last one.
    worker->post([worker, released] { released.wait(); });
    // A later job must still run after the worker was destroyed by the first.
    auto sentinel = std::make_shared<Sentinel>();
    sentinel->freed = freed;
    worker->post([sentinel] {});
    sentinel.reset();
    worker.reset();
    go.set_value();

    REQUIRE(done.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
}
