PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint format clean fuzz venv

$(BIN)/activate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/activate

venv: $(BIN)/activate

demo: $(BIN)/activate
	$(BIN)/retrograd train

lint: $(BIN)/activate
	$(BIN)/ruff format --check retrograd tests examples benchmarks
	$(BIN)/ruff check retrograd tests examples benchmarks

format: $(BIN)/activate
	$(BIN)/ruff format retrograd tests examples benchmarks
	$(BIN)/ruff check --fix retrograd tests examples benchmarks

test: $(BIN)/activate lint
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q tests

fuzz: $(BIN)/activate
	RETROGRAD_FUZZ=long $(BIN)/python -m pytest -q -s tests/test_io_fuzz.py tests/test_engine_fuzz.py tests/test_stability_sweep.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
