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
	$(BIN)/torchlab train digit-mlp --overwrite

test: $(STAMP)  ## the whole test suite (CPU, a few minutes)
	$(BIN)/python -m pytest

MNIST_DIR ?= $(firstword $(wildcard ../shared/data/mnist) data)

bench: $(STAMP)  ## the benchmarks behind BENCHMARKS.md (minutes on a CPU; MNIST_DIR=folder of the IDX files)
	$(BIN)/python scripts/bench_digits.py
	$(BIN)/python scripts/bench_trainer.py
	$(BIN)/python scripts/bench_small.py
	$(BIN)/python scripts/bench_mnist.py --data-dir $(MNIST_DIR)
	$(BIN)/python scripts/bench_keypoints.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
