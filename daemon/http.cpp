#include "daemon/http.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>

#include "daemon/concurrency_gate.hpp"
#include "daemon/http_policy.hpp"

namespace pgd::daemon::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t kHeaderLimit = 64 * 1024;

bool header_safe(const std::string &text) { return text.find_first_of("\r\n", 0) == std::string::npos && text.find('\0') == std::string::npos; }

}  // namespace

// The client's state, shared with its steps so a step whose handlers outlive
// the client (stop(), then the io_context runs them) finds it or nothing.
struct HttpClient::Core {
    Core(asio::io_context &context, int limit)
        : io(context), tls(std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client)), gate(limit) {}

    // Starts the attempts of steps the gate just admitted.
    void admit(const std::vector<ConcurrencyGate::Ticket> &tickets);
    // Takes a step out of the client: its slot or queue place goes to the next.
    void detach(ConcurrencyGate::Ticket ticket, const StepKey &key);

    asio::io_context &io;
    std::shared_ptr<asio::ssl::context> tls;
    ConcurrencyGate gate;
    ConcurrencyGate::Ticket next_ticket = 0;
    // Every live step. A queued step has no handler pending, so this is what
    // keeps it alive; in flight, its handlers hold it too.
    std::map<ConcurrencyGate::Ticket, std::shared_ptr<Step>> steps;
    std::map<StepKey, ConcurrencyGate::Ticket> by_key;
};

class HttpClient::Step : public std::enable_shared_from_this<HttpClient::Step> {
public:
    Step(const std::shared_ptr<Core> &core, ConcurrencyGate::Ticket ticket, StepKey key, Limits limits,
         std::function<void(Result)> done)
        : io_(core->io), tls_(core->tls), core_(core), ticket_(ticket), key_(std::move(key)),
          limits_(std::move(limits)), done_(std::move(done)), resolver_(io_), deadline_(io_), backoff_(io_) {}

    void start(const std::string &config_text, const std::string &idempotency_key) {
        const auto config = nlohmann::json::parse(config_text, nullptr, false);
        if (!config.is_object() || !config.contains("url") || !config["url"].is_string()) {
            finish(false, request_error("", "invalid HTTP step configuration"));
            return;
        }
        url_ = config["url"].get<std::string>();
        method_ = config.value("method", std::string("POST"));
        if (config.contains("timeout_seconds") && config["timeout_seconds"].is_number_integer())
            timeout_s_ = config["timeout_seconds"].get<long long>();
        if (timeout_s_ <= 0) timeout_s_ = 30;
        // Gates (2) scheme and (3) allow-list; (4) comes with each resolve.
        const std::string scheme = url_scheme(url_);
        if (scheme != "http" && scheme != "https") {
            finish(false, scheme_error(scheme));
            return;
        }
        const auto parsed = parse_url(url_);
        if (!parsed) {
            if (!host_allowed(url_host(url_), limits_.allowed_hosts)) {
                finish(false, allow_list_error(url_host(url_)));
                return;
            }
            finish(false, request_error(url_, "invalid URL"));
            return;
        }
        url_parts_ = *parsed;
        if (!host_allowed(url_parts_.host, limits_.allowed_hosts)) {
            finish(false, allow_list_error(url_parts_.host));
            return;
        }
        // The request, the same for every attempt.
        const auto verb = bhttp::string_to_verb(method_);
        if (verb == bhttp::verb::unknown) {
            finish(false, request_error(url_, "invalid HTTP method " + method_));
            return;
        }
        request_.method(verb);
        request_.target(url_parts_.target);
        request_.version(11);
        request_.set(bhttp::field::host, url_parts_.host_header);
        if (config.contains("headers") && config["headers"].is_object()) {
            for (const auto &item : config["headers"].items()) {
                if (!item.value().is_string()) continue;  // SPEC: string-valued entries only
                const std::string value = item.value().get<std::string>();
                if (item.key().empty() || !header_safe(item.key()) || !header_safe(value)) {
                    finish(false, request_error(url_, "invalid header '" + item.key() + "'"));
                    return;
                }
                if (beast::iequals(item.key(), "host")) {
                    request_.set(bhttp::field::host, value);
                    continue;
                }
                request_.insert(item.key(), value);
            }
        }
        if (request_.find(bhttp::field::user_agent) == request_.end())
            request_.set(bhttp::field::user_agent, user_agent());
        if (request_.find("Idempotency-Key") == request_.end()) request_.set("Idempotency-Key", idempotency_key);
        if (config.contains("body") && config["body"].is_string()) {
            request_.body() = config["body"].get<std::string>();
            if (request_.find(bhttp::field::content_type) == request_.end() && valid_json(request_.body()))
                request_.set(bhttp::field::content_type, "application/json");
        }
        request_.prepare_payload();
        request_slot();
    }

