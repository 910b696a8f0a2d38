// EngineStore on PostgreSQL: one bookkeeping session (connected lazily,
// epoch bound) owned by a DbWorker thread, the SQL of store_engine.hpp, and
// the retry rules of bookkeeping_retry.hpp. Lives on the io thread.
//
// Group commit: calls made while a transaction is in flight wait on the io
// thread and then go together, in order, in one transaction (at most
// kMaxBatch calls). An idle store sends a call at once, so this adds no
// latency; a busy one (10,000 sleepers waking together, many instances
// starting) pays one commit per batch instead of one per call. When a batch
// fails (a user holds one instance's row, say), nothing of it is kept and its
// calls run again one transaction each, so every call still gets its own
// outcome and retry (DESIGN §2.13); a call that failed once runs alone from
// then on.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <pqxx/pqxx>

#include "daemon/db_worker.hpp"
#include "daemon/engine_store.hpp"

namespace pgd::daemon {

class PgEngineStore final : public EngineStore {
public:
    PgEngineStore(boost::asio::io_context &io, std::string conninfo);
    ~PgEngineStore() override;
    PgEngineStore(const PgEngineStore &) = delete;
    PgEngineStore &operator=(const PgEngineStore &) = delete;

    void attach(const std::string &epoch, PermanentFailure on_permanent_failure) override;
    void detach() override;

    void write_secret(const std::string &secret, Done then) override;
    void active_instance_ids(Then<std::vector<std::string>> then) override;
    void load_instance(const std::string &id, Then<std::optional<store::LoadedInstance>> then) override;
    void apply_effects(const std::string &id, std::int64_t execution,
                       std::shared_ptr<const durable::engine::Effects> effects, Then<bool> then) override;
    void fail_instance(const std::string &id, const std::string &error) override;
    void record_activation(const std::string &id, std::int64_t execution,
                           const durable::engine::ActivationWrite &write, Done then) override;
    void consume_signals(const std::string &id, std::vector<durable::engine::SignalWait> waits,
                         Then<std::vector<DeliveredSignal>> then) override;
    void mark_running(std::vector<std::string> ids, Done then) override;
    void instance_state(const std::string &id, Then<std::optional<store::InstanceState>> then) override;
    void instance_states(std::vector<std::string> ids, bool all_active,
                         Then<std::vector<store::NamedInstanceState>> then) override;
    void record_cancelled(const std::string &id, std::int64_t execution,
                          std::vector<durable::engine::RecordKey> steps, const std::string &error) override;
    void has_http_privilege(const std::string &id, std::int64_t role_oid, Then<bool> then) override;

    // Calls committed together at most.
    static constexpr std::size_t kMaxBatch = 128;

private:
    struct Call;
    // Runs `job` in a bookkeeping transaction, then `then` on the io thread
    // with its result; retried per bookkeeping_retry.hpp. `instance` ties the
    // call to one instance (on_permanent_failure); nullopt: retried until it works.
    template <class R>
    void submit(std::optional<std::string> instance, std::function<R(pqxx::work &)> job,
                std::function<void(R)> then);
    // The same for a read of one statement: sent alone, it runs in autocommit
    // (no BEGIN/COMMIT round trips); in a batch, in the batch's transaction.
    template <class R>
    void submit_read(std::optional<std::string> instance, std::function<R(pqxx::transaction_base &)> job,
                     std::function<void(R)> then);
    // The same for a job with nothing to hand back.
    void submit_void(std::optional<std::string> instance, std::function<void(pqxx::work &)> job, Done then);
    void enqueue(std::shared_ptr<Call> call);
    // Sends the waiting calls to the worker unless a batch is in flight.
    void send_batch();
    // The call's result to its caller, or its retry (io thread).
    void finish(const std::shared_ptr<Call> &call);
    // Worker thread: the calls in one transaction or, when that fails, each in its own.
    static void run_batch(std::vector<std::shared_ptr<Call>> &batch, std::unique_ptr<pqxx::connection> &conn,
                          const std::string &conninfo, const std::string &epoch);

    boost::asio::io_context &io_;
    std::string conninfo_;
    std::string epoch_;
    PermanentFailure on_permanent_failure_;
    bool attached_ = false;
    std::uint64_t generation_ = 0;  // bumps on detach: late callbacks of an old attachment are dropped
    std::unique_ptr<DbWorker> worker_;
    std::deque<std::shared_ptr<Call>> waiting_;  // calls not sent yet, in order
    bool batch_in_flight_ = false;
    std::shared_ptr<std::unique_ptr<pqxx::connection>> conn_;  // touched by worker_ jobs only
};

}  // namespace pgd::daemon
