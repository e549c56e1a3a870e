# One-word entry points. `make demo` and `make test` are the README's two commands.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU wheel on these machines; pinned so pip never pulls a multi-GB CUDA build. A torch
	# >= 2.2 already in .venv (e.g. your CUDA build) is kept; an older one would make the next
	# step upgrade it from the registry, so it is replaced by the pin too.
	$(BIN)/python -c "import sys, torch; sys.exit(tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]) < (2, 2))" 2>/dev/null \
	  || $(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/lossval demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The peers (cleanlab) come with the `bench` extra; without it benchmarks.run skips them.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	touch $@

# Quality suite (4 noise rates, 2 processes: about 25-30 min on 2 cores), then speed (several minutes).
bench: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.run --jobs 2
	$(BIN)/python -m benchmarks.speed
	$(BIN)/python -m benchmarks.clean_data

bench-quick: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.run --quick

# Build and test leftovers only. Never a workspace: ./lossval-workspace holds the MLflow registry and the quarantined
# rows of every run (README runs `lossval run` and `lossval serve` there), and nothing lossval wrote is deleted by us.
clean:
	rm -rf $(VENV) .pytest_cache benchmarks/results/quick
	@test ! -d lossval-workspace || echo "kept lossval-workspace/ (runs, MLflow registry, quarantine): remove it yourself if you mean to"