    // Cancel or stop(): no more callbacks, the socket closes now and every
    // timer is cancelled. The caller takes the step out of the Core.
    void abort() {
        finished_ = true;
        done_ = nullptr;
        cancel_io();
        deadline_.cancel();
        backoff_.cancel();
    }

    // The gate admitted this step (it was queued).
    void admitted() { attempt(); }

private:
    // Each attempt needs a slot; queued until one is free, holding no socket.
    void request_slot() {
        if (finished_) return;
        auto core = core_.lock();
        if (!core) return;
        if (core->gate.acquire(ticket_)) attempt();
    }

    // Between attempts (a retry's wait) nothing is in flight: the slot goes
    // to the next in line.
    void release_slot() {
        if (auto core = core_.lock(); core && core->gate.holds(ticket_)) core->admit(core->gate.leave(ticket_));
    }

    void attempt() {
        if (finished_) return;
        ++attempts_;
        ++attempt_id_;
        timed_out_ = false;
        started_ = Clock::now();
        deadline_at_ = started_ + std::chrono::seconds(timeout_s_);
        deadline_.expires_at(deadline_at_);
        deadline_.async_wait([self = shared_from_this(), id = attempt_id_](const boost::system::error_code &ec) {
            if (ec || self->finished_ || id != self->attempt_id_) return;
            self->timed_out_ = true;
            self->cancel_io();
        });
        resolver_.async_resolve(url_parts_.host, url_parts_.port, tcp::resolver::numeric_service,
                                [self = shared_from_this(), id = attempt_id_](const boost::system::error_code &ec,
                                                                            tcp::resolver::results_type results) {
                                    self->on_resolve(id, ec, std::move(results));
                                });
    }

    bool stale(std::uint64_t id) const { return finished_ || id != attempt_id_; }

