# deputy-guard: every target bootstraps .venv on a machine with only Python 3.11+ and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deputy-guard-installed

.PHONY: test lint typecheck pytest demo package bench requirements clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy chalicelib app.py

pytest: $(STAMP)
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/deputy-guard demo $(ARGS)

requirements: $(STAMP)
	$(BIN)/python -m chalicelib.requirements > requirements.txt

clean:
	rm -rf $(VENV) dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
