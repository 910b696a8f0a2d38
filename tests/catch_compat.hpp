// Catch2 for every test: version 2 (Debian 12) or 3 (Debian 13, the
// PostgreSQL 17 root of `make test-pg17`) behind one include, so the tests
// build against both from one source. Test files include this, never Catch2's
// own headers. Under Catch2 3 the names the tests use from Catch2 2 are
// provided here: the string matchers in namespace Catch, Catch::clara, and
// the main() that CATCH_CONFIG_MAIN used to generate.
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>

#include <string>

namespace Catch {
namespace clara = Clara;
using Matchers::EndsWith;
using Matchers::StartsWith;
inline Matchers::StringContainsMatcher Contains(const std::string &text,
                                                CaseSensitive sensitivity = CaseSensitive::Yes) {
    return Matchers::ContainsSubstring(text, sensitivity);
}
}  // namespace Catch

#ifdef CATCH_CONFIG_MAIN
int main(int argc, char *argv[]) { return Catch::Session().run(argc, argv); }
#endif
#else
#include <catch2/catch.hpp>
#endif
