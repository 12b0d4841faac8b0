# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the tests).
# Both set up everything on a fresh machine: .venv, torch==2.14.1, the other deps, the extension.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CUDA_HOME ?= $(shell ls -d /usr/local/cuda-* 2>/dev/null | sort -V | tail -n 1)
export CUDA_HOME
MAX_JOBS ?= 2
export MAX_JOBS
STAMP := $(VENV)/.deps-stamp
SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.cu' -o -name '*.h' 2>/dev/null) setup.py

.PHONY: setup build test test-fast demo bench bench-quick lint info gpu-check clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

# Rebuild the extension only when a source changed (ninja keeps it incremental).
$(VENV)/.build-stamp: $(STAMP) $(SOURCES)
	$(BIN)/pip install -q --no-build-isolation --no-deps -e .
	touch $@

build: $(VENV)/.build-stamp

test: build
	$(BIN)/python -m ganreg_ext info
	$(BIN)/python -m pytest tests -q -n 2 --durations=15

test-fast: build
	$(BIN)/python -m pytest tests -q -x -m "not slow" -n 2

demo: build
	$(BIN)/python -m ganreg_ext.demo

bench: build
	$(BIN)/python -m benchmarks.run

bench-quick: build
	$(BIN)/python -m benchmarks.run --quick

info: build
	$(BIN)/python -m ganreg_ext info

lint: $(STAMP)
	$(BIN)/ruff check ganreg_ext triton_kernels tests benchmarks setup.py
	$(BIN)/ruff format --check ganreg_ext triton_kernels tests benchmarks setup.py

gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf build *.egg-info ganreg_ext/*.so $(VENV)/.build-stamp
