// df.start (SPEC.md §9): validate and materialise the graph, check the
// submitting role and the target database, then write the instance, its
// frozen nodes and the caller's vars snapshot in the caller's transaction and
// wake the daemon once the caller commits (extension/wakeup_relay.hpp), so
// only if it commits.
//
// df.start_once (SPEC §19.2) is the same with an idempotency key: the
// instance row carries it, and the unique index on (submitted_by,
// idempotency_key) makes a concurrent caller with the same pair wait for the
// first one's transaction (PostgreSQL's speculative insertion): when that
// commits, the waiter returns its id and starts nothing; when it rolls back,
// the waiter's own insert goes through. df.start never names the column, so
// the library also serves a 1.0 schema, which has none.
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
}

#include <cstdio>
#include <string>

#include "common/graph.hpp"
#include "extension/boundary.hpp"
#include "extension/guc.hpp"
#include "extension/helper_guard.hpp"
#include "extension/new_start.hpp"
#include "extension/pg_compat.hpp"
#include "extension/start.hpp"
#include "extension/spi_util.hpp"
#include "extension/wakeup_relay.hpp"

namespace {

constexpr int kMaxInstanceIdAttempts = 16;
constexpr int kMaxIdempotencyKeyChars = 200;

// The materialised graph copied into palloc'd memory so it outlives the C++
// zone: parallel arrays of C strings (nullptr = SQL NULL).
struct NodeColumns {
    int count;
    char *root_id;
    char **id;
    char **node_type;
    char **query;
    char **result_name;
    char **left_node;
    char **right_node;
};

std::string random_hex8() {
    uint8 bytes[4];
    if (!pg_strong_random(bytes, sizeof bytes)) throw std::runtime_error("could not generate a random id");
    char hex[9];
    std::snprintf(hex, sizeof hex, "%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
    return hex;
}

char **palloc_column(int count) {
    auto **column = static_cast<char **>(
        palloc_extended(sizeof(char *) * static_cast<size_t>(count), MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO));
    if (column == nullptr) throw std::bad_alloc();
    return column;
}

char *optional_cstring(const std::optional<std::string> &value) {
    return value ? pgd::to_cstring(*value) : nullptr;
}

// C++ zone: parse, validate, assign ids, copy out.
void materialize_into(const char *fut, NodeColumns &out) {
    durable::MaterializedGraph graph = durable::materialize(fut, random_hex8);
    const int n = static_cast<int>(graph.nodes.size());
    out.count = n;
    out.root_id = pgd::to_cstring(graph.root_id);
    out.id = palloc_column(n);
    out.node_type = palloc_column(n);
    out.query = palloc_column(n);
    out.result_name = palloc_column(n);
    out.left_node = palloc_column(n);
    out.right_node = palloc_column(n);
    for (int i = 0; i < n; ++i) {
        const durable::StoredNode &node = graph.nodes[static_cast<size_t>(i)];
        out.id[i] = pgd::to_cstring(node.id);
        out.node_type[i] = pgd::to_cstring(node.node_type);
        out.query[i] = optional_cstring(node.query);
        out.result_name[i] = optional_cstring(node.result_name);
        out.left_node[i] = optional_cstring(node.left_node);
        out.right_node[i] = optional_cstring(node.right_node);
    }
}

}  // namespace

// ---- PG zone from here on: no C++ objects with destructors. ----

namespace {

Datum text_array(char **values, int count) {
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (count > 0 ? count : 1)));
    bool *nulls = static_cast<bool *>(palloc(sizeof(bool) * (count > 0 ? count : 1)));
    for (int i = 0; i < count; ++i) {
        nulls[i] = values[i] == nullptr;
        elems[i] = nulls[i] ? (Datum)0 : CStringGetTextDatum(values[i]);
    }
    int dims[1] = {count};
    int lbs[1] = {1};
    return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

// Checks (4) LOGIN and (5) superuser of SPEC §9 for the captured role.
void check_submitting_role(Oid role) {
    HeapTuple tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
    if (!HeapTupleIsValid(tuple)) elog(ERROR, "cache lookup failed for role %u", role);
    Form_pg_authid form = (Form_pg_authid)GETSTRUCT(tuple);
    bool can_login = form->rolcanlogin;
    bool is_superuser = form->rolsuper;
    char *name = pstrdup(NameStr(form->rolname));
    ReleaseSysCache(tuple);

    if (!can_login)
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("current_user \"%s\" does not have LOGIN privilege. The background worker must "
                        "connect as this role to execute SQL. Grant LOGIN to this role or call df.start() "
                        "as a role with LOGIN.",
                        name)));
    if (is_superuser && !pgd_enable_superuser_instances)
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("pg_durable: superuser instances are disabled. current_user \"%s\" is a superuser, "
                        "but pg_durable.enable_superuser_instances is off. Set "
                        "pg_durable.enable_superuser_instances = on to allow this.",
                        name)));
}

