# collectbot: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## Show this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install collectbot with its dev tools

demo: $(STAMP) ## Run the whole collection story offline on a fresh SQLite database
	$(BIN)/collectbot demo --data-dir demo-data

test: $(STAMP) ## Lint and type-check, then run every test on SQLite and on PostgreSQL
	$(BIN)/ruff check .
	$(BIN)/mypy
	PYTHON=$(BIN)/python bash scripts/test.sh

lint: $(STAMP) ## Ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) ## Run the benchmarks (see docs/performance.md)
	$(BIN)/python -m bench.collect
	$(BIN)/python -m bench.assign
	$(BIN)/python -m bench.report
	$(BIN)/python -m bench.bot
	$(BIN)/python -m bench.receipt
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.dunning
	$(BIN)/python -m bench.payments

migrations: $(STAMP) ## Regenerate the aerich migrations for both dialects from the models
	$(BIN)/python -m core.db.makemigrations

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) data demo-data .pytest_cache .ruff_cache .mypy_cache

.PHONY: help install demo test lint bench migrations clean
