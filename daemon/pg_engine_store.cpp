#include "daemon/pg_engine_store.hpp"

#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "daemon/bookkeeping_retry.hpp"
#include "daemon/executor.hpp"
#include "daemon/logging.hpp"
#include "daemon/store.hpp"

namespace pgd::daemon {

namespace {
std::shared_ptr<spdlog::logger> log() { return logger("orchestrator"); }
}  // namespace

PgEngineStore::PgEngineStore(boost::asio::io_context &io, std::string conninfo)
    : io_(io), conninfo_(std::move(conninfo)), conn_(std::make_shared<std::unique_ptr<pqxx::connection>>()) {}

PgEngineStore::~PgEngineStore() { detach(); }

void PgEngineStore::attach(const std::string &epoch, PermanentFailure on_permanent_failure) {
    detach();
    epoch_ = epoch;
    on_permanent_failure_ = std::move(on_permanent_failure);
    attached_ = true;
}

void PgEngineStore::detach() {
    attached_ = false;
    ++generation_;
    waiting_.clear();
    batch_in_flight_ = false;
    // The session belongs to its worker: let the worker drop it.
    if (worker_) {
        auto slot = conn_;
        worker_->post([slot]() { slot->reset(); });
        worker_.reset();  // joins after the posted jobs
    }
}

// One call on its way through the session. `run` executes on the worker
// thread (and again, alone, when its batch failed), the rest on the io thread.
struct PgEngineStore::Call {
    std::optional<std::string> instance;
    int attempt = 1;
    std::function<void(pqxx::transaction_base &)> run;  // the statements; keeps the result for `deliver`
    bool one_read = false;                  // one statement that writes nothing (submit_read)
    std::function<void()> deliver;          // hands the kept result to the caller's `then`
    bool failed = false;                    // set by the worker, with:
    std::string error;
    std::string sqlstate;
};

namespace {

struct Failure {
    std::string error;
    std::string sqlstate;  // empty: the session is lost (or could not be opened)
};

// Runs `body` in one transaction of the session (`autocommit`: without one,
// for a single read), opening the session first when there is none; what
// went wrong, if anything.
std::optional<Failure> in_transaction(std::unique_ptr<pqxx::connection> &conn, const std::string &conninfo,
                                      const std::string &epoch,
                                      const std::function<void(pqxx::transaction_base &)> &body,
                                      bool autocommit = false) {
    try {
        if (!conn) {
            conn = store::open_engine_session(conninfo, epoch);  // only a session opened in full is kept
        }
        if (autocommit) {
            pqxx::nontransaction tx(*conn);
            body(tx);
            return std::nullopt;
        }
        pqxx::work tx(*conn);
        body(tx);
        tx.commit();
        return std::nullopt;
    } catch (const pqxx::broken_connection &e) {
        conn.reset();
        return Failure{e.what(), ""};
    } catch (const pqxx::sql_error &e) {
        if (conn && !conn->is_open()) conn.reset();
        return Failure{e.what(), e.sqlstate()};
    } catch (const std::exception &e) {
        if (conn && !conn->is_open()) conn.reset();
        return Failure{e.what(), "XX000"};
    }
}

}  // namespace

void PgEngineStore::run_batch(std::vector<std::shared_ptr<Call>> &batch, std::unique_ptr<pqxx::connection> &conn,
                              const std::string &conninfo, const std::string &epoch) {
    auto mark = [](Call &call, const Failure &failure) {
        call.failed = true;
        call.error = failure.error;
        call.sqlstate = failure.sqlstate;
    };
    if (batch.size() > 1) {
        const auto failure = in_transaction(conn, conninfo, epoch, [&batch](pqxx::transaction_base &tx) {
            for (const auto &call : batch) call->run(tx);
        });
        if (!failure) {
            log()->debug("bookkeeping: {} calls in one transaction", batch.size());
            return;
        }
        log()->debug("bookkeeping: a transaction of {} calls failed, each again alone: {}", batch.size(),
                     primary_message(failure->error));
        if (failure->sqlstate.empty()) {  // no session: each call alone would fail the same way
            for (const auto &call : batch) mark(*call, *failure);
            return;
        }
        // Nothing of the batch was kept: each call again, alone, for its own outcome.
    }
    for (const auto &call : batch)
        if (const auto failure = in_transaction(conn, conninfo, epoch, call->run, call->one_read))
            mark(*call, *failure);
}

template <class R>
void PgEngineStore::submit(std::optional<std::string> instance, std::function<R(pqxx::work &)> job,
                           std::function<void(R)> then) {
    if (!attached_) return;
    auto call = std::make_shared<Call>();
    auto result = std::make_shared<std::optional<R>>();
    call->instance = std::move(instance);
    // Always run in a pqxx::work (in_transaction without autocommit): one_read is false.
    call->run = [job = std::move(job), result](pqxx::transaction_base &tx) {
        *result = job(dynamic_cast<pqxx::work &>(tx));
    };
    call->deliver = [then = std::move(then), result]() { then(std::move(**result)); };
    enqueue(std::move(call));
}

template <class R>
void PgEngineStore::submit_read(std::optional<std::string> instance, std::function<R(pqxx::transaction_base &)> job,
                                std::function<void(R)> then) {
    if (!attached_) return;
    auto call = std::make_shared<Call>();
    auto result = std::make_shared<std::optional<R>>();
    call->instance = std::move(instance);
    call->one_read = true;
    call->run = [job = std::move(job), result](pqxx::transaction_base &tx) { *result = job(tx); };
    call->deliver = [then = std::move(then), result]() { then(std::move(**result)); };
    enqueue(std::move(call));
}

void PgEngineStore::enqueue(std::shared_ptr<Call> call) {
    waiting_.push_back(std::move(call));
    send_batch();
}

void PgEngineStore::send_batch() {
    if (batch_in_flight_ || waiting_.empty() || !attached_) return;
    if (!worker_) worker_ = std::make_unique<DbWorker>("state");
    auto batch = std::make_shared<std::vector<std::shared_ptr<Call>>>();
    // A call that failed before goes alone: its trouble stays with it.
    const auto alone = [](const Call &call) { return call.attempt > 1; };
    do {
        batch->push_back(std::move(waiting_.front()));
        waiting_.pop_front();
    } while (!waiting_.empty() && batch->size() < kMaxBatch && !alone(*batch->front()) && !alone(*waiting_.front()));
    batch_in_flight_ = true;
    using Clock = std::chrono::steady_clock;
    const auto sent = Clock::now();
    worker_->post([this, batch, sent, generation = generation_, slot = conn_, conninfo = conninfo_,
                   epoch = epoch_]() {
        const auto began = Clock::now();
        run_batch(*batch, *slot, conninfo, epoch);
        const auto ran = Clock::now();
        boost::asio::post(io_, [this, batch, sent, began, ran, generation] {
            if (generation != generation_ || !attached_) return;
            // Where a bookkeeping call's time goes (bench/run.sh's dispatch breakdown).
            if (log()->should_log(spdlog::level::debug)) {
                const auto us = [](Clock::duration d) {
                    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
                };
                log()->debug("bookkeeping timeline: {} call(s), to worker {} us, statements {} us, back {} us",
                             batch->size(), us(began - sent), us(ran - began), us(Clock::now() - ran));
            }
            // Still "in flight" while the results are handed out: calls made
            // by the callbacks wait and leave together afterwards.
            for (const auto &call : *batch) {
                if (generation != generation_) return;  // a callback detached the store
                finish(call);
            }
            batch_in_flight_ = false;
            send_batch();
        });
    });
}

void PgEngineStore::finish(const std::shared_ptr<Call> &call) {
    if (!call->failed) {
        call->deliver();
        return;
    }
    if (!retry_bookkeeping(call->sqlstate, call->instance.has_value(), call->attempt)) {
        log()->error("instance {}: bookkeeping keeps failing: {}", *call->instance, primary_message(call->error));
        if (on_permanent_failure_) on_permanent_failure_(*call->instance, primary_message(call->error));
        return;
    }
    const auto delay = bookkeeping_retry_delay(call->attempt);
    const auto level = call->attempt < 3 ? spdlog::level::debug : spdlog::level::warn;
    log()->log(level, "bookkeeping{}{} failed (attempt {}), retrying in {} ms: {}", call->instance ? " of instance " : "",
               call->instance.value_or(""), call->attempt, delay.count(), primary_message(call->error));
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
    timer->async_wait([this, timer, call, generation = generation_](const boost::system::error_code &ec) {
        if (ec || generation != generation_ || !attached_) return;
        ++call->attempt;
        call->failed = false;
        enqueue(call);
    });
}

void PgEngineStore::submit_void(std::optional<std::string> instance, std::function<void(pqxx::work &)> job,
                                Done then) {
    submit<bool>(
        std::move(instance),
        [job = std::move(job)](pqxx::work &tx) {
            job(tx);
            return true;
        },
        [then = std::move(then)](bool) {
            if (then) then();
        });
}

void PgEngineStore::write_secret(const std::string &secret, Done then) {
    submit_void(std::nullopt,
                [secret, epoch = epoch_](pqxx::work &c) { store::write_daemon_secret(c, secret, epoch); },
                std::move(then));
}

void PgEngineStore::active_instance_ids(Then<std::vector<std::string>> then) {
    submit_read<std::vector<std::string>>(
        std::nullopt, [](pqxx::transaction_base &c) { return store::active_instance_ids(c); }, std::move(then));
}

void PgEngineStore::load_instance(const std::string &id, Then<std::optional<store::LoadedInstance>> then) {
    submit_read<std::optional<store::LoadedInstance>>(
        id, [id](pqxx::transaction_base &c) { return store::load_instance(c, id); }, std::move(then));
}

void PgEngineStore::apply_effects(const std::string &id, std::int64_t execution,
                                  std::shared_ptr<const durable::engine::Effects> effects, Then<bool> then) {
    submit<bool>(
        id, [id, execution, effects](pqxx::work &c) { return store::apply_effects(c, id, execution, *effects); },
        std::move(then));
}

void PgEngineStore::fail_instance(const std::string &id, const std::string &error) {
    submit_void(std::nullopt,
                [id, error](pqxx::work &c) { store::fail_instance(c, id, error, std::nullopt); }, nullptr);
}

void PgEngineStore::record_activation(const std::string &id, std::int64_t execution,
                                      const durable::engine::ActivationWrite &write, Done then) {
    submit_void(id, [id, execution, write](pqxx::work &c) { store::record_activation(c, id, execution, write); },
                std::move(then));
}

void PgEngineStore::consume_signals(const std::string &id, std::vector<durable::engine::SignalWait> waits,
                                    Then<std::vector<DeliveredSignal>> then) {
    submit<std::vector<DeliveredSignal>>(
        id,
        [id, waits = std::move(waits)](pqxx::work &c) {
            std::vector<DeliveredSignal> delivered;
            for (const auto &wait : waits)
                if (auto result = store::consume_signal(c, id, wait.stamp, wait.node_id, wait.signal_name))
                    delivered.emplace_back(wait, *result);
            return delivered;
        },
        std::move(then));
}

void PgEngineStore::mark_running(std::vector<std::string> ids, Done then) {
    submit_void(std::nullopt, [ids = std::move(ids)](pqxx::work &c) { store::mark_running(c, ids); },
                std::move(then));
}

void PgEngineStore::instance_state(const std::string &id, Then<std::optional<store::InstanceState>> then) {
    submit_read<std::optional<store::InstanceState>>(
        id, [id](pqxx::transaction_base &c) { return store::instance_state(c, id); }, std::move(then));
}

void PgEngineStore::instance_states(std::vector<std::string> ids, bool all_active,
                                    Then<std::vector<store::NamedInstanceState>> then) {
    submit_read<std::vector<store::NamedInstanceState>>(
        std::nullopt,
        [ids = std::move(ids), all_active](pqxx::transaction_base &c) { return store::instance_states(c, ids, all_active); },
        std::move(then));
}

void PgEngineStore::record_cancelled(const std::string &id, std::int64_t execution,
                                     std::vector<durable::engine::RecordKey> steps, const std::string &error) {
    submit_void(id,
                [id, execution, steps = std::move(steps), error](pqxx::work &c) {
                    store::record_cancelled(c, id, execution, steps, error);
                },
                nullptr);
}

void PgEngineStore::has_http_privilege(const std::string &id, std::int64_t role_oid, Then<bool> then) {
    submit_read<bool>(
        id, [role_oid](pqxx::transaction_base &c) { return store::has_http_privilege(c, role_oid); }, std::move(then));
}

}  // namespace pgd::daemon
