# Two entry points, each doing all set-up on a fresh machine with Python 3.11:
#   make demo   - the offline end-to-end comparison (train PoExFT/OTM/OTO, generate, score, table + plot)
#   make test   - the whole test suite, offline
# TORCH_SPEC: torch==2.13.0 is a CPU wheel on the project's CPU machines and PyPI's default (CUDA) build on
# a GPU machine; a torch already in the venv (e.g. your own CUDA build) is kept.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test,plot]"
	$(BIN)/python -m peft_diversity.metrics_install
	touch $(STAMP)

demo: install
	$(BIN)/peft-diversity demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check peft_diversity metrics recipes benchmarks tests

clean:
	rm -rf $(VENV) runs .pytest_cache
