// The one crossing between the C++ zone (common/, the STL) and the PostgreSQL
// zone (fmgr, SPI, ereport) — DESIGN.md §2.11.
//
// Rules this header enforces:
//  * C++ code runs only inside pgd::cpp_zone(), which catches every exception
//    and turns it into a trivially destructible Failure.
//  * ereport() is called only after the C++ frames are gone, so its longjmp
//    never skips a destructor.
//  * Data handed to PostgreSQL is copied into palloc'd memory with
//    MCXT_ALLOC_NO_OOM inside the try block, so nothing in there can longjmp.
//
// Every SQL-callable function of the extension goes through this header.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "common/errors.hpp"
#include "extension/pg_compat.hpp"

namespace pgd {

// Plain old data: survives a longjmp and needs no destructor.
struct Failure {
    bool failed = false;
    int sqlerrcode = ERRCODE_INTERNAL_ERROR;
    char message[2048] = "";
    char detail[1024] = "";
    char hint[1024] = "";
};

inline void copy_cstr(char *dst, size_t cap, const char *src) noexcept {
    strlcpy(dst, src ? src : "", cap);
}

inline int sqlstate_to_code(const char *s) noexcept {
    if (s == nullptr || std::strlen(s) != 5) return ERRCODE_INTERNAL_ERROR;
    return MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
}

// Runs f in the C++ zone. Returns true on success; on any exception fills
// `failure` and returns false. Never longjmps, never lets an exception out.
template <class F>
bool cpp_zone(Failure &failure, F &&f) noexcept {
    try {
        f();
        return true;
    } catch (const durable::UserError &e) {
        failure.sqlerrcode = sqlstate_to_code(e.sqlstate());
        copy_cstr(failure.message, sizeof failure.message, e.what());
        copy_cstr(failure.detail, sizeof failure.detail, e.detail().c_str());
        copy_cstr(failure.hint, sizeof failure.hint, e.hint().c_str());
    } catch (const std::bad_alloc &) {
        failure.sqlerrcode = ERRCODE_OUT_OF_MEMORY;
        copy_cstr(failure.message, sizeof failure.message, "out of memory");
    } catch (const std::exception &e) {
        failure.sqlerrcode = ERRCODE_INTERNAL_ERROR;
        copy_cstr(failure.message, sizeof failure.message, e.what());
    } catch (...) {
        failure.sqlerrcode = ERRCODE_INTERNAL_ERROR;
        copy_cstr(failure.message, sizeof failure.message, "unknown C++ exception");
    }
    failure.failed = true;
    return false;
}

// Reports a captured failure with ereport(ERROR). Call only from PG-zone code
// that holds no live C++ objects.
[[noreturn]] inline void raise(const Failure &failure) {
    ereport(ERROR,
            (errcode(failure.sqlerrcode), errmsg("%s", failure.message),
             failure.detail[0] ? errdetail("%s", failure.detail) : 0,
             failure.hint[0] ? errhint("%s", failure.hint) : 0));
    pg_unreachable();
}

// Copies a C++ string into a palloc'd text without any possibility of a
// longjmp (size checked first, allocation with MCXT_ALLOC_NO_OOM).
// Throws std::bad_alloc / std::length_error instead; call inside cpp_zone.
inline text *to_text(const std::string &s) {
    if (s.size() > MaxAllocSize - VARHDRSZ - 1) throw std::length_error("result exceeds 1 GB");
    auto *t = static_cast<text *>(palloc_extended(s.size() + VARHDRSZ, MCXT_ALLOC_NO_OOM));
    if (t == nullptr) throw std::bad_alloc();
    SET_VARSIZE(t, s.size() + VARHDRSZ);
    std::memcpy(VARDATA(t), s.data(), s.size());
    return t;
}

// Copies a C++ string into a palloc'd NUL-terminated C string (same rules).
inline char *to_cstring(const std::string &s) {
    if (s.size() > MaxAllocSize - 1) throw std::length_error("string exceeds 1 GB");
    auto *c = static_cast<char *>(palloc_extended(s.size() + 1, MCXT_ALLOC_NO_OOM));
    if (c == nullptr) throw std::bad_alloc();
    std::memcpy(c, s.data(), s.size());
    c[s.size()] = '\0';
    return c;
}

// The common case: a function computing a text result purely in C++.
// f: () -> std::string. Returns the Datum or raises after leaving C++.
template <class F>
Datum text_result(F &&f) {
    Failure failure;
    text *result = nullptr;
    if (!cpp_zone(failure, [&] { result = to_text(f()); })) raise(failure);
    PG_RETURN_TEXT_P(result);
}

// Argument helper: NULL-safe text argument as a palloc'd C string (PG zone).
inline const char *text_arg_or_null(FunctionCallInfo fcinfo, int n) {
    if (PG_ARGISNULL(n)) return nullptr;
    return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

}  // namespace pgd
