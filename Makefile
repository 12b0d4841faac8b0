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
# The full build compiles the CUDA kernels whenever nvcc is found (CI checks them without a GPU).
$(VENV)/.build-stamp: $(STAMP) $(SOURCES)
	$(BIN)/pip install -q --no-build-isolation --no-deps -e .
	rm -f $(VENV)/.build-cpu-stamp
	touch $@

# `make demo` on a machine without a GPU needs only the CPU kernels (a few minutes instead of
# ~10 for the CUDA ones on 2 cores); an up-to-date full build is reused as it is.
$(VENV)/.build-cpu-stamp: $(STAMP) $(SOURCES)
	if [ -f $(VENV)/.build-stamp ] && [ -z "$$(find $(SOURCES) -newer $(VENV)/.build-stamp)" ]; then \
		echo "reusing the full build"; \
	else \
		echo "building the CPU kernels (no GPU here; make build / make test add the CUDA ones)"; \
		GANREG_NO_CUDA=1 $(BIN)/pip install -q --no-build-isolation --no-deps -e . && rm -f $(VENV)/.build-stamp; \
	fi
	touch $@

HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
DEMO_BUILD := $(if $(HAS_GPU),$(VENV)/.build-stamp,$(VENV)/.build-cpu-stamp)

build: $(VENV)/.build-stamp

# The test backend cuda_emu (csrc/emu: the CUDA kernels' own source run on the CPU) is built first and
# required (GANREG_REQUIRE_EMU=1: a missing or stale build fails the run instead of skipping it).
test: build
	$(BIN)/python -m ganreg_ext info
	$(BIN)/python csrc/emu/build.py
	GANREG_REQUIRE_EMU=1 $(BIN)/python -m pytest tests -q -n 2 --durations=15

test-fast: build
	$(BIN)/python -m pytest tests -q -x -m "not slow" -n 2

demo: $(DEMO_BUILD)
	$(BIN)/python -m ganreg_ext.demo

# The benchmark harness: python -m benchmarks <subcommand> (benchmarks/README.md; `--help` lists them).
bench: build
	$(BIN)/python -m benchmarks ops

bench-quick: build
	$(BIN)/python -m benchmarks ops --quick

info: build
	$(BIN)/python -m ganreg_ext info

lint: $(STAMP)
	$(BIN)/ruff check ganreg_ext triton_kernels tests benchmarks setup.py
	$(BIN)/ruff format --check ganreg_ext triton_kernels tests benchmarks setup.py

# GPU machine, its own python3 + torch: build, GPU tests, determinism, memcheck, benchmarks → one verdict
# table (`python -m benchmarks gpu`, benchmarks/README.md). `make gpu-check ARGS=--dry-run` lists the steps
# and GPU tests anywhere.
gpu-check:
	bash benchmarks/gpu_check.sh $(ARGS)

clean:
	rm -rf build *.egg-info ganreg_ext/*.so $(VENV)/.build-stamp $(VENV)/.build-cpu-stamp
