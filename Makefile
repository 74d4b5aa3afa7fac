# Two commands set up everything on a fresh machine:
#   make demo   -> creates .venv, installs metaser with pinned versions, runs `metaser demo`
#   make test   -> creates .venv, installs metaser + test deps, runs the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: an unpinned torch would pull gigabytes of CUDA wheels
	$(BIN)/pip install -q torch==2.13.0 -c constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	touch $@

.PHONY: install demo test test-docs test-all lint format
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/metaser demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# every command of README.md, docs/*.md and the presets' comments, run shrunk (tests/docs/rules.py)
test-docs: $(STAMP)
	$(BIN)/python -m pytest -q -m docs

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "not gpu"

# ruff (configured in pyproject.toml): .ci/run runs `make lint` before the tests
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