SPIPlanPtr insert_graph_plan = nullptr;
SPIPlanPtr insert_keyed_graph_plan = nullptr;
SPIPlanPtr find_keyed_instance_plan = nullptr;
SPIPlanPtr snapshot_vars_plan = nullptr;

// The instance row and all its nodes in ONE statement (a session's first
// df.start plans one statement for them, not two): the nodes' INSERT reads the
// instance INSERT's RETURNING, so when ON CONFLICT skips the instance row (its
// random id is taken or, for df.start_once, the role's key) nothing at all is
// written and the statement reports 0 rows; otherwise it reports the nodes (a
// graph has at least one). The same ON CONFLICT as two statements had, so the
// same speculative insertion (a concurrent same key waits) and the same rows;
// the nodes' foreign-key checks and the instance counters' statement trigger
// run at the end of the statement, as before at the end of each.
#define PGD_INSERT_NODES_FROM_INSTANCE \
    "INSERT INTO df.nodes (id, instance_id, node_type, query, result_name, left_node, right_node, " \
    "submitted_by, database) " \
    "SELECT n.id, i.id, n.node_type, n.query, n.result_name, n.left_node, n.right_node, $4, $5 " \
    "FROM i, unnest($6, $7, $8, $9, $10, $11) AS n(id, node_type, query, result_name, left_node, right_node)"

constexpr int kGraphParams = 11;

// $1..$11 of the graph statement for instance id `id`.
void graph_values(Datum *values, char *nulls, const char *id, const char *label, const char *root_id, Oid role,
                  const char *database, const NodeColumns &nodes) {
    values[0] = CStringGetTextDatum(id);
    values[1] = label ? CStringGetTextDatum(label) : (Datum)0;
    values[2] = CStringGetTextDatum(root_id);
    values[3] = ObjectIdGetDatum(role);
    values[4] = CStringGetTextDatum(database);
    values[5] = text_array(nodes.id, nodes.count);
    values[6] = text_array(nodes.node_type, nodes.count);
    values[7] = text_array(nodes.query, nodes.count);
    values[8] = text_array(nodes.result_name, nodes.count);
    values[9] = text_array(nodes.left_node, nodes.count);
    values[10] = text_array(nodes.right_node, nodes.count);
    for (int i = 0; i < kGraphParams; ++i) nulls[i] = ' ';
    if (label == nullptr) nulls[1] = 'n';
}

void graph_types(Oid *types) {
    Oid head[5] = {TEXTOID, TEXTOID, TEXTOID, REGROLEOID, TEXTOID};
    for (int i = 0; i < kGraphParams; ++i) types[i] = i < 5 ? head[i] : TEXTARRAYOID;
}

// The id of the instance `role` started with idempotency `key`, or nullptr.
char *find_keyed_instance(Oid role, const char *key) {
    // oid = oid: an operator found without a search (regrole has no = of its own).
    Oid types[2] = {OIDOID, TEXTOID};
    SPIPlanPtr plan = pgd::keep_plan(&find_keyed_instance_plan,
        "SELECT id::text FROM df.instances WHERE submitted_by::oid = $1 AND idempotency_key = $2", 2, types);
    Datum values[2] = {ObjectIdGetDatum(role), CStringGetTextDatum(key)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 1), SPI_OK_SELECT, "lookup of an idempotency key");
    if (SPI_processed == 0) return nullptr;
    return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

