# Détecteur — `make run` installs everything into .venv and serves the API with the shipped model on
# http://127.0.0.1:8000; `make test` runs every check; `make predict` judges the sample images from the CLI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLES := tests/data/samples/*.jpg

.PHONY: install run predict test lint typecheck pytest soak clean

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

# 10 000 mixed requests (faces, no faces, hostile inputs) at concurrency 16 against a server on 127.0.0.1;
# writes benchmarks/results/soak.json and fails on any 5xx, dropped connection or RSS growth over 10 %.
soak: install
	$(BIN)/python -m scripts.soak --requests 10000 --concurrency 16 --out benchmarks/results/soak.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
