# docflow: `make demo` runs the demo on a fresh clone; `make test` runs ruff, mypy and pytest.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv up demo lint test unit bench bench-reviews bench-loops docs-screenshot clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

up: venv
	$(BIN)/docflow up

demo: venv
	$(BIN)/docflow demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

unit: venv
	$(BIN)/pytest -q tests/unit

bench: venv
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.consensus
	$(BIN)/python -m bench.rerun
	$(BIN)/python -m bench.sandbox
	$(BIN)/python -m bench.functions
	$(BIN)/python -m bench.specs

# Not part of `bench`: 1,000 gated runs take 2.5 to 6 minutes on 2 busy cores (WAITING=50 for a quick look).
WAITING ?= 1000
bench-reviews: venv
	$(BIN)/python -m bench.reviews --waiting $(WAITING)

# Not part of `bench`: a for_each over 1,000 items takes about a minute.
bench-loops: venv
	$(BIN)/python -m bench.loops

# The README's screenshot of the review page, taken by its end-to-end browser test.
docs-screenshot: venv
	DOCFLOW_DOCS_SCREENSHOT=1 $(BIN)/pytest -q tests/integration/test_review_page.py -k corrects_a_field

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