// df.start_once's writes. Sets *existing when the role already has an
// instance with this key (committed, or committed by a concurrent caller we
// waited for): then nothing was inserted and that instance's id is returned.
char *insert_keyed_graph(const char *label, const char *root_id, Oid role, const char *database,
                         const NodeColumns &nodes, const char *key, bool *existing) {
    Oid types[kGraphParams + 1];
    graph_types(types);
    types[kGraphParams] = TEXTOID;
    // No conflict target: a taken key and a taken random id both do nothing,
    // and the lookup below tells them apart.
    SPIPlanPtr plan = pgd::keep_plan(&insert_keyed_graph_plan,
        "WITH i AS (INSERT INTO df.instances (id, label, root_node, submitted_by, database, idempotency_key) "
        "VALUES ($1, $2, $3, $4, $5, $12) ON CONFLICT DO NOTHING RETURNING id) " PGD_INSERT_NODES_FROM_INSTANCE,
        kGraphParams + 1, types);
    *existing = false;
    for (int attempt = 0; attempt < kMaxInstanceIdAttempts; ++attempt) {
        pgd::Failure failure;
        char *id = nullptr;
        if (!pgd::cpp_zone(failure, [&] { id = pgd::to_cstring(random_hex8()); })) pgd::raise(failure);
        Datum values[kGraphParams + 1];
        char nulls[kGraphParams + 2];
        graph_values(values, nulls, id, label, root_id, role, database, nodes);
        values[kGraphParams] = CStringGetTextDatum(key);
        nulls[kGraphParams] = ' ';
        nulls[kGraphParams + 1] = '\0';
        pgd::expect_spi(SPI_execute_plan(plan, values, nulls, false, 0), SPI_OK_INSERT, "insert into df.instances");
        if (SPI_processed > 0) return id;
        // A new statement, so (in READ COMMITTED) a new snapshot that sees
        // the row a concurrent caller committed while we waited on the index.
        char *found = find_keyed_instance(role, key);
        if (found != nullptr) {
            *existing = true;
            return found;
        }
        // Otherwise the random id was taken (or the keyed row was deleted
        // since, e.g. by retention): roll again.
    }
    elog(ERROR, "could not find a free instance id after %d attempts", kMaxInstanceIdAttempts);
}

// Inserts the instance row under a fresh random id and its nodes; returns the id.
char *insert_graph(const char *label, const char *root_id, Oid role, const char *database,
                   const NodeColumns &nodes) {
    Oid types[kGraphParams];
    graph_types(types);
    SPIPlanPtr plan = pgd::keep_plan(&insert_graph_plan,
        "WITH i AS (INSERT INTO df.instances (id, label, root_node, submitted_by, database) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING id) " PGD_INSERT_NODES_FROM_INSTANCE,
        kGraphParams, types);
    for (int attempt = 0; attempt < kMaxInstanceIdAttempts; ++attempt) {
        pgd::Failure failure;
        char *id = nullptr;
        if (!pgd::cpp_zone(failure, [&] { id = pgd::to_cstring(random_hex8()); })) pgd::raise(failure);
        Datum values[kGraphParams];
        char nulls[kGraphParams + 1];
        graph_values(values, nulls, id, label, root_id, role, database, nodes);
        nulls[kGraphParams] = '\0';
        pgd::expect_spi(SPI_execute_plan(plan, values, nulls, false, 0), SPI_OK_INSERT, "insert into df.instances");
        if (SPI_processed > 0) return id;  // otherwise the id was taken: roll again
    }
    elog(ERROR, "could not find a free instance id after %d attempts", kMaxInstanceIdAttempts);
}

