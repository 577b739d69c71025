# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0's CPU wheel is what this project is tested with; a CUDA machine may install its own torch first.
TORCH ?= torch==2.13.0

.PHONY: demo test test-fast test-min lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh demo-out

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 -q

# The tests not marked slow: a quick check while working (CI runs `make test`, every test).
test-fast: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

# The fast tests on the declared minimum versions (pyproject's floors, .ci/min_constraints.py), in a
# venv of their own; CI runs it after `make test`. torch stays at $(TORCH): its floor on PyPI is a
# CUDA build of several GB.
VENV_MIN ?= .venv-min
$(VENV_MIN)/.installed: pyproject.toml .ci/min_constraints.py
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install -q --upgrade pip
	$(VENV_MIN)/bin/python -m pip install -q "$(TORCH)"
	$(PYTHON) .ci/min_constraints.py > $(VENV_MIN)/constraints.txt
	$(VENV_MIN)/bin/python -m pip install -q --only-binary=:all: -c $(VENV_MIN)/constraints.txt -e ".[test]"
	touch $@

test-min: $(VENV_MIN)/.installed
	$(VENV_MIN)/bin/python -m pytest -n 2 -q -m "not slow" -p no:cacheprovider

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed
	$(BIN)/python bench/bench_scan.py
	$(BIN)/python bench/bench_validate.py
	$(BIN)/python bench/bench_data.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) $(VENV_MIN) demo-out
