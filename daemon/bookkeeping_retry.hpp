// When a failed bookkeeping call is tried again (DESIGN §2.13). Pure, so the
// rules are unit-tested; PgEngineStore applies them.
#pragma once

#include <chrono>
#include <string>

namespace pgd::daemon {

// Errors that say "not now" rather than "never": a lock held by someone else
// (a user's open transaction on their own instance), a deadlock or
// serialization victim, a statement or lock timeout, a lost connection
// (empty sqlstate) or a commit whose outcome is unknown, a server shutting
// down, a resource limit. Every bookkeeping call is idempotent, so these are
// retried as they are, for as long as they last.
bool transient_sqlstate(const std::string &sqlstate);

// Attempts of a call for one instance that fails with an error that is not
// transient before the instance fails with it.
constexpr int kPermanentFailureAttempts = 5;

// Whether attempt number `attempt` (1-based) that failed with `sqlstate` is
// tried again; a call for no instance in particular always is.
bool retry_bookkeeping(const std::string &sqlstate, bool for_instance, int attempt);

// The pause before attempt `attempt` + 1: 10 ms doubling up to 5 s.
std::chrono::milliseconds bookkeeping_retry_delay(int attempt);

}  // namespace pgd::daemon
