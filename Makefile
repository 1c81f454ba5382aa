# Every target creates the virtual environment it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (on these machines it lies on the local disk). GPU users:
#   make demo TORCH_SPEC=torch        (PyPI's Linux torch wheel is a CUDA build)
TORCH_SPEC ?= torch==2.13.0
PYTEST_WORKERS ?= 2

.PHONY: demo test test-slow test-gpu test-network lint bench docs docs-open clean

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

$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

# Nitpicky, warnings as errors, every gallery example executed; no network (intersphinx
# inventories and MathJax are in docs/). DOCS_EXAMPLES: a regular expression over example paths
# restricting which examples run (the others are rendered without output), e.g. what CI runs.
DOCS_EXAMPLES ?= /plot_
docs: $(VENV)/.docs-installed  ## the documentation site: open docs/_build/html/index.html
	SK_REWEIGHT_DOCS_EXAMPLES='$(DOCS_EXAMPLES)' $(BIN)/sphinx-build -n -W --keep-going -b html docs docs/_build/html
	@echo "Open docs/_build/html/index.html in a browser (make docs-open)."

docs-open:
	$(PYTHON) -m webbrowser -t "file://$(CURDIR)/docs/_build/html/index.html"

bench: $(VENV)/.installed  ## throughput against a hand-written loop and plain skorch
	$(BIN)/python benchmarks/bench_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	rm -rf docs/_build docs/generated docs/auto_examples docs/sg_execution_times.rst
