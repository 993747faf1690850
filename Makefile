# engram — the two commands: `make run` and `make test`. Everything else is a helper.
#   make run        install missing deps, Release build, serve MCP over HTTP on 127.0.0.1:8765
#                   with the embedded store (ENGRAM_HTTP=host:port to change)
#   make test       install missing deps, build, run every test through CTest
#   make test-asan  the same under AddressSanitizer + UndefinedBehaviorSanitizer (Debug)
#   make bench      build and run the benchmarks in bench/ (the storage ones against a
#                   throwaway PostgreSQL cluster, as make test)
#   make eval       retrieval quality on bench/eval (Recall@k, MRR, nDCG; three modes)
#   make fuzz       libFuzzer over the JSON-RPC framing and parser (FUZZ_SECONDS, default 30)

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 30
CMAKE_FLAGS ?=
DEPS_STAMP := $(BUILD_DIR)/.deps-installed

.PHONY: all deps build run test test-asan bench eval fuzz clean

all: build

# install-deps is idempotent and fast when nothing is missing; the stamp skips even
# that check until the script changes.
$(DEPS_STAMP): scripts/install-deps tests/e2e/node/package-lock.json models/package-lock.json
	scripts/install-deps
	@mkdir -p $(BUILD_DIR) && touch $@

deps: $(DEPS_STAMP)

$(BUILD_DIR)/CMakeCache.txt: $(DEPS_STAMP)
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

ENGRAM_HTTP ?= 127.0.0.1:8765

run: build
	@$(BUILD_DIR)/engram serve --http $(ENGRAM_HTTP)

# The PostgreSQL cases run against a throwaway cluster (scripts/pg-test-cluster: initdb in a
# temp folder, Unix socket only), the Turso cases against one throwaway tursodb on a free
# loopback port (scripts/turso-test-server); both are stopped and removed afterwards even
# when tests fail. ENGRAM_REQUIRE_TURSO=1: a Turso case without its server fails, never skips.
test: build
	@pgdir=$$(mktemp -d /tmp/engram-pg.XXXXXX) && tursodir=$$(mktemp -d /tmp/engram-turso.XXXXXX) && \
	trap "$(CURDIR)/scripts/pg-test-cluster stop $$pgdir >/dev/null 2>&1; rm -rf $$pgdir; \
	  $(CURDIR)/scripts/turso-test-server stop $$tursodir >/dev/null 2>&1; rm -rf $$tursodir" EXIT && \
	trap 'exit 130' INT TERM && \
	ENGRAM_TEST_PG="$$($(CURDIR)/scripts/pg-test-cluster start $$pgdir)" && export ENGRAM_TEST_PG && \
	echo "PostgreSQL for tests: $$ENGRAM_TEST_PG" && \
	ENGRAM_TEST_TURSO="$$($(CURDIR)/scripts/turso-test-server start $$tursodir $$$$)" && export ENGRAM_TEST_TURSO && \
	export ENGRAM_REQUIRE_TURSO=1 && \
	echo "Turso for tests: $$ENGRAM_TEST_TURSO" && \
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 600
	$(MAKE) --no-print-directory fuzz

# A brief libFuzzer run (clang, ASan) over the JSON-RPC framing and parser; new inputs
# it finds stay in the build tree, the committed seeds in tests/fuzz/corpus.
fuzz: $(DEPS_STAMP)
	cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DENGRAM_FUZZ=ON -DENGRAM_SANITIZE=ON -DENGRAM_BUILD_TESTS=OFF -DENGRAM_BUILD_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build $(FUZZ_DIR) -j$(JOBS) --target jsonrpc_fuzz
	mkdir -p $(FUZZ_DIR)/corpus/jsonrpc
	$(FUZZ_DIR)/tests/fuzz/jsonrpc_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 \
	  -print_final_stats=1 $(FUZZ_DIR)/corpus/jsonrpc tests/fuzz/corpus/jsonrpc

test-asan: $(DEPS_STAMP)
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DENGRAM_SANITIZE=ON -DENGRAM_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j$(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS) --timeout 1200

bench: build
	$(BUILD_DIR)/bench/core_bench --benchmark_counters_tabular=true
	$(BUILD_DIR)/bench/retrieval_scale_bench --sizes 10000,100000
	bench/mcp/run.sh $(BUILD_DIR)/engram
	bench/storage/run.sh $(BUILD_DIR)
	bench/turso/run.sh $(BUILD_DIR) all

eval: build
	$(BUILD_DIR)/bench/retrieval_eval --dir bench/eval

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR)
