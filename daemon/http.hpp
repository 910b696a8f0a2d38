// HTTP steps (SPEC.md §14) on the daemon's io_context with Boost.Beast:
// HTTP and HTTPS (certificate and host name verification, SNI), any number
// of requests at once, no database connection or transaction involved.
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
#include <set>
#include <string>

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

class HttpClient {
public:
    explicit HttpClient(boost::asio::io_context &io);
    ~HttpClient();
    HttpClient(const HttpClient &) = delete;
    HttpClient &operator=(const HttpClient &) = delete;

    // `config` is the HTTP node's JSON ({"url","method","body","headers",
    // "timeout_seconds"}) after substitution. `done` runs on the io thread,
    // never after stop() or destruction.
    void run(const std::string &config, const std::string &idempotency_key, const Limits &limits,
             std::function<void(Result)> done);

    // Abandons every request in flight (their `done` never runs).
    void stop();

    class Step;  // one HTTP step: its attempts and waits

private:
    boost::asio::io_context &io_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    std::shared_ptr<std::set<Step *>> live_;  // steps in flight
};

}  // namespace pgd::daemon::http
