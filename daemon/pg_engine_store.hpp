// EngineStore on PostgreSQL: one bookkeeping session (connected lazily,
// epoch bound) owned by a DbWorker thread, the SQL of store_engine.hpp, and
// the retry rules of bookkeeping_retry.hpp. Lives on the io thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

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

private:
    // Runs `job` on the session, then `then` on the io thread with its
    // result; retried per bookkeeping_retry.hpp. `instance` ties the call to
    // one instance (on_permanent_failure); nullopt: retried until it works.
    template <class R>
    void submit(std::optional<std::string> instance, std::function<R(pqxx::connection &)> job,
                std::function<void(R)> then, int attempt = 1);
    // The same for a job with nothing to hand back.
    void submit_void(std::optional<std::string> instance, std::function<void(pqxx::connection &)> job,
                     Done then);

    boost::asio::io_context &io_;
    std::string conninfo_;
    std::string epoch_;
    PermanentFailure on_permanent_failure_;
    bool attached_ = false;
    std::uint64_t generation_ = 0;  // bumps on detach: late callbacks of an old attachment are dropped
    std::unique_ptr<DbWorker> worker_;
    std::shared_ptr<std::unique_ptr<pqxx::connection>> conn_;  // touched by worker_ jobs only
};

}  // namespace pgd::daemon
