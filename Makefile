# The two commands of the README's quick start: `make serve` and `make test`.
# Both create .venv when it is missing and (re)install when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
PYTEST_ARGS ?=

.PHONY: serve test demo install services lint bench clean-var

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

SERVE_STAMP := $(VENV)/.serve-$(shell sha256sum pyproject.toml | cut -c1-16)

# everything: the test suite's tools and Ray
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev,ray]"
	rm -f $(VENV)/.installed-* $(VENV)/.serve-*
	touch $(STAMP) $(SERVE_STAMP)

# serving only: the package and its runtime dependencies (no test tools, no Ray)
$(SERVE_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	rm -f $(VENV)/.serve-*
	touch $(SERVE_STAMP)

install: $(STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/tscout db upgrade
	$(BIN)/tscout serve

services:
	@bash scripts/ensure-services.sh

test: install services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(SERVE_STAMP)
	$(BIN)/tscout db upgrade
	$(BIN)/tscout demo

lint: install
	$(BIN)/ruff check app tests migrations bench

clean-var:
	rm -rf var
