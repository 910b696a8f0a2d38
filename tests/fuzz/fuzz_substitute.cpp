// Substitution (§11) in both modes. The input is NUL-separated fields: the
// step text, then the stored results named a, b, c, then the vars v, w.
// Property: only UserError escapes.
#include <map>

#include "common/substitute.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const auto fields = pgd::fuzz::fields_of(pgd::fuzz::text_of(data, size), 6);
    std::map<std::string, std::string> results;
    std::map<std::string, std::string> vars;
    const char *result_names[] = {"a", "b", "c"};
    const char *var_names[] = {"v", "w"};
    for (std::size_t i = 1; i < fields.size(); ++i) {
        if (i <= 3)
            results[result_names[i - 1]] = fields[i];
        else
            vars[var_names[i - 4]] = fields[i];
    }
    durable::SubstitutionContext ctx;
    ctx.instance_id = "0123abcd";
    ctx.label = "label";
    ctx.vars = &vars;
    ctx.results = &results;
    for (const auto mode : {durable::SubstitutionMode::Sql, durable::SubstitutionMode::Raw})
        pgd::fuzz::allowing_user_errors([&] { (void)durable::substitute(fields[0], ctx, mode); });
    return 0;
}
