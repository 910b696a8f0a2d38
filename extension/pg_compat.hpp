// PostgreSQL version differences, all in one place: the extension builds
// against PostgreSQL 15 (Debian 12) and 17 (Debian 13; `make test-pg17`) from
// one source. Each difference is one small inline function (or include) keyed
// on PG_VERSION_NUM; the rest of extension/ calls these and never tests the
// version itself. Pure PG zone: nothing here throws or allocates C++ objects.
#pragma once

extern "C" {
#include "postgres.h"
#include "common/jsonapi.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#if PG_VERSION_NUM >= 160000
// 16 moved the varlena macros (SET_VARSIZE, VARDATA, ...) out of postgres.h.
#include "varatt.h"
#include "catalog/pg_database.h"
#endif
#if PG_VERSION_NUM >= 170000
#include "storage/procarray.h"
#else
#include "storage/sinvaladt.h"
#endif
}

// The current local transaction id of this backend (17 moved it into
// PGPROC.vxid).
inline LocalTransactionId pgd_my_local_xid() {
#if PG_VERSION_NUM >= 170000
    return MyProc->vxid.lxid;
#else
    return MyProc->lxid;
#endif
}

// The PGPROC of the backend holding a virtual transaction (NULL if gone):
// 17 replaced BackendIds with ProcNumbers.
inline PGPROC *pgd_vxid_proc(const VirtualTransactionId &vxid) {
#if PG_VERSION_NUM >= 170000
    return ProcNumberGetProc(vxid.procNumber);
#else
    return BackendIdGetProc(vxid.backendId);
#endif
}

// CONNECT (or another right) of a role on a database: 16 replaced the
// per-object-type ACL checks with object_aclcheck.
inline AclResult pgd_database_aclcheck(Oid database_oid, Oid role, AclMode mode) {
#if PG_VERSION_NUM >= 160000
    return object_aclcheck(DatabaseRelationId, database_oid, role, mode);
#else
    return pg_database_aclcheck(database_oid, role, mode);
#endif
}

// Whether text is one valid JSON value. 17's lexer context is caller-owned
// and must be freed; 15's is palloc'd in the current memory context.
inline bool pgd_is_valid_json(char *text, int length, int encoding) {
#if PG_VERSION_NUM >= 170000
    JsonLexContext lex;
    makeJsonLexContextCstringLen(&lex, text, length, encoding, false);
    const bool valid = pg_parse_json(&lex, &nullSemAction) == JSON_SUCCESS;
    freeJsonLexContext(&lex);
    return valid;
#else
    JsonLexContext *lex = makeJsonLexContextCstringLen(text, length, encoding, false);
    return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
#endif
}
