#include "daemon/logging.hpp"

#include <mutex>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace pgd::daemon {

namespace {

std::mutex &logging_mutex() {
    static std::mutex m;
    return m;
}

spdlog::sink_ptr &shared_sink() {
    static spdlog::sink_ptr sink = [] {
        auto s = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        // Timestamp, pid (several daemons may share one log), level, module.
        s->set_pattern("%Y-%m-%d %H:%M:%S.%e [%P] %l [%n] %v");
        return s;
    }();
    return sink;
}

spdlog::level::level_enum &default_level() {
    static spdlog::level::level_enum level = spdlog::level::info;
    return level;
}

}  // namespace

void init_logging(const std::string &level) {
    std::lock_guard<std::mutex> lock(logging_mutex());
    default_level() = spdlog::level::from_str(level);
    spdlog::set_level(default_level());
    spdlog::flush_on(spdlog::level::trace);
}

std::shared_ptr<spdlog::logger> logger(const std::string &module) {
    std::lock_guard<std::mutex> lock(logging_mutex());
    if (auto existing = spdlog::get(module)) return existing;
    auto created = std::make_shared<spdlog::logger>(module, shared_sink());
    created->set_level(default_level());
    created->flush_on(spdlog::level::trace);
    spdlog::register_logger(created);
    // Per-module overrides from SPDLOG_LEVEL apply to loggers registered so far.
    spdlog::cfg::load_env_levels();
    return created;
}

void flush_logs() {
    spdlog::apply_all([](const std::shared_ptr<spdlog::logger> &l) { l->flush(); });
}

}  // namespace pgd::daemon
