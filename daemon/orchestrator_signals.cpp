// Signal delivery: hands queued signals to waiting SIGNAL nodes, per name the
// earliest-started wait first (SPEC §13, signal_delivery.hpp). One lookup per
// instance in flight; a wake-up meanwhile asks for another after it.
#include "daemon/orchestrator.hpp"
#include "daemon/orchestrator_instance.hpp"
#include "daemon/signal_delivery.hpp"

namespace pgd::daemon {

void Orchestrator::deliver_signals(const std::string &id) {
    Instance *inst = find(id);
    if (inst == nullptr || inst->waits.empty()) return;
    if (inst->delivering) {
        inst->redeliver = true;
        return;
    }
    inst->delivering = true;
    inst->redeliver = false;
    store_->consume_signals(id, next_in_line(inst->waits), [this, id](std::vector<DeliveredSignal> delivered) {
        Instance *target = find(id);
        if (target == nullptr) return;
        target->delivering = false;
        for (const auto &[wait, result] : delivered) {
            const Key key{wait.stamp, wait.node_id};
            target->waits.erase(key);
            target->timers.erase(key);
            guarded(id, [&] {
                push(*target, target->run->on_signal(wait.stamp, wait.node_id, result, orchestrator_now()));
            });
            target = find(id);
            if (target == nullptr) return;
        }
        // More may be queued for the next waits in line.
        if (!delivered.empty() || target->redeliver) deliver_signals(id);
    });
}

}  // namespace pgd::daemon
