// The HTTP client's slots, queue and aborts (daemon/http.hpp), against a
// server on the same io_context that accepts, holds and answers on demand.
#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include "catch_compat.hpp"

#include "daemon/http.hpp"

using namespace pgd::daemon::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// Accepts every connection and keeps it open until told to answer; notices
// when the client closes one.
struct HoldingServer {
    struct Conn {
        tcp::socket socket;
        std::array<char, 4096> buffer{};
        bool closed = false;
        explicit Conn(asio::io_context &io) : socket(io) {}
    };

    explicit HoldingServer(asio::io_context &io)
        : io_(io), acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        accept();
    }

    std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/x"; }

    std::size_t open() const {
        std::size_t n = 0;
        for (const auto &c : conns) n += c->closed ? 0 : 1;
        return n;
    }

    void answer(std::size_t index, const std::string &status) {
        auto conn = conns.at(index);
        auto text = std::make_shared<std::string>("HTTP/1.1 " + status +
                                                  "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        asio::async_write(conn->socket, asio::buffer(*text), [conn, text](const boost::system::error_code &, std::size_t) {
            boost::system::error_code ignored;
            conn->socket.shutdown(tcp::socket::shutdown_send, ignored);
        });
    }

    std::vector<std::shared_ptr<Conn>> conns;

private:
    void accept() {
        auto conn = std::make_shared<Conn>(io_);
        acceptor.async_accept(conn->socket, [this, conn](const boost::system::error_code &ec) {
            if (ec) return;
            conns.push_back(conn);
            read(conn);
            accept();
        });
    }
    // Reads (and drops) the request; end of stream means the client closed.
    void read(const std::shared_ptr<Conn> &conn) {
        conn->socket.async_read_some(asio::buffer(conn->buffer),
                                     [this, conn](const boost::system::error_code &ec, std::size_t) {
                                         if (ec) {
                                             conn->closed = true;
                                             return;
                                         }
                                         read(conn);
                                     });
    }

    asio::io_context &io_;

public:
    tcp::acceptor acceptor;
};

// Runs the loop until `done` holds or the deadline passes.
bool pump_until(asio::io_context &io, const std::function<bool()> &done, std::chrono::milliseconds deadline = 5s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= until) return false;
        io.run_for(5ms);
        io.restart();
    }
    return true;
}

void pump_for(asio::io_context &io, std::chrono::milliseconds span) {
    pump_until(io, [] { return false; }, span);
}

Limits local(int attempts = 1) {
    Limits limits;
    limits.allowed_hosts = "*";
    limits.allow_private_networks = true;
    limits.max_attempts = attempts;
    return limits;
}

std::string config(const std::string &url) { return R"({"url":")" + url + R"(","method":"GET","timeout_seconds":30})"; }

}  // namespace

TEST_CASE("HTTP client: at most the limit in flight, the rest wait in order", "[daemon][http]") {
    asio::io_context io;
    HoldingServer server(io);
    HttpClient client(io, 2);
    std::map<std::string, Result> done;
    for (const std::string node : {"a", "b", "c"})
        client.run({"i", "s", node}, config(server.url()), "key", local(), [&, node](Result r) { done[node] = r; });

    REQUIRE(pump_until(io, [&] { return server.conns.size() == 2; }));
    pump_for(io, 200ms);
    CHECK(server.conns.size() == 2);
    CHECK(client.in_flight() == 2);
    CHECK(client.queued() == 1);

    server.answer(0, "200 OK");
    REQUIRE(pump_until(io, [&] { return server.conns.size() == 3; }));
    CHECK(done.size() == 1);
    CHECK(done["a"].ok);
    CHECK(client.in_flight() == 2);
    CHECK(client.queued() == 0);

    // A higher limit admits nobody new here (the queue is empty); a lower one
    // lets both finish.
    client.set_max_concurrency(1);
    server.answer(1, "200 OK");
    server.answer(2, "200 OK");
    REQUIRE(pump_until(io, [&] { return done.size() == 3; }));
    CHECK(client.in_flight() == 0);
}

