# orderpulse: the commands the README gives.
#   make run    build and start everything on the embedded default (simulator → local lake → API)
#   make test   install what the tests need, then run the whole suite
#   make bench  criterion benches and the end-to-end benchmarks, results in benches/results/

CARGO  ?= cargo
VENV   := .venv
PYTHON := $(VENV)/bin/python
# Python packages the tests and benches use as independent peers (readers of the lake, DuckDB).
PY_PACKAGES := deltalake==1.6.6 duckdb==1.5.6 polars==2.1.0 pyarrow==26.0.1 'moto[server]==5.2.5' 'psycopg[binary]==3.3.9'

.PHONY: run test bench test-deps bench-deps build lint clean-lake

run: build
	./target/debug/orderpulse run

build:
	$(CARGO) build --locked --bin orderpulse

test: test-deps
	ORDERPULSE_TEST_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --workspace --locked

bench: bench-deps
	$(CARGO) bench --locked --profile release -p orderpulse-benches --bench ingest
	$(CARGO) bench --locked --profile release -p orderpulse-benches --bench stream
	$(CARGO) bench --locked --profile release -p orderpulse-benches --bench lookup
	$(CARGO) build --locked --release --bin orderpulse
	PYTHON=$(abspath $(PYTHON)) benches/e2e/ingest
	PYTHON=$(abspath $(PYTHON)) benches/e2e/http
	benches/e2e/kafka
	PYTHON=$(abspath $(PYTHON)) benches/e2e/kpi

# The Python peers live in a project-local virtualenv, so nothing system-wide changes;
# psql (a real Postgres client for the wire-protocol tests) comes from the system.
test-deps: $(VENV)/.installed
	@command -v psql >/dev/null || (apt-get update -qq && apt-get install -y -qq postgresql-client)

bench-deps: test-deps
	@command -v /usr/bin/time >/dev/null || (apt-get update -qq && apt-get install -y -qq time)

$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check $(PY_PACKAGES)
	touch $@

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

clean-lake:
	rm -rf data/lake
