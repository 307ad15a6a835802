# secmoe: every target does its own setup. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
k ?=

.PHONY: help setup test demo accuracy vectors verify-vectors bench typecheck lint pytest clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
	@echo "  make test k=PATTERN     run only the tests matching PATTERN"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install secmoe with its dev extras

lint: $(STAMP) ## ruff over reference/, tools/, tests/, the spec-reference and vector-coverage checks
	$(BIN)/ruff check reference tools tests
	$(BIN)/python tools/check_spec_refs.py
	$(BIN)/python tools/check_vector_coverage.py

typecheck: $(STAMP) ## mypy --strict over reference/ and tools/
	$(BIN)/mypy --strict reference/secmoe tools

pytest: $(STAMP) ## pytest only
	$(BIN)/pytest $(if $(k),-k '$(k)',)

test: lint typecheck pytest ## ruff, mypy --strict and pytest (the CI job)

demo: $(STAMP) ## the main job on the built-in default model
	$(BIN)/secmoe demo

accuracy: $(STAMP) ## the trained classifiers' digits test split: float, fixed point, secure (slow)
	$(BIN)/secmoe accuracy --json

vectors: $(STAMP) ## regenerate vectors/ (byte-identical when nothing changed)
	$(BIN)/secmoe vectors generate --out vectors

verify-vectors: $(STAMP) ## check vectors/ against a fresh regeneration
	$(BIN)/secmoe vectors verify vectors

bench: $(STAMP) ## run every benchmark, JSON to bench/results/
	@# The peer HE library is optional: where no wheel installs, `bench he` reports "peer": null.
	-$(BIN)/pip install --quiet -e '.[dev,bench]' || echo "bench: optional peer library not installed"
	$(BIN)/secmoe bench all --out bench/results

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
