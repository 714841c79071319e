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
.PHONY: help venv run test test-fast test-integration test-system lint bench bench-record lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP) ## build the virtual environment from requirements.lock (exact pins)

# kdgat.bench.repro_timer runs dvc repro and, when every stage ran, records its wall time in bench/last_repro.json
run: $(STAMP) ## run the pipeline (dvc repro) on the datasets in params.yaml (default: synth)
	$(BIN)/python -m kdgat.bench.repro_timer

test: $(STAMP) ## run the whole test suite (what CI runs)
	$(BIN)/pytest

# The tiers (tests/conftest.py assigns them; docs/development.md): each is one marker
test-fast: $(STAMP) ## the unit tier: the quick loop (no training, DVC, servers)
	$(BIN)/pytest -m unit -n auto --maxprocesses 4  # pytest-xdist: one worker per core, at most 4

test-integration: $(STAMP) ## the integration tier: training, DVC, Metaflow, GPU
	$(BIN)/pytest -m integration

test-system: $(STAMP) ## the system tier: SLURM cluster, S3 server, system packages
	$(BIN)/pytest -m system

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy kdgat stages tests flows

bench: $(STAMP) ## measure speed; prints one JSON object (also written to bench/latest.json)
	@$(BIN)/python -m kdgat.bench.speed --out bench/latest.json

bench-record: $(STAMP) ## three `make bench` runs; their median to bench/cpu.json, what docs/benchmark.md quotes
	@for i in 1 2 3; do $(BIN)/python -m kdgat.bench.speed --out bench/run-$$i.json > /dev/null || exit 1; done
	$(BIN)/python -m kdgat.bench.record bench/run-1.json bench/run-2.json bench/run-3.json --out bench/cpu.json

# On a GPU machine, inside an environment with a CUDA torch (e.g. `apptainer exec --nv kd-gat.sif make gpu-check`);
# on the cluster: `sbatch slurm/gpu-check.sbatch`
.PHONY: gpu-check
GPU_PYTHON ?= python3
gpu-check: ## the gpu test tier and the GPU bench (bench/gpu.json); needs a CUDA device
	PYTHON=$(GPU_PYTHON) bash slurm/gpu-check.sbatch $(or $(GPU_OUT),bench/gpu.json)

# Metaflow keeps its datastore and metadata in ./.metaflow (S3 when METAFLOW_DATASTORE_SYSROOT_S3 is set)
.PHONY: kd-flow hpo
KD_WORKERS ?= 2
kd-flow: $(STAMP) ## Metaflow KD flow over data/graphs/<ds>: teachers, distilled students, F1 table
	$(BIN)/python flows/kd_flow.py --no-pylint run --max-workers $(KD_WORKERS) $(if $(DATASETS),--datasets $(DATASETS))

# e.g. make hpo MODEL=gat_small_kd DATASET=synth TRIALS=20 WORKERS=2 (hpo/<model>-<dataset>/best.yaml)
hpo: $(STAMP) ## Optuna study of one model on one dataset (kdgat hpo)
	$(BIN)/kdgat hpo $(or $(MODEL),gat_small_kd) --dataset $(or $(DATASET),synth) --workers $(or $(WORKERS),1) \
	  $(if $(TRIALS),--trials $(TRIALS))

# e.g. make slurm TARGETS=gat_large LAUNCH="--dry-run -S launch.slurm.partition=gpu" (kdgat launch --help)
.PHONY: slurm
slurm: $(STAMP) ## every stale stage as its own SLURM job (afterok in DAG order), then dvc.lock
	$(BIN)/kdgat launch --executor slurm $(LAUNCH) $(TARGETS)

# The DVC remote on Cloudflare R2: `make remote BUCKET=kd-gat ACCOUNT=<32-hex account id>` writes the git-ignored
# .dvc/config.local (ENDPOINT=URL for another S3 server); keys: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
.PHONY: remote push pull
remote: $(STAMP) ## point the DVC remote at your R2 bucket (BUCKET=... ACCOUNT=...) in .dvc/config.local
	$(BIN)/kdgat remote setup --bucket $(or $(BUCKET),kd-gat) $(if $(ACCOUNT),--account $(ACCOUNT)) \
	  $(if $(ENDPOINT),--endpoint $(ENDPOINT))

push: $(STAMP) ## check the remote answers, then dvc push (gives up in seconds if it goes away)
	$(BIN)/kdgat remote push

pull: $(STAMP) ## check the remote answers, then dvc pull
	$(BIN)/kdgat remote pull

lock: ## re-resolve requirements.lock from pyproject.toml (needs PyPI)
	rm -rf /tmp/kdgat-lock && $(PY) -m venv /tmp/kdgat-lock
	/tmp/kdgat-lock/bin/pip install --quiet -e '.[dev]'
	{ echo '# Exact pins for `make` (pip freeze of a working venv; torch is the CPU wheel on these machines).'; \
	  echo '# Regenerate with `make lock` after changing pyproject.toml.'; \
	  /tmp/kdgat-lock/bin/pip freeze --exclude-editable | grep -v '^-e '; } > requirements.lock

