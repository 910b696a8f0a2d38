// HTTP steps (SPEC.md §14) on the daemon's io_context with Boost.Beast:
// HTTP and HTTPS (certificate and host name verification, SNI), no database
// connection or transaction involved.
//
// At most max_http_concurrency attempts are in flight at once (resolve,
// connect, request, response: the phase that holds a socket and a response
// buffer); the rest wait in a FIFO queue holding neither, and a step waiting
// between retries gives its slot up. A step is known by its StepKey, so
// df.cancel and a lost RACE abort it: its socket closes at once, its slot or
// queue place goes to the next, and its `done` never runs.
//
// One HttpClient::run call carries out one HTTP step after the gates that
// need the database (http_enabled, EXECUTE on df.http) have passed: scheme,
// allow-list, then per attempt resolve once, drop restricted addresses
// (unless private networks are allowed) and connect only to what remains.
// 5xx and transport errors are retried with 1 s, 2 s, 4 s... waits on Asio
// timers; gates and oversized bodies are not.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <tuple>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

namespace pgd::daemon::http {

struct Limits {
    std::string allowed_hosts;
    bool allow_private_networks = false;
    int max_attempts = 3;
    long long max_response_bytes = 10 * 1024 * 1024;
};

// How a step ended: `ok` → `text` is the envelope (the node completes),
// else `text` is the failure message.
struct Result {
    bool ok = false;
    std::string text;
};

// Which step a request carries out: (instance id, stamp, node id), the
// interpreter's RecordKey plus the instance.
struct StepKey {
    std::string instance_id;
    std::string stamp;
    std::string node_id;
    bool operator<(const StepKey &other) const {
        return std::tie(instance_id, stamp, node_id) < std::tie(other.instance_id, other.stamp, other.node_id);
    }
};

// Runs HTTP steps; the orchestrator's view of the HttpClient (a fake one in
// the orchestrator's unit tests).
class StepClient {
public:
    virtual ~StepClient() = default;
    virtual void set_max_concurrency(int limit) = 0;
    virtual void run(const StepKey &key, const std::string &config, const std::string &idempotency_key,
                     const Limits &limits, std::function<void(Result)> done) = 0;
    virtual bool cancel(const StepKey &key) = 0;
    virtual std::size_t cancel_instance(const std::string &instance_id) = 0;
    virtual void stop() = 0;
    // Requests under way (attempts holding a slot).
    virtual std::size_t in_flight() const { return 0; }
};

class HttpClient final : public StepClient {
public:
    explicit HttpClient(boost::asio::io_context &io, int max_concurrency = 64);
    ~HttpClient() override;
    HttpClient(const HttpClient &) = delete;
    HttpClient &operator=(const HttpClient &) = delete;

    // pg_durable.max_http_concurrency (at least 1). Applies to attempts
    // admitted from now on: a lower limit lets running ones finish, a higher
    // one admits queued ones at once.
    void set_max_concurrency(int limit) override;

    // `config` is the HTTP node's JSON ({"url","method","body","headers",
    // "timeout_seconds"}) after substitution. `done` runs on the io thread,
    // never after stop(), destruction or a cancel of `key`. A second run of a
    // key still in flight supersedes the first (which is aborted).
    void run(const StepKey &key, const std::string &config, const std::string &idempotency_key,
             const Limits &limits, std::function<void(Result)> done) override;

    // Aborts the step, wherever it is (queued, in flight, waiting to retry);
    // false when there is none under `key`.
    bool cancel(const StepKey &key) override;
    // Aborts every step of the instance; how many there were.
    std::size_t cancel_instance(const std::string &instance_id) override;

    // Abandons every request (their `done` never runs).
    void stop() override;

    // Attempts holding a slot, and steps waiting for one.
    std::size_t in_flight() const override;
    std::size_t queued() const;

    class Step;  // one HTTP step: its attempts and waits
    struct Core;  // what steps share with the client (slots, the live steps)

private:
    std::shared_ptr<Core> core_;
};

}  // namespace pgd::daemon::http
