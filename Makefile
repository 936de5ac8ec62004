# Two commands: `make demo` (set up + main job) and `make test` (set up + whole test suite +
# the docs' strict build).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/cimtest: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps aihwkit==1.1.0
	touch $(BIN)/cimtest

setup: $(BIN)/cimtest

demo: setup
	$(BIN)/cimtest demo

# cimtest holds MKL, oneDNN and ATen to AVX2 (the same kernels on every x86-64 CPU); the
# invariance tests run again with each library's native kernels (AVX-512 where present).
test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15
	CIMTEST_KERNELS=native $(BIN)/python -m pytest -q -p no:cacheprovider -m invariance
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

bench: setup
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) build site src/*.egg-info