# The release (docs/release.md): a dry run by default (the bundle in release/ and the plan);
# `make publish ARGS=--yes` uploads (HF_TOKEN, ZENODO_TOKEN, WANDB_API_KEY from the environment or .env)
.PHONY: publish
publish: $(STAMP) ## the release bundle and its plan (HF Hub, Zenodo, W&B registry); ARGS=--yes uploads
	$(BIN)/kdgat publish $(ARGS)

# The dashboard (docs/dashboard.md): Observable Framework in dashboard/, served by a Cloudflare Worker with R2
.PHONY: dashboard preview deploy publish-results bench-dashboard
WRANGLER := cd dashboard && WRANGLER_SEND_METRICS=false npx --no-install wrangler
R2_BUCKET := kd-gat-dashboard
NODE_MODULES := dashboard/node_modules/.package-lock.json  # npm rewrites it on every install
$(NODE_MODULES): dashboard/package-lock.json
	cd dashboard && npm ci --no-audit --no-fund

dashboard: $(STAMP) ## build the dashboard (dvc repro dashboard): dashboard/dist from results/
	$(BIN)/dvc repro dashboard

# node_modules too: `dvc repro dashboard` installs them only when it rebuilds, and wrangler comes from there
preview: $(NODE_MODULES) dashboard ## serve the built dashboard locally through its Worker and a local R2 bucket (port 8787)
	cd dashboard && node scripts/local-r2.js ../results
	$(WRANGLER) dev --port $(or $(PORT),8787) --persist-to .wrangler/state

# Checked before anything is built; the token stays in the environment, never in a file of the repository
.PHONY: cloudflare-token
cloudflare-token:
	@test -n "$$CLOUDFLARE_API_TOKEN" || { echo "make $(MAKECMDGOALS): set CLOUDFLARE_API_TOKEN (a Cloudflare API token with Workers and R2 edit rights)"; exit 2; }

deploy: cloudflare-token dashboard ## publish the dashboard (and the rendered paper, /paper/): large files to R2, then `wrangler deploy` (needs CLOUDFLARE_API_TOKEN)
	cd dashboard/dist/r2 && find site -type f | while read -r f; do \
	  (cd ../.. && WRANGLER_SEND_METRICS=false npx --no-install wrangler r2 object put "$(R2_BUCKET)/public/$$f" --file "dist/r2/$$f" --remote) || exit 1; done
	@test -d paper/_site || echo "make deploy: no paper/_site (make paper renders it): /paper/ stays unpublished"
	if [ -d paper/_site ]; then cd paper/_site && find . -type f | sed 's|^\./||' | while read -r f; do \
	  (cd ../../dashboard && WRANGLER_SEND_METRICS=false npx --no-install wrangler r2 object put "$(R2_BUCKET)/public/paper/$$f" --file "../paper/_site/$$f" --remote) || exit 1; done; fi
	$(WRANGLER) deploy

publish-results: cloudflare-token $(NODE_MODULES) ## upload results/<dataset>/*.parquet to the dashboard's R2 bucket (public/results/; needs CLOUDFLARE_API_TOKEN)
	@test -d results || { echo "make publish-results: no results/ yet: run make run first"; exit 2; }
	for f in results/*/*.parquet; do \
	  (cd dashboard && WRANGLER_SEND_METRICS=false npx --no-install wrangler r2 object put "$(R2_BUCKET)/public/$$f" --file "../$$f" --remote) || exit 1; done

# The paper (docs/paper.md). Quarto is not on PyPI in a form that installs offline; pixi's `paper` environment
# has it: `pixi run -e paper paper`, or `make paper` wherever `quarto` is on PATH.
.PHONY: paper
QUARTO_HELP := quarto not found: everything but the rendering is done (paper/_variables.yml, paper/data/, \
  paper/assets/html/). Render with pixi (its paper environment has Quarto from conda-forge): pixi run -e paper paper; \
  or install Quarto (https://quarto.org/docs/get-started/) and rerun make paper
paper: $(STAMP) $(NODE_MODULES) ## the paper: dvc repro paper, kdgat paper check, figure bundles, quarto render paper/
	$(BIN)/dvc repro paper
	$(BIN)/kdgat paper check
	$(BIN)/kdgat paper bundle
	@command -v quarto >/dev/null || { echo "make paper: $(QUARTO_HELP)" >&2; exit 2; }
	quarto render paper

bench-dashboard: $(STAMP) ## time to first chart and bytes per page of the served dashboard (URL=..., default make preview's)
	$(BIN)/python -m kdgat.bench.dashboard --url $(or $(URL),http://localhost:8787) --out bench/dashboard.json

clean: ## remove the environment and caches (keeps data/ and the DVC cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
