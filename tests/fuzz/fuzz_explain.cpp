// df.explain's pure half (§16): input classification, dry runs of graph
// JSON and SQL, node labels and the tree with every marker. Property: the
// dry runs never throw (they return the error text); rendering a parsed
// graph throws nothing but UserError.
#include "common/explain.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    using namespace durable;
    const std::string text = pgd::fuzz::text_of(data, size);
    const std::string trimmed = explain::trim(text);
    (void)explain::classify(trimmed);
    (void)explain::explain_graph_json(text);
    (void)explain::explain_sql(text);
    (void)explain::marker_for_status(text);
    pgd::fuzz::allowing_user_errors([&] {
        const Graph graph = parse_graph(text);
        for (NodeIndex i = 0; i < graph.size(); ++i) (void)explain::node_label(graph[i]);
        const std::string tree = explain::render_tree(
            graph, [](NodeIndex i) { return static_cast<explain::Marker>(i % 6); });
        explain::InstanceSummary summary{"0123abcd", text, "running", text};
        (void)explain::render_instance(summary, tree);
    });
    return 0;
}
