# Every target creates the virtual environment it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (on these machines it lies on the local disk). GPU users:
#   make demo TORCH_SPEC=torch        (PyPI's Linux torch wheel is a CUDA build)
TORCH_SPEC ?= torch==2.13.0
PYTEST_WORKERS ?= 2

.PHONY: demo test test-slow test-gpu test-network lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed  ## ERM vs RGD cross-validated, RAIS vs uniform SGD timed (no download)
	$(BIN)/sk-reweight demo

test: $(VENV)/.installed  ## the default test suite (no slow, no GPU tests)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

test-slow: $(VENV)/.installed  ## tests marked slow: RAIS reaches uniform SGD's loss in fewer epochs
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m slow

test-gpu: $(VENV)/.installed  ## on a machine with CUDA (make test-gpu TORCH_SPEC=torch)
	$(BIN)/python -m pytest -m gpu

test-network: $(VENV)/.installed  ## downloads (~125 MB, every run) and checks the real datasets
	$(BIN)/python -m pytest -m network

lint: $(VENV)/.installed
	$(BIN)/ruff check .

bench: $(VENV)/.installed  ## throughput against a hand-written loop and plain skorch
	$(BIN)/python benchmarks/bench_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
