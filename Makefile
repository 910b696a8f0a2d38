# Thin wrapper around CMake for the two commands a newcomer needs:
#   make run   install what is missing, build, start a local cluster with
#              pg_durable and its daemon, run a demo
#   make test  install what is missing, build, run every test suite (ctest),
#              including the quick chaos run (a few minutes)
#   make chaos the long chaos run: 1,000 workflows under 30 minutes of faults
#              (docs/RELIABILITY.md); CHAOS_ARGS adds options, e.g. --seed N
#   make fuzz  the libFuzzer targets of tests/fuzz (clang, build-fuzz), each
#              run FUZZ_SECONDS (default 60); fails on any finding
#   make test-asan  unit tests and an integration subset under ASan+UBSan
#              (build-asan; docs/RELIABILITY.md, "Sanitizers")
#   make test-pg17  the same ctest suites against PostgreSQL 17, in a Debian 13
#              root made once with debootstrap (build-pg17; README, "Testing")
#
# The PostgreSQL server to build for and install into is the one pg_config
# names, as with PGXS: `make install PG_CONFIG=/usr/lib/postgresql/17/bin/pg_config`
# (default: PostgreSQL 15's, else the first pg_config on PATH). One build
# directory per server: BUILD defaults to build-<major> when PG_CONFIG is given.
PG_CONFIG ?=
# Scripts that start clusters (deploy/local, bench) use the same server.
export PG_CONFIG
# The major version a /usr/lib/postgresql/<major>/bin/pg_config path names
# (scripts/install-deps.sh installs that server's packages); default 15.
PG_MAJOR  ?= $(or $(shell echo '$(PG_CONFIG)' | sed -n 's|.*/postgresql/\([0-9][0-9]*\)/.*|\1|p'),15)
BUILD ?= $(if $(PG_CONFIG),build-$(PG_MAJOR),build)
JOBS  ?= $(shell nproc)
SUDO  := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps configure build install test chaos run stop psql clean bench fuzz test-asan test-pg17

all: build

deps:
	@PGD_PG_MAJOR=$(PG_MAJOR) bash scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(if $(PG_CONFIG),-DPG_CONFIG=$(PG_CONFIG))

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# PostgreSQL loads extensions only from its own directories.
install: build
	$(SUDO) cmake --install $(BUILD)

test: install
	cd $(BUILD) && ctest --output-on-failure

# The long chaos run; its log is $(BUILD)/tests/chaos/chaos-long.log.
CHAOS_ARGS ?=
chaos: install
	cd $(BUILD)/tests/chaos && ./pgd_chaos --mode long $(CHAOS_ARGS)

# libFuzzer targets (tests/fuzz), built by clang in a build dir of their own so
# the gcc build is untouched; each runs FUZZ_SECONDS from the seed corpus.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	@bash scripts/install-deps.sh --fuzz
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DPGD_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Unit tests and an integration subset under AddressSanitizer and UBSan
# (docs/RELIABILITY.md, "Sanitizers"). build-asan instruments common/, the
# daemon and the tests (gcc); PostgreSQL loads the installed, uninstrumented
# extension, so this installs the main build first. -O1 -g1: what ASan
# recommends, and a quicker build than -O2 -g. Sanitizer reports of the
# tests and of every daemon they start land in $(ASAN_BUILD)/asan-logs; any
# report fails the target.
ASAN_BUILD   ?= build-asan
ASAN_TAGS    ?= [daemon],[engine],[hostile],[statuses]
ASAN_ENV      = ASAN_OPTIONS=detect_leaks=1:log_path=$(CURDIR)/$(ASAN_BUILD)/asan-logs/asan \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_BUILD)/asan-logs/ubsan
test-asan: install
	cmake -S . -B $(ASAN_BUILD) -DPGD_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	rm -rf $(ASAN_BUILD)/asan-logs && mkdir -p $(ASAN_BUILD)/asan-logs && chmod 1777 $(ASAN_BUILD)/asan-logs
	$(ASAN_ENV) $(ASAN_BUILD)/tests/pgd_unit_tests
	cd $(ASAN_BUILD)/tests/integration && $(ASAN_ENV) PGD_TEST_DAEMON=$(CURDIR)/$(ASAN_BUILD)/daemon/pg_durable_daemon \
	  ./pgd_integration_tests "$(ASAN_TAGS)"
	@if [ -n "$$(ls -A $(ASAN_BUILD)/asan-logs)" ]; then \
	  echo "test-asan: sanitizer reports:"; head -n 60 $(ASAN_BUILD)/asan-logs/*; exit 1; fi
	@echo "test-asan: unit tests and integration $(ASAN_TAGS) clean under ASan+UBSan"

# The ctest suites against PostgreSQL 17 in a Debian 13 root (made once with
# debootstrap and cached in $(PG17_BUILD)/root; scripts/test-pg17.sh).
# PG17_SUITES=ci: unit, regress and the [engine] integration cases only.
PG17_BUILD  ?= build-pg17
PG17_SUITES ?= all
test-pg17:
	$(SUDO) JOBS=$(JOBS) bash scripts/test-pg17.sh $(PG17_BUILD) $(PG17_SUITES)

# Performance yardsticks on a throw-away cluster (bench/BENCHMARKS.md); not a test.
bench: install
	bash bench/run.sh --quick
	bash bench/scale.sh --quick

run: install
	@bash deploy/local/run.sh

stop:
	@bash deploy/local/stop.sh

psql:
	@bash deploy/local/psql.sh

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD) $(PG17_BUILD)
