# deputy-guard: every target bootstraps .venv on a machine with only Python 3.11+ and pip.
# `make demo` installs only what the demo needs (the [demo] extra); the other targets install the dev tools.
# The demo's recipes print nothing of their own on stdout (pip's output goes to stderr), so
# `make demo ARGS=--json | python3 -m json.tool` gets the demo's JSON and nothing else.
PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.deputy-guard-installed
DEMO_STAMP := $(VENV)/.deputy-guard-demo-installed

.PHONY: test lint typecheck pytest chromium demo package bench requirements clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "deputy-guard needs Python 3.11 or newer (PYTHON=$(PYTHON))" >&2; exit 1; }
	@# Without the venv module (a bare Debian python3 has no ensurepip), fall back to virtualenv from pip.
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV) && \
		$(PYTHON) -m pip install --quiet --user virtualenv >&2 && $(PYTHON) -m virtualenv --quiet $(VENV) >&2; }
	@$(BIN)/python -m pip install --quiet --upgrade pip >&2

# The dev tools (ruff, mypy, pytest, cfn-lint, stubs) include everything the demo needs.
$(STAMP): pyproject.toml | $(BIN)/python
	@$(BIN)/python -m pip install --quiet -e '.[dev]' >&2
	@touch $(STAMP) $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	@$(BIN)/python -m pip install --quiet -e '.[demo]' >&2
	@touch $(DEMO_STAMP)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# bench/ is a namespace package (its scripts import bench.harness): module names come from the project root.
typecheck: $(STAMP)
	$(BIN)/mypy --explicit-package-bases chalicelib app.py deputy_guard bench

# In parallel, one worker per core (each with its own moto server); a file's tests share a worker, so each
# session fixture (the package build, the demo run) is built once. PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= auto
pytest: $(STAMP) chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

# The HTML report's tests run in a real headless Chromium (Debian's package): installed here when it is missing
# and apt-get may be used (root); otherwise those tests fail with the command that installs it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get update -qq && apt-get install -y -qq chromium; } >&2; } || \
		echo "make: chromium is missing (sudo apt-get install chromium): the HTML report's tests will fail" >&2

demo: $(DEMO_STAMP)
	@$(BIN)/deputy-guard demo $(ARGS)

# Every benchmark under bench/, rewriting the results table in bench/README.md (not part of CI).
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

requirements: $(STAMP)
	$(BIN)/python -m deputy_guard.requirements > requirements.txt

# `chalice package --merge-template` into $(DIST), offline: pip (run by Chalice) installs requirements.txt
# from wheels rebuilt out of .venv, from a clean copy of the project (docs/deployment.md). Then the template's
# runtime is pinned to $(LAMBDA_RUNTIME) and the package gets hash-based bytecode compiled by $(PYTHON_RUNTIME),
# which must be that Python (found on the PATH or in pyenv); PRECOMPILE=no ships none (slower cold starts).
STAGE ?= prod
DIST  ?= dist
BUILD ?= build/package
# The guardrail SCP's deployer principal (docs/security.md); empty leaves the DEPLOYER_PRINCIPAL_ARN placeholder.
DEPLOYER ?=
LAMBDA_RUNTIME ?= python3.13
PYTHON_RUNTIME ?= $(LAMBDA_RUNTIME)
PRECOMPILE ?= yes
BYTECODE := $(if $(filter no,$(PRECOMPILE)),--no-bytecode,--python $(PYTHON_RUNTIME))
package: $(STAMP)
	@$(BIN)/python deploy/bundle.py runtime --runtime $(LAMBDA_RUNTIME) $(BYTECODE)
	$(BIN)/python -m deputy_guard.requirements --check
	$(BIN)/python deploy/bundle.py stage --out $(BUILD)/src
	$(BIN)/python deploy/bundle.py wheelhouse --requirements requirements.txt --out $(BUILD)/wheelhouse
	rm -rf $(DIST)
	cd $(BUILD)/src && AWS_DEFAULT_REGION=us-east-1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
		PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS=$(abspath $(BUILD)/wheelhouse) \
		$(abspath $(BIN))/chalice package --stage $(STAGE) --merge-template .chalice/resources.json $(abspath $(DIST))
	$(BIN)/python deploy/bundle.py finalize $(DIST) --runtime $(LAMBDA_RUNTIME) --requirements requirements.txt $(BYTECODE)
	$(BIN)/python deploy/organizations.py central $(DIST)/sam.json
	$(BIN)/python deploy/guardrails.py $(DIST)/sam.json --out $(DIST)/guardrails-scp.json $(if $(DEPLOYER),--deployer '$(DEPLOYER)')
	$(BIN)/python deploy/organizations.py member --out $(DIST)/member-account.json
	$(BIN)/python deploy/bundle.py report $(DIST) --wheelhouse $(BUILD)/wheelhouse

clean:
	rm -rf $(VENV) dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
