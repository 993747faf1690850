# engram — the two commands: `make run` and `make test`. Everything else is a helper.
#   make run        install missing deps, Release build, start engram on its embedded store
#   make test       install missing deps, build, run every test through CTest
#   make test-asan  the same under AddressSanitizer + UndefinedBehaviorSanitizer (Debug)
#   make bench      build and run the benchmarks in bench/

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
CMAKE_FLAGS ?=
DEPS_STAMP := $(BUILD_DIR)/.deps-installed

.PHONY: all deps build run test test-asan bench clean

all: build

# install-deps is idempotent and fast when nothing is missing; the stamp skips even
# that check until the script changes.
$(DEPS_STAMP): scripts/install-deps
	scripts/install-deps
	@mkdir -p $(BUILD_DIR) && touch $@

deps: $(DEPS_STAMP)

$(BUILD_DIR)/CMakeCache.txt: $(DEPS_STAMP)
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: build
	@$(BUILD_DIR)/engram demo

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 600

test-asan: $(DEPS_STAMP)
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DENGRAM_SANITIZE=ON -DENGRAM_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j$(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS) --timeout 1200

bench: build
	$(BUILD_DIR)/bench/core_bench --benchmark_counters_tabular=true

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