    void on_resolve(std::uint64_t id, const boost::system::error_code &ec, tcp::resolver::results_type results) {
        if (stale(id)) return;
        if (ec) {
            transport_failure(ec, connection_error(url_, ec.message()));
            return;
        }
        // Gate (4): only addresses that pass are ever connected to.
        std::vector<tcp::endpoint> endpoints;
        bool restricted = false;
        for (const auto &entry : results) {
            if (!limits_.allow_private_networks && restricted_address(entry.endpoint().address())) {
                restricted = true;
                continue;
            }
            endpoints.push_back(entry.endpoint());
        }
        if (endpoints.empty()) {
            if (restricted) {
                finish(false, restricted_error(url_parts_.host));
                return;
            }
            transport_failure({}, connection_error(url_, "no address found"));
            return;
        }
        https_ = url_parts_.scheme == "https";
        if (https_) {
            tls_stream_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io_, *tls_);
            plain_.reset();
        } else {
            plain_ = std::make_unique<beast::tcp_stream>(io_);
            tls_stream_.reset();
        }
        lowest().expires_at(deadline_at_);
        lowest().async_connect(endpoints, [self = shared_from_this(), id](const boost::system::error_code &error,
                                                                         const tcp::endpoint &) {
            self->on_connect(id, error);
        });
    }

    beast::tcp_stream &lowest() { return https_ ? beast::get_lowest_layer(*tls_stream_) : *plain_; }

    void on_connect(std::uint64_t id, const boost::system::error_code &ec) {
        if (stale(id)) return;
        if (ec) {
            transport_failure(ec, connection_error(url_, ec.message()));
            return;
        }
        if (!https_) {
            write(id);
            return;
        }
        boost::system::error_code parse_error;
        asio::ip::make_address(url_parts_.host, parse_error);
        if (parse_error) {  // SNI for names only (RFC 6066)
            if (!SSL_set_tlsext_host_name(tls_stream_->native_handle(), url_parts_.host.c_str())) {
                transport_failure({}, connection_error(url_, "cannot set SNI host name"));
                return;
            }
        }
        tls_stream_->set_verify_mode(asio::ssl::verify_peer);
        tls_stream_->set_verify_callback(asio::ssl::host_name_verification(url_parts_.host));
        lowest().expires_at(deadline_at_);
        tls_stream_->async_handshake(asio::ssl::stream_base::client,
                                     [self = shared_from_this(), id](const boost::system::error_code &error) {
                                         if (self->stale(id)) return;
                                         if (error) {
                                             self->transport_failure(error, connection_error(self->url_, error.message()));
                                             return;
                                         }
                                         self->write(id);
                                     });
    }

    void write(std::uint64_t id) {
        lowest().expires_at(deadline_at_);
        auto handler = [self = shared_from_this(), id](const boost::system::error_code &ec, std::size_t) {
            if (self->stale(id)) return;
            if (ec) {
                self->transport_failure(ec, request_error(self->url_, ec.message()));
                return;
            }
            self->read(id);
        };
        if (https_)
            bhttp::async_write(*tls_stream_, request_, std::move(handler));
        else
            bhttp::async_write(*plain_, request_, std::move(handler));
    }

    void read(std::uint64_t id) {
        buffer_.clear();
        parser_.emplace();
        parser_->header_limit(kHeaderLimit);
        parser_->body_limit(static_cast<std::uint64_t>(limits_.max_response_bytes));
        lowest().expires_at(deadline_at_);
        // The header first: Beast 1.74 loses the body_limit error of a
        // Content-Length that arrives together with body bytes (eager parse),
        // so the announced length is checked here before any body is read.
        auto handler = [self = shared_from_this(), id](const boost::system::error_code &ec, std::size_t) {
            self->on_header(id, ec);
        };
        if (https_)
            bhttp::async_read_header(*tls_stream_, buffer_, *parser_, std::move(handler));
        else
            bhttp::async_read_header(*plain_, buffer_, *parser_, std::move(handler));
    }

    void on_header(std::uint64_t id, const boost::system::error_code &ec) {
        if (stale(id)) return;
        const auto too_large = [&] {
            if (ec) return ec == bhttp::error::body_limit;
            const auto length = parser_->content_length();  // only once the header is done
            return length && *length > static_cast<std::uint64_t>(limits_.max_response_bytes);
        };
        if (too_large()) {
            finish(false, too_large_error(url_, limits_.max_response_bytes));
            return;
        }
        if (ec) {
            transport_failure(ec, request_error(url_, ec.message()));
            return;
        }
        lowest().expires_at(deadline_at_);
        auto handler = [self = shared_from_this(), id](const boost::system::error_code &error, std::size_t) {
            self->on_read(id, error);
        };
        if (https_)
            bhttp::async_read(*tls_stream_, buffer_, *parser_, std::move(handler));
        else
            bhttp::async_read(*plain_, buffer_, *parser_, std::move(handler));
    }

    void on_read(std::uint64_t id, const boost::system::error_code &ec) {
        if (stale(id)) return;
        if (ec == bhttp::error::body_limit) {
            finish(false, too_large_error(url_, limits_.max_response_bytes));
            return;
        }
        if (ec) {
            transport_failure(ec, request_error(url_, ec.message()));
            return;
        }
        // Chunked and read-to-close bodies: the parser enforces the limit;
        // this check backs it up.
        if (parser_->get().body().size() > static_cast<std::size_t>(limits_.max_response_bytes)) {
            finish(false, too_large_error(url_, limits_.max_response_bytes));
            return;
        }
        deadline_.cancel();
        const auto duration =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
        auto &message = parser_->get();
        Response response;
        response.status = static_cast<int>(message.result_int());
        for (const auto &field : message)
            response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
        response.body = std::move(message.body());
        close_stream();
        if (retryable_status(response.status)) {
            const std::string error = status_error(method_, url_, response.status, response.body);
            if (attempts_ < limits_.max_attempts) {
                retry();
                return;
            }
            finish(false, error);
            return;
        }
        finish(true, envelope(response, duration, attempts_));
    }

    void transport_failure(const boost::system::error_code &ec, const std::string &error) {
        deadline_.cancel();
        const bool timed_out = timed_out_ || ec == beast::error::timeout;
        cancel_io();
        if (attempts_ < limits_.max_attempts) {
            retry();
            return;
        }
        finish(false, timed_out ? timeout_error(timeout_s_, url_) : error);
    }

    void retry() {
        ++attempt_id_;  // late handlers of the failed attempt are stale
        release_slot();
        backoff_.expires_after(retry_delay(attempts_));
        backoff_.async_wait([self = shared_from_this()](const boost::system::error_code &ec) {
            if (ec || self->finished_) return;
            self->request_slot();
        });
    }

    // After a response: TLS close_notify (eof is success), nobody waits for it.
    void close_stream() {
        if (https_ && tls_stream_) {
            lowest().expires_after(std::chrono::seconds(2));
            auto stream = std::shared_ptr<beast::ssl_stream<beast::tcp_stream>>(std::move(tls_stream_));
            stream->async_shutdown([stream](const boost::system::error_code &) {
                boost::system::error_code ignored;
                beast::get_lowest_layer(*stream).socket().close(ignored);
            });
            return;
        }
        cancel_io();
    }

    void cancel_io() {
        resolver_.cancel();
        boost::system::error_code ignored;
        if (plain_) plain_->socket().close(ignored);
        if (tls_stream_) beast::get_lowest_layer(*tls_stream_).socket().close(ignored);
    }

    void finish(bool ok, std::string text) {
        if (finished_) return;
        finished_ = true;
        deadline_.cancel();
        backoff_.cancel();
        cancel_io();  // a TLS stream already handed to close_stream() is not touched
        auto done = std::move(done_);
        const auto keep = shared_from_this();  // detach drops the Core's reference
        if (auto core = core_.lock()) core->detach(ticket_, key_);
        if (done) done(Result{ok, std::move(text)});
    }

    asio::io_context &io_;
    std::shared_ptr<asio::ssl::context> tls_;
    std::weak_ptr<Core> core_;
    ConcurrencyGate::Ticket ticket_;
    StepKey key_;
    Limits limits_;
    std::function<void(Result)> done_;
    tcp::resolver resolver_;
    asio::steady_timer deadline_;
    asio::steady_timer backoff_;
    std::unique_ptr<beast::tcp_stream> plain_;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_stream_;
    bool https_ = false;
    beast::flat_buffer buffer_;
    std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
    bhttp::request<bhttp::string_body> request_;

    std::string url_;
    std::string method_;
    long long timeout_s_ = 30;
    Url url_parts_;
    int attempts_ = 0;
    std::uint64_t attempt_id_ = 0;
    bool timed_out_ = false;
    bool finished_ = false;
    Clock::time_point started_;
    Clock::time_point deadline_at_;
};

