# Two entry points matter: `make demo` and `make test`. Both set up .venv from scratch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-dev

.PHONY: demo test lint typecheck unit bench clean soak bench-runtime

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/order_service.py

lint: $(STAMP)
	$(PY) -m ruff check src tests examples benchmarks
	$(PY) -m ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest --cov --cov-branch --cov-report=term --cov-fail-under=95

# The test command: lint, strict types, then the suite with branch coverage.
test: lint typecheck unit

# Benchmarks run in their own venv (statewise editable + the seed, pygubernator 0.0.1);
# the stamp makes reruns skip the installs. Extra flags: make bench BENCH_ARGS='--quick'.
bench:
	@if [ ! -f .venv-bench/.stamp-bench ] || [ pyproject.toml -nt .venv-bench/.stamp-bench ] || [ Makefile -nt .venv-bench/.stamp-bench ]; then \
		set -e; \
		[ -x .venv-bench/bin/python ] || $(PYTHON) -m venv .venv-bench; \
		.venv-bench/bin/python -m pip install --quiet --upgrade pip; \
		.venv-bench/bin/python -m pip install --quiet -e '.[cel]' 'pygubernator==0.0.1'; \
		touch .venv-bench/.stamp-bench; \
	fi
	.venv-bench/bin/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-bench .mypy_cache .ruff_cache .pytest_cache .coverage htmlcov

# The crash test at full size: 200 entities x 20 events, a worker SIGKILLed every
# 0.2-0.8 s, on SQLite (4 workers) and PostgreSQL (8); prints the counts. About 3 minutes.
soak: $(STAMP)
	STATEWISE_CRASH_SOAK=1 $(PY) -m pytest tests/runtime/test_crash.py -s -q

# The durable runtime's speed (events/s, p50/p99) on SQLite and PostgreSQL against a
# hand-written floor; writes benchmarks/results/runtime-*. BENCH_ARGS='--quick' for a smoke run.
bench-runtime: $(STAMP)
	$(PY) benchmarks/bench_runtime.py $(BENCH_ARGS)
