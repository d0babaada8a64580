# The README's commands. `make demo` and `make test` create .venv and install torchlab into it when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.torchlab-installed

.PHONY: demo test test-fast lint bench gpu-check mutation clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)  ## train the digit MLP on the bundled digits; checkpoint + figures in checkpoints/digit-mlp
	$(BIN)/torchlab train digit-mlp --overwrite

# Two pytest-xdist workers (measured best on two cores, TESTING.md); timing-sensitive tests share one
# lane (tests/conftest.py SERIAL_LANE). TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2

test: $(STAMP)  ## the whole test suite (CPU, in parallel: about a minute and a half on 2 cores)
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

# The paths ruff checks; mypy reads its own ([tool.mypy] files in pyproject.toml: torchlab/).
LINT_PATHS := torchlab tests scripts tools

lint: $(STAMP)  ## ruff (lint and format check, pyproject.toml [tool.ruff]) and mypy over torchlab/; changes nothing
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy torchlab

MNIST_DIR ?= $(firstword $(wildcard ../shared/data/mnist) data)
FACES_CSV ?= $(firstword $(wildcard ../shared/data/faces/training.csv.gz))

bench: $(STAMP)  ## the benchmarks behind BENCHMARKS.md (minutes on a CPU; MNIST_DIR=folder of the IDX files)
	$(BIN)/python tools/bench_digits.py
	$(BIN)/python tools/bench_trainer.py
	$(BIN)/python tools/bench_full_batch.py
	$(BIN)/python tools/bench_mnist.py --data-dir $(MNIST_DIR)
	$(BIN)/python tools/bench_keypoints.py $(if $(FACES_CSV),--data $(FACES_CSV))

# Mutation testing of every module of torchlab/ with code, by mutmut and cosmic-ray (TESTING.md): MODULE=torchlab/config.py
# runs one module, GROUP=engine one group, TOOL=mutmut or TOOL=cosmic-ray one tool; empty: everything (a night on
# 2 cores). Writes build/mutation/<module>/summary.json and the table build/mutation/summary.md.
MODULE ?=
GROUP  ?=
TOOL   ?= both

mutation: $(STAMP)  ## mutation testing of the whole package with mutmut and cosmic-ray, under nice (slow); see TESTING.md
	$(BIN)/python tools/mutation.py --tool $(TOOL) $(addprefix --group ,$(GROUP)) $(MODULE)

# gpu-check needs no .venv (a lent GPU machine may have torch but no network): the venv's python when
# present, else $(PYTHON). Options go in GPU_CHECK_ARGS, e.g. GPU_CHECK_ARGS="--out gpu.md --logs gpu-logs".
PY ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
GPU_CHECK_ARGS ?=

gpu-check:  ## on CUDA/MPS: accelerator tests + GPU benchmarks, one Markdown table (about 7 min); elsewhere one line
	@$(PY) tools/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
