// Materialisation (df.start's validation and the df.nodes rows) and the
// stored form read back (the daemon's load). Properties: only UserError
// escapes; what materialises loads back, validates, and materialises again
// into the same rows (the stored form is a fixed point).
#include <cstdio>

#include "common/graph.hpp"
#include "fuzz_common.hpp"

namespace {

struct CountingIds {
    unsigned next = 0;
    std::string operator()() {
        char id[16];
        std::snprintf(id, sizeof id, "%08x", ++next);
        return id;
    }
};

bool same_rows(const durable::MaterializedGraph &a, const durable::MaterializedGraph &b) {
    if (a.root_id != b.root_id || a.nodes.size() != b.nodes.size()) return false;
    for (std::size_t i = 0; i < a.nodes.size(); ++i) {
        const auto &x = a.nodes[i];
        const auto &y = b.nodes[i];
        if (x.id != y.id || x.node_type != y.node_type || x.query != y.query || x.result_name != y.result_name ||
            x.left_node != y.left_node || x.right_node != y.right_node)
            return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const std::string text = pgd::fuzz::text_of(data, size);
    durable::MaterializedGraph stored;
    try {
        CountingIds ids;
        stored = durable::materialize(text, ids);
    } catch (const durable::UserError &) {
        return 0;
    }
    const durable::Graph loaded = durable::load_stored(stored.root_id, stored.nodes);
    durable::validate_graph(loaded);
    CountingIds again;
    const durable::MaterializedGraph restored = durable::materialize_graph(loaded, again);
    pgd::fuzz::require(same_rows(stored, restored));
    // Rows in another order load into the same graph. (to_json refuses text
    // that is not UTF-8 with a UserError; plain SQL is taken as it comes.)
    std::vector<durable::StoredNode> reversed(stored.nodes.rbegin(), stored.nodes.rend());
    const durable::Graph loaded_reversed = durable::load_stored(stored.root_id, reversed);
    pgd::fuzz::allowing_user_errors(
        [&] { pgd::fuzz::require(durable::to_json(loaded_reversed) == durable::to_json(loaded)); });
    return 0;
}
