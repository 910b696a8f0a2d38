// The daemon's parser of df._run_step's outcome JSON. Properties: it never
// throws; a malformed outcome is a failed, unrecorded step; a completed
// outcome's result is a row set; the error quoting a malformed outcome is
// valid UTF-8 when the outcome is (it is stored as text).
#include "common/json_text.hpp"
#include "daemon/run_step_outcome.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    using pgd::daemon::StepResult;
    const std::string outcome = pgd::fuzz::text_of(data, size);
    const StepResult result = pgd::daemon::parse_run_step_outcome(outcome);
    // The malformed-outcome error quotes the input: valid UTF-8 stays valid.
    if (!result.recorded && pgd::fuzz::valid_utf8_text(outcome))
        pgd::fuzz::require(pgd::fuzz::valid_utf8_text(result.error));
    if (!result.recorded) pgd::fuzz::require(result.kind == StepResult::Kind::failed);
    if (result.kind == StepResult::Kind::completed) {
        const auto json = durable::JsonText::parse(result.result);
        pgd::fuzz::require(json && json->rows());
    }
    return 0;
}
