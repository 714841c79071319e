# kd-gat — `make help` lists the targets. Every target runs inside .venv, built from requirements.lock.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)  # DVC stage commands call `python` from the venv
# W&B runs of the stages stay in wandb/ until `kdgat track sync`; `WANDB_MODE=online make run` uploads live
export WANDB_MODE ?= offline

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP) ## build the virtual environment from requirements.lock (exact pins)

# kdgat.repro_timer runs dvc repro and, when every stage ran, records its wall time in bench/last_repro.json
run: $(STAMP) ## run the pipeline (dvc repro) on the datasets in params.yaml (default: synth)
	$(BIN)/python -m kdgat.repro_timer

test: $(STAMP) ## run the test suite
	$(BIN)/pytest

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy kdgat stages tests

bench: $(STAMP) ## measure speed; prints one JSON object (also written to bench/latest.json)
	@$(BIN)/python -m kdgat.bench --out bench/latest.json

lock: ## re-resolve requirements.lock from pyproject.toml (needs PyPI)
	rm -rf /tmp/kdgat-lock && $(PY) -m venv /tmp/kdgat-lock
	/tmp/kdgat-lock/bin/pip install --quiet -e '.[dev]'
	{ echo '# Exact pins for `make` (pip freeze of a working venv; torch is the CPU wheel on these machines).'; \
	  echo '# Regenerate with `make lock` after changing pyproject.toml.'; \
	  /tmp/kdgat-lock/bin/pip freeze --exclude-editable | grep -v '^-e '; } > requirements.lock

clean: ## remove the environment and caches (keeps data/ and the DVC cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
