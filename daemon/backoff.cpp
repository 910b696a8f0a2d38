#include "daemon/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace pgd::daemon {

std::chrono::milliseconds apply_jitter(std::chrono::milliseconds base, double jitter,
                                       double unit_random) {
    const double factor = 1.0 + jitter * (2.0 * unit_random - 1.0);
    const double ms = std::max(0.0, static_cast<double>(base.count()) * factor);
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

Backoff::Backoff(BackoffPolicy policy, std::uint32_t seed)
    : policy_(policy), base_(policy.initial), rng_(seed) {}

std::chrono::milliseconds Backoff::next() {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const auto delay = apply_jitter(base_, policy_.jitter, unit(rng_));
    ++attempts_;
    const double grown = static_cast<double>(base_.count()) * policy_.multiplier;
    base_ = std::min(policy_.max,
                     std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(grown))));
    return delay;
}

void Backoff::reset() {
    base_ = policy_.initial;
    attempts_ = 0;
}

}  // namespace pgd::daemon
