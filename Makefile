# runcap developer commands. `make run` starts everything locally; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv temporal clis run test lint typecheck pytest faults prod-tools prod-check migration \
	fmt demo bench bench-prod clean clean-data

venv: $(STAMP)

# Reinstall only when pyproject.toml changes; the stamp records the last install.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "runcap needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Finds the Temporal CLI or builds it once (go install, pinned) into ~/.cache/runcap/bin.
temporal: venv
	$(PY) -m worker.devserver ensure

# Claude Code and Codex, pinned, installed once from npm into ~/.cache/runcap/npm: the tests
# drive the real CLIs through the gateway.
clis: venv
	$(PY) -m tests.agent_clis

run: venv temporal
	$(PY) -m worker.launch

test: lint typecheck pytest faults

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: venv
	$(PY) -m mypy

pytest: venv temporal clis
	$(PY) -m pytest -q -p no:cacheprovider

# The fault suite (tests/faults, marker prod) on the dev server and SQLite: cheap, every run.
faults: venv temporal
	RUNCAP_STACK=dev $(PY) -m pytest -q -p no:cacheprovider -m prod tests/faults

# Temporal server and its schema tool at the version docker-compose.yml pins, built once.
prod-tools: venv temporal
	$(PY) -m prodcheck tools

# The production topology without containers (PostgreSQL, Temporal server, the compose
# one-shots' scripts, worker and api as the image runs them) and the fault suite against it.
prod-check: venv temporal prod-tools
	RUNCAP_PG_BIN="$$(prodcheck/ensure-postgres.sh)" RUNCAP_STACK=production \
		$(PY) -m pytest -q -p no:cacheprovider -m prod tests/faults

# A new migration from the models: make migration m="add the alerts table"; review the file.
migration: venv
	$(PY) -m db revision -m "$(m)"

fmt: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

demo: venv temporal
	$(PY) -m examples.demo

# Side by side with LiteLLM's proxy (installed once into ~/.cache/runcap, never by `make test`).
# BENCH_ARGS picks parts and options, e.g. BENCH_ARGS='compare --rounds 6' or 'profile', or
# 'agents --agents 20,200' (many agents, each its own run; 'agents --quick': a 2-minute smoke test).
bench: venv temporal
	$(PY) -m bench $(BENCH_ARGS)

# The agents part on prod-check's topology (Temporal server on PostgreSQL, mTLS), e.g.
# make bench-prod BENCH_ARGS='--agents 200'.
bench-prod: venv temporal prod-tools
	RUNCAP_PG_BIN="$$(prodcheck/ensure-postgres.sh)" \
		$(PY) -m bench agents --stack production $(BENCH_ARGS)

# Build and tool caches only; the venv and local data (.runcap: keys, databases) are kept.
clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# Deletes the local gateway's data: its admin key, Temporal history and ledger.
clean-data:
	rm -rf .runcap
