# Two commands for a newcomer: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 4

.PHONY: demo test test-fast lint bench venv clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/sleepwatch demo $(if $(SCENARIO),--scenario $(SCENARIO),)

# Four workers on two cores: most tests wait on real subprocesses, sshd and sockets, not the CPU.
# Tests go out two at a time (the longest first, tests/conftest.py), so no worker is handed a
# long run of heavy tests while the others sit idle at the end.
XDIST = -n $(TEST_WORKERS) --maxschedchunk 2
test: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