TEST_CASE("HTTP client: a cancel closes the socket at once, frees the slot and never reports", "[daemon][http]") {
    asio::io_context io;
    HoldingServer server(io);
    HttpClient client(io, 1);
    std::vector<std::string> reported;
    auto note = [&](const std::string &what) { return [&, what](Result) { reported.push_back(what); }; };
    client.run({"i", "s", "a"}, config(server.url()), "key", local(), note("a"));
    client.run({"i", "s", "b"}, config(server.url()), "key", local(), note("b"));
    client.run({"j", "s", "c"}, config(server.url()), "key", local(), note("c"));
    REQUIRE(pump_until(io, [&] { return server.conns.size() == 1; }));
    CHECK(client.queued() == 2);

    CHECK(client.cancel({"i", "s", "a"}));
    CHECK_FALSE(client.cancel({"i", "s", "a"}));
    REQUIRE(pump_until(io, [&] { return server.conns.size() == 2; }));
    CHECK(server.conns[0]->closed);

    // A whole instance: its request in flight and nothing else.
    CHECK(client.cancel_instance("i") == 1);
    REQUIRE(pump_until(io, [&] { return server.conns.size() == 3 && server.conns[1]->closed; }));
    CHECK(client.in_flight() == 1);
    CHECK(client.queued() == 0);

    // A queued request leaves the queue without taking a slot.
    client.run({"k", "s", "d"}, config(server.url()), "key", local(), note("d"));
    CHECK(client.queued() == 1);
    CHECK(client.cancel_instance("k") == 1);
    CHECK(client.queued() == 0);

    server.answer(2, "200 OK");
    REQUIRE(pump_until(io, [&] { return !reported.empty(); }));
    pump_for(io, 100ms);
    CHECK(reported == std::vector<std::string>{"c"});
    CHECK(server.conns.size() == 3);
}

TEST_CASE("HTTP client: a step waiting to retry gives its slot up", "[daemon][http]") {
    asio::io_context io;
    HoldingServer server(io);
    HttpClient client(io, 1);
    std::map<std::string, Result> done;
    client.run({"i", "s", "a"}, config(server.url()), "key", local(2), [&](Result r) { done["a"] = r; });
    client.run({"i", "s", "b"}, config(server.url()), "key", local(), [&](Result r) { done["b"] = r; });
    REQUIRE(pump_until(io, [&] { return server.conns.size() == 1; }));
    server.answer(0, "503 Service Unavailable");
    // a waits 1 s before its second attempt; b gets the slot meanwhile.
    REQUIRE(pump_until(io, [&] { return server.conns.size() == 2; }, 900ms));
    CHECK(done.empty());
    // a's second attempt queues behind b until b is done.
    pump_for(io, 1500ms);
    CHECK(server.conns.size() == 2);
    CHECK(client.queued() == 1);
    server.answer(1, "200 OK");
    REQUIRE(pump_until(io, [&] { return server.conns.size() == 3; }));
    server.answer(2, "200 OK");
    REQUIRE(pump_until(io, [&] { return done.size() == 2; }));
    CHECK(done["a"].ok);
    CHECK(done["b"].ok);
}

TEST_CASE("HTTP client: stop abandons queued and running requests", "[daemon][http]") {
    asio::io_context io;
    HoldingServer server(io);
    int reported = 0;
    {
        HttpClient client(io, 1);
        client.run({"i", "s", "a"}, config(server.url()), "key", local(), [&](Result) { ++reported; });
        client.run({"i", "s", "b"}, config(server.url()), "key", local(), [&](Result) { ++reported; });
        REQUIRE(pump_until(io, [&] { return server.conns.size() == 1; }));
        client.stop();
        CHECK(client.in_flight() == 0);
        CHECK(client.queued() == 0);
    }
    REQUIRE(pump_until(io, [&] { return server.conns[0]->closed; }));
    pump_for(io, 100ms);
    CHECK(reported == 0);
    CHECK(server.conns.size() == 1);
}
