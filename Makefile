# Détecteur — `make run` installs everything into .venv and serves the API with the shipped model on
# http://127.0.0.1:8000; `make test` runs every check; `make predict` judges the sample images from the CLI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLES := tests/data/samples/*.jpg

.PHONY: install run predict test lint typecheck pytest clean bench

install: $(VENV)/.installed

# Reinstall when the dependency list changes. pip takes torch 2.14.1 / torchvision 0.29.1 from this
# machine's local wheel store (see README) — no multi-GB download.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

run: install
	$(BIN)/detecteur serve

predict: install
	$(BIN)/detecteur predict $(SAMPLES)

lint: install
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks

typecheck: install
	$(BIN)/mypy src

pytest: install
	$(BIN)/pytest -q

test: lint typecheck pytest

# Speed figures (not part of `make test`): each script prints its figures and writes benchmarks/results/<name>.json.
bench: install
	$(BIN)/python benchmarks/forward.py
	$(BIN)/python benchmarks/faces.py
	$(BIN)/python benchmarks/cold_start.py
	$(BIN)/python benchmarks/http_load.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
