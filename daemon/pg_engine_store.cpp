#include "daemon/pg_engine_store.hpp"

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
    // The session belongs to its worker: let the worker drop it.
    if (worker_) {
        auto slot = conn_;
        worker_->post([slot]() { slot->reset(); });
        worker_.reset();  // joins after the posted jobs
    }
}

template <class R>
void PgEngineStore::submit(std::optional<std::string> instance, std::function<R(pqxx::connection &)> job,
                           std::function<void(R)> then, int attempt) {
    if (!attached_) return;
    if (!worker_) worker_ = std::make_unique<DbWorker>("state");
    worker_->post([this, instance, job = std::move(job), then = std::move(then), generation = generation_,
                   slot = conn_, conninfo = conninfo_, epoch = epoch_, attempt]() mutable {
        std::optional<R> result;
        std::string error;
        std::string sqlstate;
        try {
            if (!*slot) {
                *slot = std::make_unique<pqxx::connection>(conninfo);
                store::prepare_session(**slot);
                store::bind_session_epoch(**slot, epoch);
            }
            result = job(**slot);
        } catch (const pqxx::broken_connection &e) {
            slot->reset();
            error = e.what();
        } catch (const pqxx::sql_error &e) {
            error = e.what();
            sqlstate = e.sqlstate();
            if (*slot && !(*slot)->is_open()) slot->reset();
        } catch (const std::exception &e) {
            error = e.what();
            sqlstate = "XX000";
            if (*slot && !(*slot)->is_open()) slot->reset();
        }
        boost::asio::post(io_, [this, instance, job = std::move(job), then = std::move(then), generation, attempt,
                                result = std::move(result), error, sqlstate]() mutable {
            if (generation != generation_ || !attached_) return;
            if (result) {
                then(std::move(*result));
                return;
            }
            if (!retry_bookkeeping(sqlstate, instance.has_value(), attempt)) {
                log()->error("instance {}: bookkeeping keeps failing: {}", *instance, primary_message(error));
                if (on_permanent_failure_) on_permanent_failure_(*instance, primary_message(error));
                return;
            }
            const auto delay = bookkeeping_retry_delay(attempt);
            const auto level = attempt < 3 ? spdlog::level::debug : spdlog::level::warn;
            log()->log(level, "bookkeeping{}{} failed (attempt {}), retrying in {} ms: {}",
                       instance ? " of instance " : "", instance.value_or(""), attempt, delay.count(),
                       primary_message(error));
            auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
            timer->async_wait([this, timer, instance, job = std::move(job), then = std::move(then), generation,
                               attempt](const boost::system::error_code &ec) mutable {
                if (ec || generation != generation_ || !attached_) return;
                submit<R>(instance, std::move(job), std::move(then), attempt + 1);
            });
        });
    });
}

void PgEngineStore::submit_void(std::optional<std::string> instance, std::function<void(pqxx::connection &)> job,
                                Done then) {
    submit<bool>(
        std::move(instance),
        [job = std::move(job)](pqxx::connection &c) {
            job(c);
            return true;
        },
        [then = std::move(then)](bool) {
            if (then) then();
        });
}

void PgEngineStore::write_secret(const std::string &secret, Done then) {
    submit_void(std::nullopt,
                [secret, epoch = epoch_](pqxx::connection &c) { store::write_daemon_secret(c, secret, epoch); },
                std::move(then));
}

void PgEngineStore::active_instance_ids(Then<std::vector<std::string>> then) {
    submit<std::vector<std::string>>(
        std::nullopt, [](pqxx::connection &c) { return store::active_instance_ids(c); }, std::move(then));
}

void PgEngineStore::load_instance(const std::string &id, Then<std::optional<store::LoadedInstance>> then) {
    submit<std::optional<store::LoadedInstance>>(
        id, [id](pqxx::connection &c) { return store::load_instance(c, id); }, std::move(then));
}

void PgEngineStore::apply_effects(const std::string &id, std::int64_t execution,
                                  std::shared_ptr<const durable::engine::Effects> effects, Then<bool> then) {
    submit<bool>(
        id, [id, execution, effects](pqxx::connection &c) { return store::apply_effects(c, id, execution, *effects); },
        std::move(then));
}

void PgEngineStore::fail_instance(const std::string &id, const std::string &error) {
    submit_void(std::nullopt,
                [id, error](pqxx::connection &c) { store::fail_instance(c, id, error, std::nullopt); }, nullptr);
}

void PgEngineStore::record_activation(const std::string &id, std::int64_t execution,
                                      const durable::engine::ActivationWrite &write, Done then) {
    submit_void(id, [id, execution, write](pqxx::connection &c) { store::record_activation(c, id, execution, write); },
                std::move(then));
}

void PgEngineStore::consume_signals(const std::string &id, std::vector<durable::engine::SignalWait> waits,
                                    Then<std::vector<DeliveredSignal>> then) {
    submit<std::vector<DeliveredSignal>>(
        id,
        [id, waits = std::move(waits)](pqxx::connection &c) {
            std::vector<DeliveredSignal> delivered;
            for (const auto &wait : waits)
                if (auto result = store::consume_signal(c, id, wait.stamp, wait.node_id, wait.signal_name))
                    delivered.emplace_back(wait, *result);
            return delivered;
        },
        std::move(then));
}

void PgEngineStore::mark_running(std::vector<std::string> ids, Done then) {
    submit_void(std::nullopt, [ids = std::move(ids)](pqxx::connection &c) { store::mark_running(c, ids); },
                std::move(then));
}

void PgEngineStore::instance_state(const std::string &id, Then<std::optional<store::InstanceState>> then) {
    submit<std::optional<store::InstanceState>>(
        id, [id](pqxx::connection &c) { return store::instance_state(c, id); }, std::move(then));
}

void PgEngineStore::instance_states(std::vector<std::string> ids, bool all_active,
                                    Then<std::vector<store::NamedInstanceState>> then) {
    submit<std::vector<store::NamedInstanceState>>(
        std::nullopt,
        [ids = std::move(ids), all_active](pqxx::connection &c) { return store::instance_states(c, ids, all_active); },
        std::move(then));
}

void PgEngineStore::record_cancelled(const std::string &id, std::int64_t execution,
                                     std::vector<durable::engine::RecordKey> steps, const std::string &error) {
    submit_void(id,
                [id, execution, steps = std::move(steps), error](pqxx::connection &c) {
                    store::record_cancelled(c, id, execution, steps, error);
                },
                nullptr);
}

void PgEngineStore::has_http_privilege(const std::string &id, std::int64_t role_oid, Then<bool> then) {
    submit<bool>(
        id, [role_oid](pqxx::connection &c) { return store::has_http_privilege(c, role_oid); }, std::move(then));
}

}  // namespace pgd::daemon
