# The two commands a fresh machine needs (Python 3.11 and the package registries):
#   make run    install into .venv, run the default recipe, print the results table
#   make test   install into .venv, run the linters (make lint) and the test suite
#   make bench  the speed benchmarks of bench/ (figures and commands in BENCHMARKS.md)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
SNAKEMAKE_ARGS ?=

.PHONY: run test lint install clean-exp dryrun bench

install: $(VENV)/.installed

# Re-installs only when the pins change.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# A Snakemake killed outright (kill -9, a closed terminal) leaves its lock; the first line removes it
# when it is provably stale (speechrecipe/cli/lock.py says how), and says why when it leaves it.
run: install
	$(BIN)/python -m speechrecipe.cli.lock $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)
	@echo; cat exp/$$($(BIN)/python -c "import yaml; print(yaml.safe_load(open('config.yaml'))['tag'])")/results.tsv

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The project's linters (configured in pyproject.toml): ruff (rules and formatting) for the Python
# code, snakefmt for the Snakefile and rule files, and snakemake --lint (tests/lint_workflow.py says
# which lint family is set aside, and why).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/python tests/lint_workflow.py

dryrun: install
	$(BIN)/snakemake -n --cores $(CORES) $(SNAKEMAKE_ARGS)

# Benchmark-only packages (kaldi-native-fbank) go into the same .venv, never into requirements.txt.
bench: install
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/feature_throughput.py
	$(BIN)/python bench/training_overhead.py
	$(BIN)/python bench/decode_rtf.py
	$(BIN)/python bench/onthefly_cost.py
	$(BIN)/python bench/stage_cost.py
	$(BIN)/python bench/scale.py --hours 1 8
	bench/pipeline_overhead.sh
