// Catch2 entry point for the unit tests (no database, no network).
#define CATCH_CONFIG_MAIN
#include "catch_compat.hpp"
