# make demo / make test: create .venv if missing, install the package with its
# test extras and the npm dev tools (anvil, solcjs), then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint deps clean

deps: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: deps
	$(BIN)/auditor demo

test: deps
	$(BIN)/python -m pytest -q

# Not part of `make test`: ruff as pyproject's [tool.ruff], mypy --strict as its [tool.mypy].
lint: deps
	$(BIN)/ruff check auditor tests benchmarks
	$(BIN)/mypy --strict auditor

clean:
	rm -rf $(VENV) node_modules var demo-out
