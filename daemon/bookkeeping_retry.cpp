#include "daemon/bookkeeping_retry.hpp"

#include <algorithm>

namespace pgd::daemon {

bool transient_sqlstate(const std::string &sqlstate) {
    auto starts = [&](const char *prefix) { return sqlstate.rfind(prefix, 0) == 0; };
    return sqlstate.empty() || sqlstate == "55P03" || sqlstate == "57014" || starts("40") || starts("08") ||
           starts("57P") || starts("53");
}

bool retry_bookkeeping(const std::string &sqlstate, bool for_instance, int attempt) {
    return !for_instance || transient_sqlstate(sqlstate) || attempt < kPermanentFailureAttempts;
}

std::chrono::milliseconds bookkeeping_retry_delay(int attempt) {
    const int shift = std::clamp(attempt - 1, 0, 9);
    return std::min(std::chrono::milliseconds(10) * (1 << shift), std::chrono::milliseconds(5000));
}

}  // namespace pgd::daemon
