// Reconnect backoff: exponential growth with jitter and a cap, so a fleet of
// daemons does not reconnect in lock step (grpc connection-backoff.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace pgd::daemon {

struct BackoffPolicy {
    std::chrono::milliseconds initial{250};
    double multiplier = 2.0;
    std::chrono::milliseconds max{10000};
    double jitter = 0.2;  // each delay is base * (1 ± jitter)
};

// Spreads `base` by ±jitter; `unit_random` in [0, 1) picks the point.
// Pure so tests can pin the random part.
std::chrono::milliseconds apply_jitter(std::chrono::milliseconds base, double jitter,
                                       double unit_random);

class Backoff {
public:
    explicit Backoff(BackoffPolicy policy = {}, std::uint32_t seed = std::random_device{}());

    // Delay to wait before the next attempt; grows the base for the one after.
    std::chrono::milliseconds next();
    // Back to the initial delay, after a connection proved healthy.
    void reset();
    // Attempts handed out since the last reset.
    int attempts() const { return attempts_; }
    const BackoffPolicy &policy() const { return policy_; }

private:
    BackoffPolicy policy_;
    std::chrono::milliseconds base_;
    int attempts_ = 0;
    std::mt19937 rng_;
};

}  // namespace pgd::daemon
