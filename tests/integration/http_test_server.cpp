#include "http_test_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include <boost/asio/connect.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace pgd::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

HttpTestServer::HttpTestServer(int port, unsigned seed)
    : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port))),
      rng_(seed) {
    port_ = acceptor_.local_endpoint().port();
    acceptor_thread_ = std::thread([this] { accept_loop(); });
}

HttpTestServer::~HttpTestServer() {
    stopping_ = true;
    // Unblock accept() with a connection of our own.
    try {
        asio::io_context io;
        tcp::socket poke(io);
        poke.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)));
    } catch (const std::exception &) {
    }
    acceptor_thread_.join();
    std::vector<std::thread> workers;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        workers.swap(workers_);
    }
    for (auto &worker : workers) worker.join();
}

std::string HttpTestServer::url(const std::string &path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::vector<HttpTestServer::Hit> HttpTestServer::hits(const std::string &target) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Hit> out;
    for (const auto &hit : hits_)
        if (hit.target == target) out.push_back(hit);
    return out;
}

std::size_t HttpTestServer::total_hits() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return hits_.size();
}

std::vector<HttpTestServer::Hit> HttpTestServer::all_hits() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return hits_;
}

void HttpTestServer::accept_loop() {
    while (!stopping_) {
        tcp::socket socket(io_);
        boost::system::error_code ec;
        acceptor_.accept(socket, ec);
        if (stopping_) break;
        if (ec) continue;
        std::lock_guard<std::mutex> lock(mutex_);
        workers_.emplace_back([this, s = std::move(socket)]() mutable { serve(std::move(s)); });
    }
}

bool HttpTestServer::hold(tcp::socket &socket, int ms) {
    const int now_holding = ++holding_;
    for (int seen = max_holding_; now_holding > seen && !max_holding_.compare_exchange_weak(seen, now_holding);) {
    }
    // The client sends nothing after its request, so the socket turning
    // readable means it closed (EOF) or reset the connection.
    bool closed = false;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!closed && !stopping_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd fd{socket.native_handle(), POLLIN | POLLRDHUP, 0};
        const int ready = ::poll(&fd, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
        if (ready > 0) {
            char byte;
            const auto got = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            closed = got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        }
    }
    if (closed) ++closed_while_held_;
    --holding_;
    return closed;
}

void HttpTestServer::serve(tcp::socket socket) {
    // A stuck client must not hang the test's teardown.
    timeval tv{5, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    boost::system::error_code ec;
    http::read(socket, buffer, request, ec);
    if (ec) return;
    const std::string target(request.target());
    std::size_t previous_hits = 0;
    int dice = 0;  // /random: 0 fail, 1 delay, else at once
    int delay_ms = 0;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto &hit : hits_)
            if (hit.target == target) ++previous_hits;
        hits_.push_back({target, std::string(request["Idempotency-Key"])});
        dice = std::uniform_int_distribution<int>(0, 3)(rng_);
        delay_ms = std::uniform_int_distribution<int>(100, 1500)(rng_);
    }
    http::response<http::string_body> response;
    response.version(11);
    response.keep_alive(false);
    auto reply = [&](unsigned status, const std::string &type, std::string body) {
        response.result(status);
        response.set(http::field::content_type, type);
        response.body() = std::move(body);
    };
    auto starts = [&](const std::string &prefix) { return target.rfind(prefix, 0) == 0; };
    if (target == "/echo") {
        nlohmann::ordered_json headers = nlohmann::ordered_json::object();
        for (const auto &field : request) {
            std::string name(field.name_string());
            for (auto &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            headers[name] = std::string(field.value());
        }
        nlohmann::ordered_json echo{{"method", std::string(request.method_string())},
                                    {"target", target},
                                    {"headers", headers},
                                    {"body", request.body()}};
        reply(200, "application/json", echo.dump());
    } else if (starts("/status/")) {
        const unsigned status = static_cast<unsigned>(std::stoi(target.substr(8)));
        reply(status, "text/plain", "status " + std::to_string(status));
    } else if (starts("/flaky/")) {
        if (previous_hits == 0)
            reply(500, "text/plain", "first failure");
        else
            reply(200, "application/json", "{\"hits\":" + std::to_string(previous_hits + 1) + "}");
    } else if (starts("/random/")) {
        if (dice == 0) {
            reply(500, "text/plain", "random failure");
        } else {
            if (dice == 1) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
            reply(200, "application/json", "{\"ok\":true}");
        }
    } else if (target == "/fail") {
        reply(500, "text/plain", "always failing");
    } else if (starts("/slow/")) {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(target.substr(6))));
        reply(200, "text/plain", "slow done");
    } else if (starts("/hold/")) {
        if (hold(socket, std::stoi(target.substr(6)))) {
            socket.close(ec);
            return;
        }
        reply(200, "text/plain", "held");
    } else if (target == "/big") {
        reply(200, "text/plain", std::string(100000, 'x'));
    } else if (target == "/redirect") {
        reply(302, "text/plain", "redirecting");
        response.set(http::field::location, "/echo");
    } else if (target == "/binary") {
        std::string bytes;
        for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
        reply(200, "application/octet-stream", bytes);
    } else {
        reply(404, "text/plain", "no such route");
    }
    response.prepare_payload();
    http::write(socket, response, ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
}

}  // namespace pgd::test
