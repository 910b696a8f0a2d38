// Condition truthiness (§12) and the JsonText view under it. Properties:
// judging never throws; a text JsonText accepts is walked completely without
// a report, and its whitespace-padded form gets the same verdict.
#include "common/json_text.hpp"
#include "common/truthiness.hpp"
#include "fuzz_common.hpp"

namespace {

// Visits every value (an explicit stack: the input may nest deeply).
void walk(const durable::JsonText &root) {
    std::vector<durable::JsonText> stack{root};
    while (!stack.empty()) {
        const durable::JsonText value = stack.back();
        stack.pop_back();
        (void)value.boolean();
        (void)value.number_is_zero();
        (void)value.string();
        (void)value.rows();
        (void)value.member("rows");
        for (const auto &element : value.elements()) stack.push_back(element);
        for (const auto &member : value.members()) stack.push_back(member.second);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const std::string text = pgd::fuzz::text_of(data, size);
    const bool verdict = durable::is_truthy(text);
    if (const auto json = durable::JsonText::parse(text)) {
        walk(*json);
        pgd::fuzz::require(durable::is_truthy(" \n" + text + "\t ") == verdict);
    }
    return 0;
}
