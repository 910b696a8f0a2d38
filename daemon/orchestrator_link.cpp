#include "daemon/orchestrator_link.hpp"

#include <boost/asio/post.hpp>
#include <pqxx/pqxx>

#include "daemon/wakeup.hpp"

namespace pgd::daemon {

namespace {

// Collects df_wakeup payloads while get_notifs() dispatches on the worker,
// coalesced into a bounded inbox (a flood of forged payloads costs bounded
// memory).
class WakeupReceiver final : public pqxx::notification_receiver {
public:
    WakeupReceiver(pqxx::connection_base &conn, WakeupInbox &inbox)
        : pqxx::notification_receiver(conn, kWakeupChannel), inbox_(inbox) {}
    void operator()(const std::string &payload, int) override { inbox_.add(payload); }

private:
    WakeupInbox &inbox_;
};

// libpq messages span lines ("server closed the connection unexpectedly\n\t
// This probably means..."); one log line each is easier to grep.
std::string one_line(const std::string &text) {
    std::string out;
    for (char c : text) {
        const bool space = c == '\n' || c == '\r' || c == '\t' || c == ' ';
        if (space) {
            if (!out.empty() && out.back() != ' ') out += ' ';
        } else {
            out += c;
        }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

// libpqxx 6 silently reconnects a broken connection on next use, dropping
// LISTEN, the advisory lock and session settings without telling us
// (STYLE A6.5). We always rebuild instead, so switch that off. libpqxx 7
// (Debian 13) never reconnects by itself and has no such switch.
void inhibit_silent_reconnect([[maybe_unused]] pqxx::connection &conn) {
#if PQXX_VERSION_MAJOR < 7
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn.inhibit_reactivation(true);
#pragma GCC diagnostic pop
#endif
}

}  // namespace

struct OrchestratorLink::Session {
    std::unique_ptr<pqxx::connection> conn;
    WakeupInbox inbox;
    std::unique_ptr<WakeupReceiver> receiver;  // declared after conn: destroyed first
    bool holds_lock = false;

    pqxx::connection &live() {
        if (!conn || !conn->is_open()) throw pqxx::broken_connection("no connection to the server");
        return *conn;
    }
    void close() noexcept {
        receiver.reset();  // UNLISTEN when still open; errors are swallowed by libpqxx
        conn.reset();
        inbox.take();
        holds_lock = false;
    }
};

OrchestratorLink::OrchestratorLink(boost::asio::io_context &io, std::string conninfo)
    : io_(io), conninfo_(std::move(conninfo)), session_(std::make_unique<Session>()),
      worker_("pgd-orchestr") {}

OrchestratorLink::~OrchestratorLink() {
    worker_.post([this] { session_->close(); });
}

template <class T, class Job>
void OrchestratorLink::run(Job job, Callback<T> done) {
    worker_.post([this, job = std::move(job), done = std::move(done)]() mutable {
        LinkResult<T> result;
        try {
            result.value = job();
        } catch (const pqxx::broken_connection &e) {
            result.failure = LinkFailure::connection_lost;
            result.message = one_line(e.what());
        } catch (const pqxx::sql_error &e) {
            // FATAL errors (admin shutdown, terminated backend) arrive as sql_error.
            const bool gone = !session_->conn || !session_->conn->is_open() ||
                              e.sqlstate().rfind("08", 0) == 0 || e.sqlstate().rfind("57P", 0) == 0;
            result.failure = gone ? LinkFailure::connection_lost : LinkFailure::error;
            result.message = one_line(e.what()) + (e.sqlstate().empty() ? "" : " (SQLSTATE " + e.sqlstate() + ")");
        } catch (const std::exception &e) {
            const bool gone = !session_->conn || !session_->conn->is_open();
            result.failure = gone ? LinkFailure::connection_lost : LinkFailure::error;
            result.message = one_line(e.what());
        }
        boost::asio::post(io_, [done = std::move(done), result = std::move(result)]() mutable {
            done(std::move(result));
        });
    });
}

void OrchestratorLink::connect(Callback<Connected> done) {
    run<Connected>(
        [this] {
            session_->close();
            auto conn = std::make_unique<pqxx::connection>(conninfo_);
            inhibit_silent_reconnect(*conn);
            store::prepare_session(*conn);
            Connected info;
            info.backend_pid = conn->backendpid();
            info.server_version = conn->server_version();
            info.user = conn->username();
            info.dbname = conn->dbname();
            const auto role = store::session_role_attributes(*conn);
            info.superuser = role.superuser;
            info.bypassrls = role.bypassrls;
            session_->conn = std::move(conn);
            return info;
        },
        std::move(done));
}

void OrchestratorLink::show_settings(std::vector<std::string> names,
                                     Callback<std::map<std::string, std::optional<std::string>>> done) {
    run<std::map<std::string, std::optional<std::string>>>(
        [this, names = std::move(names)] { return store::show_settings(session_->live(), names); },
        std::move(done));
}

void OrchestratorLink::probe(Callback<store::ServerState> done) {
    run<store::ServerState>([this] { return store::probe_server(session_->live()); }, std::move(done));
}

void OrchestratorLink::try_lock(Callback<bool> done) {
    run<bool>(
        [this] {
            if (!session_->holds_lock) session_->holds_lock = store::try_orchestrator_lock(session_->live());
            return session_->holds_lock;
        },
        std::move(done));
}

void OrchestratorLink::attach(Callback<Attached> done) {
    run<Attached>(
        [this] {
            auto &conn = session_->live();
            // LISTEN before the epoch exists, so no wake-up committed after
            // attaching can be missed.
            if (!session_->receiver) session_->receiver = std::make_unique<WakeupReceiver>(conn, session_->inbox);
            // add_receiver() swallows a broken connection; look again.
            session_->live();
            Attached attached;
            const auto epoch = store::replace_worker_epoch(conn);
            if (!epoch) {
                session_->receiver.reset();
                attached.extension_gone = true;
                return attached;
            }
            attached.epoch_id = *epoch;
            attached.socket_fd = conn.sock();
            return attached;
        },
        std::move(done));
}

void OrchestratorLink::heartbeat(std::string epoch_id, store::ExtensionIdentity extension,
                                 store::HeartbeatGauges gauges, Callback<store::HeartbeatResult> done) {
    run<store::HeartbeatResult>(
        [this, epoch_id = std::move(epoch_id), extension = std::move(extension), gauges] {
            return store::heartbeat(session_->live(), epoch_id, extension, gauges);
        },
        std::move(done));
}

void OrchestratorLink::drain_wakeups(Callback<WakeupBatch> done) {
    run<WakeupBatch>(
        [this] {
            auto &conn = session_->live();
            conn.get_notifs();
            // get_notifs() returns quietly when libpq has already dropped the
            // connection; that is a lost connection for us.
            session_->live();
            return session_->inbox.take();
        },
        std::move(done));
}

void OrchestratorLink::detach(Callback<Nothing> done) {
    run<Nothing>(
        [this] {
            auto &conn = session_->live();
            session_->receiver.reset();
            session_->inbox.take();
            if (session_->holds_lock) {
                store::release_orchestrator_lock(conn);
                session_->holds_lock = false;
            }
            return Nothing{};
        },
        std::move(done));
}

void OrchestratorLink::shutdown(Callback<Nothing> done) {
    run<Nothing>(
        [this] {
            try {
                if (session_->conn && session_->conn->is_open()) {
                    session_->receiver.reset();
                    // Explicit, so a standby can take over at once rather
                    // than when the server notices the closed socket.
                    if (session_->holds_lock) store::release_orchestrator_lock(*session_->conn);
                }
            } catch (const std::exception &) {
                // closing anyway: the server releases the lock with the session
            }
            session_->close();
            return Nothing{};
        },
        std::move(done));
}

}  // namespace pgd::daemon
