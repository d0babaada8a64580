# The README's commands. `make demo` and `make test` create .venv and install torchlab into it when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.torchlab-installed

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)  ## train the digit MLP on the bundled digits; checkpoint + figures in checkpoints/digit-mlp
	$(BIN)/torchlab train digit-mlp

test: $(STAMP)  ## the whole test suite (CPU, a few minutes)
	$(BIN)/python -m pytest

bench: $(STAMP)  ## benchmarks (longer trainings); figures go to BENCHMARKS.md by hand
	@for script in scripts/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
