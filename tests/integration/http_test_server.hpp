// A small HTTP/1.1 server on 127.0.0.1 for the HTTP step tests (Beast,
// one thread per connection, so slow routes overlap).
//
// Routes:
//   /echo          200 JSON {"method","target","headers" (lowercased),"body"}
//   /status/<n>    status n, text body "status <n>"
//   /flaky/<k>     500 on the first request for that path, 200 afterwards
//   /fail          always 500 "always failing"
//   /slow/<ms>     waits ms, then 200 "slow done"
//   /big           200 with 100000 bytes of text
//   /redirect      302 to /echo
//   /binary        200 application/octet-stream with the bytes 0..255
//   /hold/<ms>     holds the request up to ms, then 200 "held"; the server
//                  counts how many are held at once and how many the client
//                  closed while held (it watches the socket meanwhile)
//   /random/<key>  at random (seeded): a quarter 500 "random failure", a
//                  quarter 200 after a delay of 0.1-1.5 s, the rest 200 at
//                  once; the 200 body is JSON {"ok":true}
//
// A server constructed with a port binds exactly that port, so a test can
// stop it (destroy it) and bring it back where the daemon expects it.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace pgd::test {

class HttpTestServer {
public:
    struct Hit {
        std::string target;
        std::string idempotency_key;
    };

    // port 0 = any free port; seed drives the /random route.
    explicit HttpTestServer(int port = 0, unsigned seed = 1);
    ~HttpTestServer();
    HttpTestServer(const HttpTestServer &) = delete;
    HttpTestServer &operator=(const HttpTestServer &) = delete;

    int port() const { return port_; }
    std::string url(const std::string &path) const;
    // Requests received so far for exactly this target.
    std::vector<Hit> hits(const std::string &target) const;
    std::size_t total_hits() const;
    // Every request received so far, in arrival order.
    std::vector<Hit> all_hits() const;
    // /hold requests held right now, the most held at once, and those whose
    // connection the client closed before the reply.
    int holding() const { return holding_; }
    int max_holding() const { return max_holding_; }
    int closed_while_held() const { return closed_while_held_; }
    void reset_max_holding() { max_holding_ = holding_.load(); }

private:
    void accept_loop();
    void serve(boost::asio::ip::tcp::socket socket);
    // True when the client closed the connection within `ms`.
    bool hold(boost::asio::ip::tcp::socket &socket, int ms);

    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread acceptor_thread_;
    mutable std::mutex mutex_;
    std::vector<std::thread> workers_;
    std::vector<Hit> hits_;
    std::mt19937 rng_;  // /random, under mutex_
    std::atomic<int> holding_{0};
    std::atomic<int> max_holding_{0};
    std::atomic<int> closed_while_held_{0};
};

}  // namespace pgd::test
