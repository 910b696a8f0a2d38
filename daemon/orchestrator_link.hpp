// The orchestrator connection: the one session that holds the orchestrator
// lock, LISTENs on df_wakeup and keeps the df._worker_epoch heartbeat. Lock,
// LISTEN and heartbeat share a session on purpose: if it dies, all three are
// gone together and the daemon re-attaches from scratch.
//
// The io thread calls the methods below; each queues a job on the link's
// DbWorker and later receives a LinkResult on the io thread. Only the worker
// thread touches the pqxx::connection.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "daemon/db_worker.hpp"
#include "daemon/wakeup.hpp"
#include "daemon/store.hpp"

namespace pgd::daemon {

enum class LinkFailure {
    none,
    connection_lost,  // the session is gone: reconnect
    error,            // a statement failed on a live session
};

template <class T>
struct LinkResult {
    T value{};
    LinkFailure failure = LinkFailure::none;
    std::string message;
    bool ok() const { return failure == LinkFailure::none; }
};

struct Connected {
    int backend_pid = 0;
    int server_version = 0;
    std::string user;
    std::string dbname;
    bool superuser = false;
    bool bypassrls = false;
};

struct Attached {
    bool extension_gone = false;  // DROP EXTENSION won the race; nothing attached
    std::string epoch_id;
    int socket_fd = -1;           // watch for readability, then drain_wakeups()
};

struct Nothing {};

// What the lifecycle needs from the orchestrator session. Every call returns
// at once; `done` runs later on the io thread. OrchestratorLink is the real
// one; unit tests drive the lifecycle with a scripted fake.
class OrchestratorConnection {
public:
    template <class T>
    using Callback = std::function<void(LinkResult<T>)>;

    virtual ~OrchestratorConnection() = default;

    // Opens a fresh session, closing any previous one first.
    virtual void connect(Callback<Connected> done) = 0;
    virtual void show_settings(std::vector<std::string> names,
                               Callback<std::map<std::string, std::optional<std::string>>> done) = 0;
    virtual void probe(Callback<store::ServerState> done) = 0;
    virtual void try_lock(Callback<bool> done) = 0;
    // LISTEN df_wakeup, then replace the worker epoch.
    virtual void attach(Callback<Attached> done) = 0;
    virtual void heartbeat(std::string epoch_id, store::ExtensionIdentity extension, store::HeartbeatGauges gauges,
                           Callback<store::HeartbeatResult> done) = 0;
    // The df_wakeup notifications received so far, coalesced (bounded).
    virtual void drain_wakeups(Callback<WakeupBatch> done) = 0;
    // UNLISTEN and release the orchestrator lock; the session stays open.
    virtual void detach(Callback<Nothing> done) = 0;
    // detach() where possible, then close the session. Never fails.
    virtual void shutdown(Callback<Nothing> done) = 0;
};

class OrchestratorLink final : public OrchestratorConnection {
public:
    OrchestratorLink(boost::asio::io_context &io, std::string conninfo);
    // Closes the session on the worker thread and joins it.
    ~OrchestratorLink() override;
    OrchestratorLink(const OrchestratorLink &) = delete;
    OrchestratorLink &operator=(const OrchestratorLink &) = delete;

    void connect(Callback<Connected> done) override;
    void show_settings(std::vector<std::string> names,
                       Callback<std::map<std::string, std::optional<std::string>>> done) override;
    void probe(Callback<store::ServerState> done) override;
    void try_lock(Callback<bool> done) override;
    void attach(Callback<Attached> done) override;
    void heartbeat(std::string epoch_id, store::ExtensionIdentity extension, store::HeartbeatGauges gauges,
                   Callback<store::HeartbeatResult> done) override;
    void drain_wakeups(Callback<WakeupBatch> done) override;
    void detach(Callback<Nothing> done) override;
    void shutdown(Callback<Nothing> done) override;

private:
    struct Session;

    template <class T, class Job>
    void run(Job job, Callback<T> done);

    boost::asio::io_context &io_;
    const std::string conninfo_;
    std::unique_ptr<Session> session_;  // worker thread only
    DbWorker worker_;                   // last: its thread dies before session_
};

}  // namespace pgd::daemon
