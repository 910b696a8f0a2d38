#include "daemon/async_connection.hpp"

#include <boost/asio/post.hpp>
#include <libpq-fe.h>

namespace pgd::daemon {

CancelHandle::~CancelHandle() { PQfreeCancel(cancel_); }

std::string CancelHandle::send() const {
    char reason[256] = {0};
    if (PQcancel(cancel_, reason, sizeof reason)) return {};
    return reason[0] != '\0' ? reason : "could not send the cancel request";
}

std::shared_ptr<AsyncConnection> AsyncConnection::create(boost::asio::io_context &io) {
    return std::shared_ptr<AsyncConnection>(new AsyncConnection(io));
}

AsyncConnection::AsyncConnection(boost::asio::io_context &io) : io_(io), socket_(io), connect_deadline_(io) {}

AsyncConnection::~AsyncConnection() { close(); }

bool AsyncConnection::is_open() const { return pg_ != nullptr && PQstatus(pg_) == CONNECTION_OK; }

void AsyncConnection::release_socket() {
    ++wait_token_;  // a wait that completed but has not run its handler yet is void
    if (!socket_.is_open()) return;
    // Cancels an outstanding wait (its handler sees operation_aborted) and
    // forgets the descriptor without closing it.
    socket_.release();
}

void AsyncConnection::close() {
    ++generation_;
    release_socket();
    connect_deadline_.cancel();
    connected_ = nullptr;
    done_ = nullptr;
    idle_readable_ = nullptr;
    cancel_.reset();
    backend_pid_ = 0;
    prepared_.clear();
    if (pg_ != nullptr) {
        PQfinish(pg_);
        pg_ = nullptr;
    }
}

// Registers libpq's current socket for one wait; `next` runs when it is
// ready, after the registration is gone again.
void AsyncConnection::wait(Wait what, void (AsyncConnection::*next)()) {
    const int fd = pg_ != nullptr ? PQsocket(pg_) : -1;
    boost::system::error_code ec;
    if (fd >= 0) socket_.assign(fd, ec);
    if (fd < 0 || ec) {
        const std::string why = fd < 0 ? "connection has no socket" : ec.message();
        if (connected_) {
            connect_failed(why);
        } else {
            result_.status = QueryResult::Status::broken;
            if (result_.message.empty()) result_.message = why;
            post_done(std::move(result_));
        }
        return;
    }
    const auto type = what == Wait::read ? boost::asio::posix::stream_descriptor::wait_read
                                         : boost::asio::posix::stream_descriptor::wait_write;
    socket_.async_wait(type, [self = shared_from_this(), token = wait_token_, next](
                                 const boost::system::error_code &) {
        if (token != self->wait_token_) return;  // released (cancelled, closed) meanwhile
        self->release_socket();
        // An error of the wait itself (EBADF, ...) is left to libpq to find:
        // its next call on the socket reports the real reason.
        (self.get()->*next)();
    });
}

void AsyncConnection::connect(const std::string &conninfo, std::chrono::milliseconds timeout, Connected done) {
    close();
    connected_ = std::move(done);
    pg_ = PQconnectStart(conninfo.c_str());
    if (pg_ == nullptr) {
        connect_failed("out of memory");
        return;
    }
    if (PQstatus(pg_) == CONNECTION_BAD) {
        connect_failed(PQerrorMessage(pg_));
        return;
    }
    connect_deadline_.expires_after(timeout);
    connect_deadline_.async_wait(
        [self = shared_from_this(), generation = generation_, timeout](const boost::system::error_code &ec) {
            if (ec || generation != self->generation_ || !self->connected_) return;
            self->connect_failed("timeout expired after " + std::to_string(timeout.count()) + " ms");
        });
    // libpq's protocol: start as if PQconnectPoll had asked to write.
    last_poll_ = PGRES_POLLING_WRITING;
    wait(Wait::write, &AsyncConnection::poll_connect);
}

void AsyncConnection::poll_connect() {
    last_poll_ = PQconnectPoll(pg_);
    switch (last_poll_) {
    case PGRES_POLLING_OK: {
        connect_deadline_.cancel();
        if (PQsetnonblocking(pg_, 1) != 0) {
            connect_failed(PQerrorMessage(pg_));
            return;
        }
        backend_pid_ = PQbackendPID(pg_);
        if (PGcancel *cancel = PQgetCancel(pg_)) cancel_ = std::make_shared<const CancelHandle>(cancel);
        auto done = std::move(connected_);
        connected_ = nullptr;
        boost::asio::post(io_, [self = shared_from_this(), generation = generation_, done = std::move(done)] {
            if (generation == self->generation_) done({});
        });
        return;
    }
    case PGRES_POLLING_READING:
        wait(Wait::read, &AsyncConnection::poll_connect);
        return;
    case PGRES_POLLING_WRITING:
        wait(Wait::write, &AsyncConnection::poll_connect);
        return;
    default:
        connect_failed(PQerrorMessage(pg_));
        return;
    }
}

void AsyncConnection::connect_failed(std::string error) {
    auto done = std::move(connected_);
    close();  // bumps the generation: nothing of this attempt runs later
    if (!done) return;
    boost::asio::post(io_, [done = std::move(done), error = std::move(error)] { done(error); });
}

// Takes `done` as the pending completion; false (and `done` posted with
// the reason) when the session is not open.
bool AsyncConnection::begin(Done done) {
    stop_watching();
    done_ = std::move(done);
    result_ = QueryResult{};
    first_result_ = true;
    if (is_open()) return true;
    result_.message = pg_ != nullptr ? PQerrorMessage(pg_) : "connection is closed";
    post_done(std::move(result_));
    return false;
}

void AsyncConnection::exec(const Statement &statement, Done done) {
    if (!statement.prepared_name.empty()) {
        exec_prepared(statement, std::move(done));
        return;
    }
    if (begin(std::move(done))) send_query(nullptr, statement);
}

void AsyncConnection::exec_prepared(const Statement &statement, Done done) {
    const std::string &name = statement.prepared_name;
    if (prepared_.count(name) != 0) {
        // PREPARE and DEALLOCATE are refused in a step (a restricted
        // operation), so nothing but this class removes it; should it be
        // gone all the same, forget it and prepare it again next time.
        auto forget_if_gone = [weak = weak_from_this(), name, done = std::move(done)](QueryResult result) {
            if (result.sqlstate == "26000")  // invalid_sql_statement_name
                if (auto self = weak.lock()) self->prepared_.erase(name);
            done(std::move(result));
        };
        if (begin(std::move(forget_if_gone))) send_query(&name, statement);
        return;
    }
    // First use in this session: prepare it, then run it from the completion.
    auto then_run = [weak = weak_from_this(), name, statement, done = std::move(done)](QueryResult prepared) mutable {
        auto self = weak.lock();
        if (!self || prepared.status != QueryResult::Status::ok) {
            done(std::move(prepared));
            return;
        }
        self->prepared_.insert(name);
        self->exec_prepared(statement, std::move(done));
    };
    if (!begin(std::move(then_run))) return;
    if (!PQsendPrepare(pg_, name.c_str(), statement.sql.c_str(), static_cast<int>(statement.params.size()),
                       nullptr)) {
        result_.message = PQerrorMessage(pg_);
        post_done(std::move(result_));
        return;
    }
    flush();
}

void AsyncConnection::send_query(const std::string *prepared_name, const Statement &statement) {
    std::vector<const char *> values;
    values.reserve(statement.params.size());
    for (const auto &p : statement.params) values.push_back(p ? p->c_str() : nullptr);
    const int count = static_cast<int>(values.size());
    const int sent = prepared_name != nullptr
                         ? PQsendQueryPrepared(pg_, prepared_name->c_str(), count, values.data(), nullptr, nullptr, 0)
                         : PQsendQueryParams(pg_, statement.sql.c_str(), count, nullptr, values.data(), nullptr,
                                             nullptr, 0);
    if (!sent) {
        result_.message = PQerrorMessage(pg_);
        post_done(std::move(result_));
        return;
    }
    flush();
}

// Until libpq has handed the whole message to the kernel. While it cannot,
// reading what the server sent meanwhile keeps both sides moving.
void AsyncConnection::flush() {
    const int pending = PQflush(pg_);
    if (pending < 0) {
        result_.message = PQerrorMessage(pg_);
        post_done(std::move(result_));
        return;
    }
    if (pending > 0) {
        PQconsumeInput(pg_);
        wait(Wait::write, &AsyncConnection::flush);
        return;
    }
    read_results();
}

void AsyncConnection::read_results() {
    const bool consumed = PQconsumeInput(pg_) != 0;
    while (!PQisBusy(pg_)) {
        PGresult *res = PQgetResult(pg_);
        if (res == nullptr) {
            finish_query();
            return;
        }
        if (first_result_) {
            first_result_ = false;
            switch (PQresultStatus(res)) {
            case PGRES_TUPLES_OK:
            case PGRES_COMMAND_OK:
            case PGRES_SINGLE_TUPLE:
                result_.status = QueryResult::Status::ok;
                result_.rows = PQntuples(res);
                if (result_.rows > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
                    result_.value = std::string(PQgetvalue(res, 0, 0), static_cast<std::size_t>(PQgetlength(res, 0, 0)));
                break;
            default: {
                result_.status = QueryResult::Status::sql_error;
                const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                result_.sqlstate = state != nullptr ? state : "";
                result_.message = PQresultErrorMessage(res);
                break;
            }
            }
        }
        PQclear(res);
    }
    if (!consumed || PQstatus(pg_) == CONNECTION_BAD) {
        // Gone before the end of the results: nothing more will come.
        finish_query();
        return;
    }
    wait(Wait::read, &AsyncConnection::read_results);
}

void AsyncConnection::finish_query() {
    if (PQstatus(pg_) == CONNECTION_BAD) {
        // A server that ends the session (pg_terminate_backend, shutdown)
        // sends its FATAL first; keep it as the reason.
        result_.status = QueryResult::Status::broken;
        if (result_.message.empty()) result_.message = PQerrorMessage(pg_);
    }
    post_done(std::move(result_));
}

// Completions are posted, never run inside exec() or a libpq callback
// chain the caller is still in.
void AsyncConnection::post_done(QueryResult result) {
    auto done = std::move(done_);
    done_ = nullptr;
    if (!done) return;
    if (result.status == QueryResult::Status::broken) {
        release_socket();
        if (pg_ != nullptr && PQstatus(pg_) != CONNECTION_OK) backend_pid_ = 0;
    }
    boost::asio::post(io_, [self = shared_from_this(), generation = generation_, done = std::move(done),
                            result = std::move(result)]() mutable {
        if (generation == self->generation_) done(std::move(result));
    });
}

void AsyncConnection::watch_idle(std::function<void()> readable) {
    stop_watching();
    if (!is_open()) return;
    idle_readable_ = std::move(readable);
    const int fd = PQsocket(pg_);
    boost::system::error_code ec;
    socket_.assign(fd, ec);
    if (ec) return;
    socket_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [self = shared_from_this(), token = wait_token_](const boost::system::error_code &) {
                           if (token != self->wait_token_) return;
                           self->release_socket();
                           auto readable = std::move(self->idle_readable_);
                           self->idle_readable_ = nullptr;
                           if (readable) readable();
                       });
}

void AsyncConnection::stop_watching() {
    idle_readable_ = nullptr;
    release_socket();
}

}  // namespace pgd::daemon