// Whether `role` has any df.vars row, read as the snapshot statement below
// would read it (SPI's snapshot for a statement that is not read-only: a new
// one in READ COMMITTED, advanced to a new command id). An index probe rather
// than a statement, so a role without vars (the common case) costs df.start no
// statement to plan and never touches df._instance_vars.
bool role_has_vars(Oid role) {
    const Oid relid = get_relname_relid("vars", get_namespace_oid("df", false));
    if (!OidIsValid(relid)) elog(ERROR, "relation df.vars does not exist");
    Relation rel = table_open(relid, AccessShareLock);
    const Oid index = RelationGetPrimaryKeyIndex(rel);
    const AttrNumber owner = get_attnum(relid, "owner");
    if (!OidIsValid(index) || owner == InvalidAttrNumber) elog(ERROR, "df.vars has no primary key on owner");
    ScanKeyData key;
    ScanKeyInit(&key, owner, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(role));
    PushActiveSnapshot(GetTransactionSnapshot());
    CommandCounterIncrement();
    UpdateActiveSnapshotCommandId();
    SysScanDesc scan = systable_beginscan(rel, index, true, GetActiveSnapshot(), 1, &key);
    const bool found = HeapTupleIsValid(systable_getnext(scan));
    systable_endscan(scan);
    PopActiveSnapshot();
    table_close(rel, NoLock);  // the lock is kept to the end of the transaction, as a statement's
    return found;
}

// The caller's df.vars frozen into df._instance_vars.
void snapshot_vars(const char *instance_id, Oid role) {
    if (!role_has_vars(role)) return;
    Oid types[2] = {TEXTOID, OIDOID};
    SPIPlanPtr plan = pgd::keep_plan(&snapshot_vars_plan,
        "INSERT INTO df._instance_vars (instance_id, name, value) "
        "SELECT $1, name, value FROM df.vars WHERE owner::oid = $2",
        2, types);
    Datum values[2] = {CStringGetTextDatum(instance_id), ObjectIdGetDatum(role)};
    pgd::expect_spi(SPI_execute_plan(plan, values, nullptr, false, 0), SPI_OK_INSERT, "snapshot of df.vars");
}

// Both entry points: the checks of SPEC §9 in order, then the writes.
// `key` nullptr = df.start.
char *start_instance(const char *fut, const char *label, const char *database, const char *key) {
    pgd_check_composer_input(fut);

    // (1) parse and validate.
    NodeColumns nodes = {};
    pgd::Failure failure;
    if (!pgd::cpp_zone(failure, [&] { materialize_into(fut, nodes); })) pgd::raise(failure);

    // (3) the effective role: SET ROLE and SECURITY DEFINER count.
    const Oid role = GetUserId();

    // (2) the target database must exist, (2b) and admit the role.
    if (database == nullptr) database = get_database_name(MyDatabaseId);
    const Oid database_oid = get_database_oid(database, true);
    if (!OidIsValid(database_oid))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_DATABASE), errmsg("database \"%s\" does not exist", database)));
    AclResult connect = pgd_database_aclcheck(database_oid, role, ACL_CONNECT);
    if (connect != ACLCHECK_OK) aclcheck_error(connect, OBJECT_DATABASE, database);

    // (4) LOGIN, (5) superuser setting.
    check_submitting_role(role);

    // (6) write everything in the caller's transaction.
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pgd::SavedUser saved = pgd::become_table_owner();
    bool existing = false;
    char *instance_id = key == nullptr
                            ? insert_graph(label, nodes.root_id, role, database, nodes)
                            : insert_keyed_graph(label, nodes.root_id, role, database, nodes, key, &existing);
    if (!existing) snapshot_vars(instance_id, role);
    pgd::restore_user(saved);
    char *result_id = static_cast<char *>(SPI_palloc(strlen(instance_id) + 1));  // outlives SPI_finish
    strcpy(result_id, instance_id);
    SPI_finish();
    if (existing) return result_id;

    // Sent once the caller commits (through the relay, or a NOTIFY queued
    // now): a rollback wakes nobody.
    pgd_wakeup_start(result_id);
    return result_id;
}

}  // namespace

extern "C" {
PG_FUNCTION_INFO_V1(df_start);
Datum df_start(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df_start_once);
Datum df_start_once(PG_FUNCTION_ARGS);
}

