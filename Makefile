# Two commands do all set-up on a fresh machine:
#   make run    install, migrate, and run gateway (http://127.0.0.1:8000) + worker on the embedded default
#   make test   install and run the whole test suite (lint, types, migrations check, pytest)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint bench clean

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
	$(BIN)/python -m casestore.migrations.check

test: lint
	$(BIN)/python -m tests.services_check
	$(BIN)/pytest -p no:cacheprovider

bench: install
	$(BIN)/python -m bench.intake

clean:
	rm -rf $(VENV) var
