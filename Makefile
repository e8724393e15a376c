# Atelier: `make chat` to talk to the bot, `make test` to run the test suite.
#
# Both set up .venv first (once; again only when pyproject.toml changes). The slow part
# is compiling llama-cpp-python (about 5 minutes on 2 cores); it is skipped when the venv
# already has the pinned version, so a GPU build installed by hand (see README) is kept.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.atelier-installed

# The pinned llama-cpp-python version, read from pyproject.toml so the two never disagree.
LLAMA_VERSION := $(shell sed -n 's/.*"llama-cpp-python\[server\]==\([^"]*\)".*/\1/p' pyproject.toml)
TORCH_VERSION ?= 2.13.0
# A portable CPU build by default; override for CUDA: make chat CMAKE_ARGS=-DGGML_CUDA=on
CMAKE_ARGS ?= -DGGML_NATIVE=off
BENCHES := bench/llm_overhead.py bench/router.py bench/imagine.py bench/rag.py bench/moderation.py \
	bench/sandbox.py bench/mcp_calls.py

.PHONY: chat test lint bench setup help

help:
	@echo "make chat    set up .venv, then chat with the bot in this terminal"
	@echo "make test    set up .venv, then run the whole test suite"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make bench   run the benchmarks (each ends with a RESULT {json} line)"

chat: $(STAMP)
	$(BIN)/atelier chat

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	@set -e; for bench in $(BENCHES); do echo "== $$bench"; $(BIN)/python $$bench; done

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@if $(BIN)/python -c 'import importlib.metadata as m, sys; \
	    sys.exit(m.version("llama-cpp-python") != sys.argv[1])' '$(LLAMA_VERSION)' 2>/dev/null; \
	then \
	    echo "llama-cpp-python $(LLAMA_VERSION) is already installed"; \
	else \
	    echo "building llama-cpp-python $(LLAMA_VERSION) (CMAKE_ARGS=$(CMAKE_ARGS)), a few minutes"; \
	    CMAKE_ARGS='$(CMAKE_ARGS)' $(BIN)/pip install 'llama-cpp-python[server]==$(LLAMA_VERSION)'; \
	fi
	@# torch first, pinned: this machine has its CPU wheel; any other version (or a plain
	@# `torch` pulled in by diffusers) would download gigabytes of CUDA. For a GPU, install
	@# a CUDA torch into .venv yourself (README: GPU); an installed torch is kept.
	@if ! $(BIN)/python -c 'import torch' 2>/dev/null; then \
	    $(BIN)/pip install 'torch==$(TORCH_VERSION)'; \
	fi
	$(BIN)/pip install -e '.[dev]'
	@# The code sandbox needs bubblewrap: installed where we may, said plainly where not.
	@command -v bwrap >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; } || true; \
	    fi; \
	    command -v bwrap >/dev/null 2>&1 || echo "NOTE: bubblewrap (bwrap) is not installed, so \
	the code sandbox refuses to run code; install it: sudo apt-get install bubblewrap"; }
	touch $@
