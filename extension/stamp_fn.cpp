// Scope stamps for the SQL that reads them (df.instance_nodes, the daemon's
// retention sweep): df._stamp_execution and df._stamp_generation parse a
// stamp with common/protocol, the one definition of its form, instead of
// SQL string surgery of its own. Pure functions of their arguments.
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"
}

#include <cstdint>
#include <optional>

#include "common/protocol.hpp"
#include "extension/boundary.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(df__stamp_execution);
PG_FUNCTION_INFO_V1(df__stamp_generation);
Datum df__stamp_execution(PG_FUNCTION_ARGS);
Datum df__stamp_generation(PG_FUNCTION_ARGS);
}

namespace {

// Runs a stamp parser in the C++ zone: NULL for a stamp that does not parse.
template <class F>
Datum number_or_null(FunctionCallInfo fcinfo, F &&parse) {
    pgd::Failure failure;
    std::optional<std::int64_t> value;
    if (!pgd::cpp_zone(failure, [&] { value = parse(); })) pgd::raise(failure);
    if (!value) PG_RETURN_NULL();
    PG_RETURN_INT64(*value);
}

}  // namespace

// df._stamp_execution(stamp text) -> bigint: the execution of the stamp's
// root scope; NULL when the stamp is not well formed.
Datum df__stamp_execution(PG_FUNCTION_ARGS) {
    const char *stamp = text_to_cstring(PG_GETARG_TEXT_PP(0));
    return number_or_null(fcinfo, [&] {
        const auto parsed = durable::protocol::parse_stamp(stamp);
        return parsed ? std::optional<std::int64_t>(parsed->execution) : std::nullopt;
    });
}

// df._stamp_generation(stamp text, parent_stamp text, child_root_id text) ->
// bigint: the generation of the child scope of parent_stamp rooted at
// child_root_id that the stamp lies in; NULL when it lies elsewhere.
Datum df__stamp_generation(PG_FUNCTION_ARGS) {
    const char *stamp = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const char *parent = text_to_cstring(PG_GETARG_TEXT_PP(1));
    const char *child = text_to_cstring(PG_GETARG_TEXT_PP(2));
    return number_or_null(fcinfo, [&] { return durable::protocol::child_generation(stamp, parent, child); });
}
