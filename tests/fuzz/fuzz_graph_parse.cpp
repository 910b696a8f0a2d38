// Graph JSON: parse_graph, auto_wrap, validation and the canonical text.
// Properties: only UserError escapes; the canonical text of a graph parses
// back into the same canonical text; a copy (graft) has the same text.
#include "common/graph.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const std::string text = pgd::fuzz::text_of(data, size);
    (void)durable::looks_like_graph(text);
    pgd::fuzz::allowing_user_errors([&] {
        const durable::Graph graph = durable::parse_graph(text);
        const std::string canonical = durable::to_json(graph);
        pgd::fuzz::require(durable::to_json(durable::parse_graph(canonical)) == canonical);
        durable::Graph copy;
        copy.set_root(copy.graft(graph));
        pgd::fuzz::require(durable::to_json(copy) == canonical);
        durable::validate_graph(graph);
    });
    pgd::fuzz::allowing_user_errors([&] {
        const durable::Graph wrapped = durable::auto_wrap(text);
        (void)durable::to_json(wrapped);
    });
    return 0;
}
