// What the orchestrator asks of the database (DESIGN §5: the daemon's
// policies are unit-tested against a fake store). Every call is
// asynchronous: its statements run after those of every earlier call (one
// bookkeeping session, in order), and `then` runs on the io thread once they
// have committed. PgEngineStore is the real one (store_engine.hpp holds its
// SQL); tests/unit/fake_engine_store.hpp keeps the same rows in memory.
//
// Failures are the store's business, so the orchestrator's policies never
// see half-done bookkeeping. A call that fails with a transient error (a
// lock, a lost connection) is retried as it is, after a backoff, while the
// other instances go on (DESIGN §2.13); every call is idempotent, so that is
// safe. A call made for one instance that keeps failing with an error that
// is not transient ends in `on_permanent_failure(id, error)` instead of its
// `then`: the orchestrator fails that instance and nothing else.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/interpreter.hpp"
#include "daemon/store_engine.hpp"

namespace pgd::daemon {

// A queued signal handed to a waiting SIGNAL node, with the node's result.
using DeliveredSignal = std::pair<durable::engine::SignalWait, std::string>;

class EngineStore {
public:
    template <class T>
    using Then = std::function<void(T)>;
    using Done = std::function<void()>;
    using PermanentFailure = std::function<void(const std::string &instance_id, const std::string &error)>;

    virtual ~EngineStore() = default;

    // A new attachment: `epoch` fences every write (DESIGN §2.4, a stale
    // daemon's writes are refused). Calls of an earlier attachment still in
    // flight never reach their `then`.
    virtual void attach(const std::string &epoch, PermanentFailure on_permanent_failure) = 0;
    // Drops every call in flight (their `then` never runs) and the session.
    virtual void detach() = 0;

    // The df._run_step secret of this attachment.
    virtual void write_secret(const std::string &secret, Done then) = 0;
    // Pending and running instances, oldest first.
    virtual void active_instance_ids(Then<std::vector<std::string>> then) = 0;
    virtual void load_instance(const std::string &id, Then<std::optional<store::LoadedInstance>> then) = 0;
    // One batch of interpreter writes in one transaction; false (nothing
    // written) when the instance is no longer live.
    virtual void apply_effects(const std::string &id, std::int64_t execution,
                               std::shared_ptr<const durable::engine::Effects> effects, Then<bool> then) = 0;
    // Never ends in on_permanent_failure: it is what that ends in.
    virtual void fail_instance(const std::string &id, const std::string &error) = 0;
    virtual void record_activation(const std::string &id, std::int64_t execution,
                                   const durable::engine::ActivationWrite &write, Done then) = 0;
    // Each wait takes the oldest queued signal of its name, if any.
    virtual void consume_signals(const std::string &id, std::vector<durable::engine::SignalWait> waits,
                                 Then<std::vector<DeliveredSignal>> then) = 0;
    virtual void mark_running(std::vector<std::string> ids, Done then) = 0;
    virtual void instance_state(const std::string &id, Then<std::optional<store::InstanceState>> then) = 0;
    virtual void instance_states(std::vector<std::string> ids, bool all_active,
                                 Then<std::vector<store::NamedInstanceState>> then) = 0;
    // The 'cancelled' records of interrupted steps (written alone, no instance lock).
    virtual void record_cancelled(const std::string &id, std::int64_t execution,
                                  std::vector<durable::engine::RecordKey> steps, const std::string &error) = 0;
    virtual void has_http_privilege(const std::string &id, std::int64_t role_oid, Then<bool> then) = 0;
};

}  // namespace pgd::daemon
