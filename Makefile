# Two entry points: `make demo` (set up, then encode and decode a sample clip)
# and `make test` (set up, then lint and run the test suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint setup clean

$(BIN)/ufvc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

setup: $(BIN)/ufvc

demo: setup
	$(BIN)/python -m ufvc.demo

lint: setup
	$(BIN)/ruff check src tests benchmarks

# One pytest worker per core (pytest-xdist): the tests run on one intra-op thread each
# (tests/conftest.py), so a serial run leaves all but one core idle.
test: setup lint
	$(BIN)/python -m pytest -q -n auto

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
