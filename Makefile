# Two commands: `make demo` (set up + main job) and `make test` (set up + whole test suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/cimtest: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/cimtest

setup: $(BIN)/cimtest

demo: setup
	$(BIN)/cimtest demo

# The invariance tests run again with MKL, oneDNN and ATen held to AVX2: the kernels of an
# AVX2-only CPU, checked on an AVX-512 machine too.
AVX2 := MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15
	$(AVX2) $(BIN)/python -m pytest -q -p no:cacheprovider -m invariance

bench: setup
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) build src/*.egg-info
