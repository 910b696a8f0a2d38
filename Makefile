# Thin wrapper around CMake for the two commands a newcomer needs:
#   make run   install what is missing, build, start a local cluster with
#              pg_durable and its daemon, run a demo
#   make test  install what is missing, build, run every test suite (ctest),
#              including the quick chaos run (a few minutes)
#   make chaos the long chaos run: 1,000 workflows under 30 minutes of faults
#              (docs/RELIABILITY.md); CHAOS_ARGS adds options, e.g. --seed N
BUILD ?= build
JOBS  ?= $(shell nproc)
SUDO  := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps configure build install test chaos run stop psql clean bench

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

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

# Performance yardsticks on a throw-away cluster (bench/BENCHMARKS.md); not a test.
bench: install
	bash bench/run.sh --quick

run: install
	@bash deploy/local/run.sh

stop:
	@bash deploy/local/stop.sh

psql:
	@bash deploy/local/psql.sh

clean:
	rm -rf $(BUILD)
