// See helper_guard.hpp. PG zone only.
extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

#include <cstring>

#include "extension/helper_guard.hpp"
#include "extension/pg_compat.hpp"

namespace {

// What the last helper of this backend returned, and in which statement.
struct LastHelperCall {
    TimestampTz statement_start;
    LocalTransactionId transaction;
    char helper[32];
    char returned[64];
};
LastHelperCall last_call = {0, InvalidLocalTransactionId, "", ""};

bool in_current_statement(const LastHelperCall &call) {
    return call.helper[0] != '\0' && call.transaction == pgd_my_local_xid() &&
           call.statement_start == GetCurrentStatementStartTimestamp();
}

}  // namespace

void pgd_note_helper_call(const char *helper, const char *returned) {
    last_call.statement_start = GetCurrentStatementStartTimestamp();
    last_call.transaction = pgd_my_local_xid();
    strlcpy(last_call.helper, helper, sizeof last_call.helper);
    strlcpy(last_call.returned, returned, sizeof last_call.returned);
}

void pgd_check_composer_input(const char *arg) {
    if (arg == nullptr || !in_current_statement(last_call)) return;
    if (strcmp(arg, last_call.returned) != 0) return;
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("df.%s cannot be used as a workflow step. Call df.%s before df.start().",
                    last_call.helper, last_call.helper)));
}

void pgd_forbid_in_workflow(const char *message) {
    const char *in_workflow = GetConfigOption("df.in_workflow", true, false);
    if (in_workflow != nullptr && strcmp(in_workflow, "true") == 0)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("%s", message)));
}