void HttpClient::Core::admit(const std::vector<ConcurrencyGate::Ticket> &tickets) {
    for (const auto ticket : tickets) {
        auto it = steps.find(ticket);
        // An attempt only starts asynchronous work, so nothing here re-enters
        // the gate while this loop runs.
        if (it != steps.end()) it->second->admitted();
    }
}

void HttpClient::Core::detach(ConcurrencyGate::Ticket ticket, const StepKey &key) {
    auto by = by_key.find(key);
    if (by != by_key.end() && by->second == ticket) by_key.erase(by);
    steps.erase(ticket);
    admit(gate.leave(ticket));
}

HttpClient::HttpClient(asio::io_context &io, int max_concurrency)
    : core_(std::make_shared<Core>(io, max_concurrency)) {
    boost::system::error_code ignored;
    core_->tls->set_default_verify_paths(ignored);
    core_->tls->set_verify_mode(asio::ssl::verify_peer);
}

HttpClient::~HttpClient() { stop(); }

void HttpClient::set_max_concurrency(int limit) { core_->admit(core_->gate.set_limit(limit)); }

void HttpClient::run(const StepKey &key, const std::string &config, const std::string &idempotency_key,
                     const Limits &limits, std::function<void(Result)> done) {
    cancel(key);  // a re-issued step supersedes one still in flight
    const auto ticket = ++core_->next_ticket;
    auto step = std::make_shared<Step>(core_, ticket, key, limits, std::move(done));
    core_->steps[ticket] = step;
    core_->by_key[key] = ticket;
    step->start(config, idempotency_key);
}

bool HttpClient::cancel(const StepKey &key) {
    auto it = core_->by_key.find(key);
    if (it == core_->by_key.end()) return false;
    const auto ticket = it->second;
    auto step = core_->steps.find(ticket);
    if (step != core_->steps.end()) step->second->abort();
    core_->detach(ticket, key);
    return true;
}

std::size_t HttpClient::cancel_instance(const std::string &instance_id) {
    std::vector<StepKey> keys;
    for (auto it = core_->by_key.lower_bound(StepKey{instance_id, {}, {}});
         it != core_->by_key.end() && it->first.instance_id == instance_id; ++it)
        keys.push_back(it->first);
    for (const auto &key : keys) cancel(key);
    return keys.size();
}

void HttpClient::stop() {
    const auto steps = std::move(core_->steps);
    core_->steps.clear();
    core_->by_key.clear();
    core_->gate.clear();
    for (const auto &[ticket, step] : steps) step->abort();
}

std::size_t HttpClient::in_flight() const { return core_->gate.holding(); }

std::size_t HttpClient::queued() const { return core_->gate.waiting(); }

}  // namespace pgd::daemon::http
