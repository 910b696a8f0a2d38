// spdlog setup: one named logger per module, all writing to stderr (journald,
// the container runtime or the server's log collector capture it).
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace pgd::daemon {

// Sets the default level ("info", "debug", ...) for every module logger; the
// SPDLOG_LEVEL environment variable may then override per module
// (e.g. SPDLOG_LEVEL=info,link=debug). Call once, before any logger() call.
void init_logging(const std::string &level);

// The logger of one module ("lifecycle", "link", "signals", ...), created on
// first use with the shared stderr sink.
std::shared_ptr<spdlog::logger> logger(const std::string &module);

// Flushes every logger; used before a fast exit.
void flush_logs();

}  // namespace pgd::daemon
