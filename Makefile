# touchline: the verbs. `make` (or `make help`) lists them; each `## ` comment is its help line.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# Prerequisites run one after another, in the order written: `test` is a sequence of steps.
.NOTPARALLEL:
MAKEFLAGS += --no-builtin-rules --no-print-directory

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

# The servers the tests use; override on the command line or in the environment.
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export REDIS_URL ?= redis://127.0.0.1:6379

SERVICES := bash scripts/services.sh
# Installs the pinned buf into .tools/ on first use; the version is set in the script.
BUF := bash scripts/buf.sh

.PHONY: buf-breaking help demo test lint fmt proto bench bench-activation bench-analytics compare model-truth truth-consistency fuzz-long build clean services fmt-check buf-lint clippy run-tests doc-tests receiver-venv

help: ## List the targets (the default goal)
	@echo "usage: make <target>"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z-]*:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# The demo uses the binary's own database (created when missing) and the Redis cache.
demo: export TOUCHLINE_DATABASE__URL ?= postgres://postgres@127.0.0.1:5432/touchline
demo: export TOUCHLINE_IDENTITY__REDIS_URL ?= $(REDIS_URL)
demo: export TOUCHLINE_WEBHOOKS__ALLOW_PLAIN_HTTP ?= true
demo: export TOUCHLINE_WEBHOOKS__ALLOW_LOOPBACK ?= true
demo: ## Run all five services on 127.0.0.1:50051 with the small demo data set (Ctrl-C stops)
	@DATABASE_URL="$$TOUCHLINE_DATABASE__URL" REDIS_URL="$$TOUCHLINE_IDENTITY__REDIS_URL" $(SERVICES) --create-database
	$(CARGO) build -p touchline
	$(TARGET_DIR)/debug/touchline demo

# Doc tests run before the main suite so that the run ends on the suite's summary, which is
# what CI reads to count the tests.
test: services lint doc-tests run-tests ## What CI runs: services up, every lint gate, doc tests, all tests

lint: fmt-check clippy buf-lint buf-breaking ## Check formatting, clippy (warnings are errors), buf lint and buf breaking of the contracts

fmt: ## Format all Rust code in place
	$(CARGO) fmt --all

proto: buf-lint ## Lint the contracts with buf and build the generated Rust crate
	$(CARGO) build -p touchline-proto

bench: services ## Release-mode benchmarks: pipeline throughput, governance acceptance on `medium`, `large` generation, activation
	$(CARGO) run --release -p touchline-e2e --bin pipeline-bench
	$(CARGO) run --release -p touchline-e2e --bin governance-acceptance -- $(or $(PERSONS),20000)
	$(CARGO) run --release -p touchline-sim --example bench_large -- $(or $(LARGE_PERSONS),1000000)
	$(CARGO) run --release -p touchline-e2e --bin graph-build -- $(or $(GRAPH_PERSONS),20000)
	$(CARGO) run --release -p touchline-e2e --bin activation-bench -- $(ACTIVATION_ARGS)

# ACTIVATION_ARGS=--quick for a short smoke run; see tests/bench/activation.rs for the options.
bench-activation: services ## Release-mode activation alone: event → segment entry → webhook latency at 2,000 events/s, webhook deliveries/s over 10 endpoints (beside a dead one; to slow ones, one in flight against per-person lanes), change feed reads/s
	$(CARGO) run --release -p touchline-e2e --bin activation-bench -- $(ACTIVATION_ARGS)

bench-analytics: services ## Release-mode journey models on 10 M synthetic events of 1 M persons: the models alone, the projection, and the service over PostgreSQL (rebuild, queries, freshness)
	$(CARGO) run --release -p touchline-analytics --example funnel_bench
	$(CARGO) run --release -p touchline-analytics --example journey_bench
	MIMALLOC_PURGE_DELAY=0 $(CARGO) run --release -p touchline-projection --example projection_bench -- --baseline
	$(CARGO) run --release -p touchline-modeling --example journeys_bench

# The peers are installed by scripts/peers.sh into a virtual environment of their own.
compare: services ## Side by side with the peers on the same data: ClickHouse windowFunnel (chdb), ChannelAttribution, lifetimes
	PY=$$(bash scripts/peers.sh | tail -1) && status=0 && \
	  { $$PY bench/funnel_chdb.py || status=1; } && \
	  { $$PY bench/attribution_compare.py || status=1; } && \
	  { $$PY bench/churn_compare.py || status=1; } && \
	  exit $$status

model-truth: services ## Attribution and churn scores through the whole application against the generator's truth, and the same models on the generator's own journeys (PERSONS, SEED, MODEL=logistic|chain)
	$(CARGO) run --release -p touchline-e2e --bin model-truth -- $(or $(PERSONS),20000) $(or $(SEED),42) $(or $(MODEL),logistic)

truth-consistency: ## The uplift game and Markov on the generator's own journeys at growing sizes and several seeds, against the truth: how fast each error shrinks (SIZES, SEEDS)
	$(CARGO) run --release -p touchline-e2e --bin truth-consistency -- $(or $(SIZES),5000,20000,50000,100000) $(or $(SEEDS),3)

fuzz-long: services ## The cross-stage fuzz run on 100,000 arbitrary events through the real services, then random segments over 50 seeds
	$(CARGO) run --release -p touchline-e2e --bin fuzz-pipeline -- $(or $(EVENTS),100000)
	for seed in $$(seq 1 $(or $(SEGMENT_SEEDS),50)); do \
	  SEGMENTS_FUZZ_SEED=$$seed $(CARGO) test -q --release -p touchline-e2e --test e2e -- segments_fuzz || exit 1; \
	done

build: ## Build the whole workspace (debug)
	$(CARGO) build --workspace

clean: ## Remove build output and the local tools in .tools/
	$(CARGO) clean
	rm -rf .tools

services: ## Start the local PostgreSQL and Redis if they are down (quiet when up)
	@$(SERVICES)

fmt-check:
	$(CARGO) fmt --all -- --check

buf-lint:
	$(BUF) lint proto

# The contracts against the previous commit's: a breaking change needs a new package version.
buf-breaking:
	@if git rev-parse --verify -q HEAD~1 >/dev/null; then \
		$(BUF) breaking proto --against '.git#ref=HEAD~1,subdir=proto'; \
	else \
		echo "buf breaking: no previous commit in this clone; nothing to compare against"; \
	fi

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The webhook tests verify our signatures with Python's Standard Webhooks library, installed
# by scripts/webhook-receiver.sh into a virtual environment of its own.
receiver-venv:
	bash scripts/webhook-receiver.sh >/dev/null

# nextest when installed (parallel per test, clear failure report), cargo test otherwise.
run-tests: receiver-venv
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo "$(CARGO) nextest run --workspace --no-fail-fast"; \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		echo "$(CARGO) test --workspace --no-fail-fast"; \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

# nextest does not run doc tests.
doc-tests:
	$(CARGO) test --workspace --doc
