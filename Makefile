# aimass: `make demo` runs the product end to end, `make test` runs the tests.
# Caches (cargo target, Go builds, kubectl/helm) live outside the clone under
# $(AIMASS_CACHE_DIR), keyed by version; see scripts/lib.sh.

SHELL := /bin/bash
AIMASS_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/aimass
RUST_VERSION := $(shell rustc --version | awk '{print $$2}')
export CARGO_TARGET_DIR ?= $(AIMASS_CACHE_DIR)/cargo-target-$(RUST_VERSION)
export AIMASS_CACHE_DIR

.PHONY: help generate zoo fmt lint unit-test e2e test fuzz bench-scale bench-console bench-serving bench-drift bench-shadow bench-ensemble bench-trees bench-scoring cluster-up cluster-down cluster-env demo

help:
	@echo "make demo         the whole product on a local cluster: train, serve, score"
	@echo "make test         lint, unit tests, CRD drift check, cluster tests"
	@echo "make e2e          only the cluster tests (local cluster, or KUBECONFIG)"
	@echo "make generate     render crds/*.yaml from the Rust types"
	@echo "make zoo          regenerate tests/zoo/models with the real exporters and onnxruntime"
	@echo "make fmt | lint   format; rustfmt check + clippy -D warnings"
	@echo "make bench-scale  1,000 Models and 1,000 ApiClients against the release operator: RSS, time to current"
	@echo "make bench-console /models and a Model's page for 200 Models of 50 versions against the API server's own list"
	@echo "make bench-serving the release server against the HTTP ceiling and a FastAPI reference, with wrk; start-up of big models"
	@echo "make bench-drift  single-row latency with drift counting off, on, and on with a Reject rule per feature"
	@echo "make bench-shadow the served model's latency with no shadow and a challenger shadowing 10 % and 100 %, c=1 and c=32"
	@echo "make bench-ensemble the zoo's GBDT and MLP alone and as an ensemble, one row at c=1"
	@echo "make bench-trees  our tree operators against onnxruntime on the zoo's and on deep ensembles, 1 to 4,096 rows"
	@echo "make bench-scoring batch scoring of 1 and 10 million rows, CSV and Parquet, against the tree operators alone; 3 shards against 1"
	@echo "make fuzz         fuzz the request decoders, 10 million executions per target (AIMASS_FUZZ_RUNS)"
	@echo "make cluster-up | cluster-down | cluster-env"

generate:
	cargo run --quiet -p aimass-crds --bin crdgen -- --out crds --out charts/aimass/files/crds --reference docs/crd-reference.md

zoo:
	PYTHONHASHSEED=0 "$$(scripts/zoo-venv.sh)/bin/python" tests/zoo/generate.py

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

unit-test:
	cargo test --workspace --locked --exclude aimass-e2e

e2e:
	@scripts/e2e.sh

test: lint unit-test e2e

fuzz:
	@scripts/fuzz.sh

bench-serving:
	@bench/serving.sh

bench-drift:
	@bench/serving.sh --drift

bench-shadow:
	@bench/serving.sh --shadow

bench-ensemble:
	@bench/serving.sh --ensemble

bench-trees:
	@bench/trees.sh

bench-scoring:
	@bench/scoring.sh

bench-scale:
	cargo build --quiet --locked --release -p aimass-operator
	AIMASS_E2E_OPERATOR_PROFILE=release scripts/e2e.sh --test scale -- --ignored --nocapture

bench-console:
	cargo build --quiet --locked --release -p aimass-console
	AIMASS_E2E_CONSOLE_PROFILE=release scripts/e2e.sh --test console_scale -- --ignored --nocapture

cluster-up:
	@scripts/cluster-up.sh

cluster-down:
	@scripts/cluster-down.sh

cluster-env:
	@cat "$${AIMASS_CLUSTER_DIR:-$(CURDIR)/.cluster}/env" 2>/dev/null || { echo "no cluster running: make cluster-up" >&2; exit 1; }

demo:
	@scripts/demo.sh