// df.start(fut text, label text DEFAULT NULL, database text DEFAULT NULL,
//          transaction_mode text DEFAULT 'caller') (SPEC §9, §19.1). The same
// symbol serves the 3-argument df.start of a 1.0 schema (PG_NARGS() == 3).
Datum df_start(PG_FUNCTION_ARGS) {
    bool new_transaction = false;
    if (PG_NARGS() > 3 && !PG_ARGISNULL(3)) {
        const char *mode = text_to_cstring(PG_GETARG_TEXT_PP(3));
        if (pg_strcasecmp(mode, "new") == 0)
            new_transaction = true;
        else if (pg_strcasecmp(mode, "caller") != 0)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("invalid transaction_mode \"%s\" for df.start(): expected 'caller' or 'new'",
                                   mode)));
    }
    if (new_transaction)
        pgd_forbid_in_workflow(
            "df.start() with transaction_mode => 'new' cannot be called inside a workflow - a df.sql() node "
            "already runs as a single autocommitted statement, so a plain df.start() there is already "
            "independent of any caller transaction");
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("df.start: fut cannot be NULL")));
    const char *fut = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const char *label = pgd::text_arg_or_null(fcinfo, 1);
    const char *database = pgd::text_arg_or_null(fcinfo, 2);
    if (!new_transaction) PG_RETURN_TEXT_P(cstring_to_text(start_instance(fut, label, database, nullptr)));
    // The caller's own checks first (§9 (1)-(5), the exact errors of
    // df.start); the worker repeats them as the same role.
    pgd_check_composer_input(fut);
    (void)pgd_check_start_as(fut, database, GetUserId());
    PG_RETURN_TEXT_P(cstring_to_text(pgd_start_in_new_transaction(fut, label, database)));
}

char *pgd_start_in_current_transaction(const char *fut, const char *label, const char *database) {
    return start_instance(fut, label, database, nullptr);
}

// df.start_once(idempotency_key text, fut text, label text DEFAULT NULL, database text DEFAULT NULL)
Datum df_start_once(PG_FUNCTION_ARGS) {
    // The key first: it decides whether anything starts at all.
    const char *key = pgd::text_arg_or_null(fcinfo, 0);
    if (key == nullptr || key[0] == '\0')
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("Idempotency key cannot be empty")));
    if (pg_mbstrlen(key) > kMaxIdempotencyKeyChars)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("Idempotency key exceeds %d characters", kMaxIdempotencyKeyChars)));
    if (PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("df.start_once: fut cannot be NULL")));
    const char *fut = text_to_cstring(PG_GETARG_TEXT_PP(1));
    const char *label = pgd::text_arg_or_null(fcinfo, 2);
    const char *database = pgd::text_arg_or_null(fcinfo, 3);
    PG_RETURN_TEXT_P(cstring_to_text(start_instance(fut, label, database, key)));
}

// ---- the same path for an explicit role (extension/start.hpp) ----

#include "extension/start.hpp"

namespace {

// (1), (2), (2b), (4), (5) for `role`; returns the effective database.
const char *check_start(const char *fut, const char *database, Oid role, NodeColumns &nodes) {
    pgd::Failure failure;
    if (!pgd::cpp_zone(failure, [&] { materialize_into(fut, nodes); })) pgd::raise(failure);
    if (database == nullptr) database = get_database_name(MyDatabaseId);
    const Oid database_oid = get_database_oid(database, true);
    if (!OidIsValid(database_oid))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_DATABASE), errmsg("database \"%s\" does not exist", database)));
    AclResult connect = pgd_database_aclcheck(database_oid, role, ACL_CONNECT);
    if (connect != ACLCHECK_OK) aclcheck_error(connect, OBJECT_DATABASE, database);
    check_submitting_role(role);
    return database;
}

}  // namespace

char *pgd_check_start_as(const char *fut, const char *database, Oid role) {
    NodeColumns nodes = {};
    return pstrdup(check_start(fut, database, role, nodes));
}

char *pgd_start_as(const char *fut, const char *label, const char *database, Oid role) {
    NodeColumns nodes = {};
    database = check_start(fut, database, role, nodes);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pgd::SavedUser saved = pgd::become_table_owner();
    char *instance_id = insert_graph(label, nodes.root_id, role, database, nodes);
    snapshot_vars(instance_id, role);
    pgd::restore_user(saved);
    char *result_id = static_cast<char *>(SPI_palloc(strlen(instance_id) + 1));
    strcpy(result_id, instance_id);
    SPI_finish();
    pgd_wakeup_start(result_id);
    return result_id;
}
