#include "daemon/work.hpp"

#include "daemon/logging.hpp"

namespace pgd::daemon {

void IdleWork::on_attached(const AttachInfo &info) {
    logger("work")->debug("attached with worker epoch {}", info.epoch_id);
}

void IdleWork::on_wakeup(const Wakeup &wakeup) {
    logger("work")->debug("wake-up for instance {} ({}) noted; graph execution is not enabled yet",
                          wakeup.instance_id, to_string(wakeup.kind));
}

void IdleWork::on_settings(const ServerSettings &) {}

void IdleWork::drain(std::function<void()> done) { done(); }

void IdleWork::on_detached() { logger("work")->debug("detached"); }

}  // namespace pgd::daemon
