# The only place relay's set-up lives: every target builds the venv it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= config/relay.conf

.PHONY: run test lint bench check-config clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/relay serve -c $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check relay tests
	$(BIN)/ruff format --check relay tests
	$(BIN)/mypy relay

check-config: $(STAMP)
	$(BIN)/relay config check $(CONFIG)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
