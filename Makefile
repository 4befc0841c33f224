# Two commands do all set-up on a fresh machine:
#   make run    install, migrate, and run gateway (http://127.0.0.1:8000) + worker on the embedded default
#   make test   install and run the whole test suite (lint, types, migrations check, pytest)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint bench clean browser

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

run: install
	$(BIN)/ventanilla migrate
	$(BIN)/ventanilla run --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m casestore.migrations.check

# Browser tests drive Debian's Chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; }

test: lint browser
	$(BIN)/python -m tests.services_check
	$(BIN)/pytest -p no:cacheprovider

bench: install
	$(BIN)/python -m bench.intake

clean:
	rm -rf $(VENV) var
