// HTTPS steps (SPEC.md §14): certificate chain and host name verification
// against `openssl s_server -www` on 127.0.0.1 with certificates made by the
// test. The daemon trusts them through SSL_CERT_FILE (OpenSSL's default
// verify paths), set only for this test's daemon.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include "catch_compat.hpp"
#include <nlohmann/json.hpp>

#include "cluster.hpp"

using namespace pgd::test;

namespace {

constexpr const char *kProcessing = "pg_durable: processing durable functions...";

int free_port() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor(
        io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    return acceptor.local_endpoint().port();
}

bool port_open(int port) {
    try {
        boost::asio::io_context io;
        boost::asio::ip::tcp::socket socket(io);
        socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
        return true;
    } catch (const std::exception &) {
        return false;
    }
}

// A self-signed certificate (its own CA) for the given subjectAltName.
void make_cert(const std::string &dir, const std::string &name, const std::string &san) {
    const std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + name + " -keyout " +
                                dir + "/" + name + ".key -out " + dir + "/" + name + ".pem -addext subjectAltName=" +
                                san + " >/dev/null 2>&1";
    REQUIRE(std::system(command.c_str()) == 0);
}

// openssl s_server -www: answers any request with a 200 status page.
class TlsServer {
public:
    TlsServer(const std::string &dir, const std::string &name) : port_(free_port()) {
        const std::string accept = "127.0.0.1:" + std::to_string(port_);
        const std::string cert = dir + "/" + name + ".pem";
        const std::string key = dir + "/" + name + ".key";
        pid_ = fork();
        if (pid_ == 0) {
            if (std::freopen("/dev/null", "r", stdin) == nullptr || std::freopen("/dev/null", "w", stdout) == nullptr)
                _exit(127);
            execlp("openssl", "openssl", "s_server", "-accept", accept.c_str(), "-cert", cert.c_str(), "-key",
                   key.c_str(), "-www", "-quiet", static_cast<char *>(nullptr));
            _exit(127);
        }
        REQUIRE(pid_ > 0);
        REQUIRE(wait_until([&] { return port_open(port_); }, 10s));
    }
    ~TlsServer() {
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
    int port() const { return port_; }

private:
    int port_;
    pid_t pid_ = -1;
};

std::string quote(const std::string &text) { return "'" + text + "'"; }

}  // namespace

TEST_CASE("HTTPS: verified chain and host name succeed; untrusted or mismatched certificates fail", "[http]") {
    char pattern[] = "/tmp/pgd-tls-XXXXXX";
    const char *made = mkdtemp(pattern);
    REQUIRE(made != nullptr);
    const std::string dir = made;
    make_cert(dir, "localhost", "DNS:localhost,IP:127.0.0.1");
    make_cert(dir, "wrong", "DNS:wrong.test");
    make_cert(dir, "untrusted", "DNS:localhost");
    // Trust the first two only.
    REQUIRE(std::system(("cat " + dir + "/localhost.pem " + dir + "/wrong.pem > " + dir + "/trust.pem").c_str()) == 0);

    TlsServer good(dir, "localhost");
    TlsServer wrong(dir, "wrong");
    TlsServer untrusted(dir, "untrusted");

    ClusterOptions options;
    options.settings = {{"pg_durable.http_enabled", "on"},
                        {"pg_durable.enable_superuser_instances", "on"},
                        {"pg_durable.http_allowed_hosts", "*"},
                        {"pg_durable.http_allow_private_networks", "on"},
                        {"pg_durable.http_max_attempts", "1"}};
    TestCluster cluster(options);
    cluster.exec("CREATE EXTENSION pg_durable");
    const std::string trust = dir + "/trust.pem";
    setenv("SSL_CERT_FILE", trust.c_str(), 1);
    DaemonProcess daemon(cluster);
    unsetenv("SSL_CERT_FILE");
    REQUIRE(wait_until([&] { return daemon.log_contains(kProcessing); }, 30s));

    auto run = [&](const std::string &url) {
        const auto id = cluster.query_value("SELECT df.start(df.http(" + quote(url) + ", 'GET'))");
        REQUIRE(id);
        const bool ended = wait_until(
            [&] {
                const auto s = cluster.query_value("SELECT df.status(" + quote(*id) + ")").value_or("");
                return s == "completed" || s == "failed";
            },
            30s);
        REQUIRE(ended);
        return nlohmann::json::parse(cluster.query_value("SELECT df.result(" + quote(*id) + ")").value_or("null"));
    };

    const std::string by_name = "https://localhost:" + std::to_string(good.port()) + "/";
    const auto ok = run(by_name);
    INFO(ok.dump());
    CHECK(ok["status"] == 200);
    CHECK(ok["ok"] == true);

    const auto by_ip = run("https://127.0.0.1:" + std::to_string(good.port()) + "/");
    CHECK(by_ip["status"] == 200);

    const std::string mismatch = "https://localhost:" + std::to_string(wrong.port()) + "/";
    const auto m = run(mismatch);
    INFO(m.dump());
    CHECK(m["error"].get<std::string>().rfind("HTTP connection failed: " + mismatch + " - ", 0) == 0);
    CHECK(m["error"].get<std::string>().find("certificate verify failed") != std::string::npos);

    const std::string unknown = "https://localhost:" + std::to_string(untrusted.port()) + "/";
    const auto u = run(unknown);
    INFO(u.dump());
    CHECK(u["error"].get<std::string>().find("certificate verify failed") != std::string::npos);

    CHECK(std::system(("rm -rf " + dir).c_str()) == 0);
}
