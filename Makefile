# Détecteur — `make run` installs everything into .venv and serves the API with the shipped model on
# http://127.0.0.1:8000; `make test` runs every check; `make predict` judges the sample images from the CLI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLES := tests/data/samples/*.jpg

.PHONY: install run predict test lint typecheck pytest clean dashboard frontend-test e2e screenshots bench soak types

install: $(VENV)/.installed

# Reinstall when the dependency list changes. pip takes torch 2.14.1 / torchvision 0.29.1 from this
# machine's local wheel store (see docs/deploying.md) — no multi-GB download.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

# The dashboard (frontend/, Next.js) is built to frontend/out when its sources change; the API serves it at /.
run: install
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory dashboard; \
	else echo "*** npm not found: serving the API without the dashboard (install Node.js 20+ to get it) ***"; fi
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

test: lint typecheck pytest frontend-test e2e

# Speed figures (not part of `make test`): each script prints its figures and writes benchmarks/results/<name>.json.
bench: install
	$(BIN)/python benchmarks/forward.py
	$(BIN)/python benchmarks/faces.py
	$(BIN)/python benchmarks/cold_start.py
	$(BIN)/python benchmarks/lean_serving.py
	$(BIN)/python benchmarks/int8.py
	$(BIN)/python benchmarks/int8_variants.py
	$(BIN)/python benchmarks/arena_slices.py
	$(BIN)/python benchmarks/serving_ratios.py
	$(BIN)/python benchmarks/speed_table.py
	$(BIN)/python benchmarks/http_load.py
	$(BIN)/python benchmarks/cases_store.py

# 10 000 mixed requests (faces, no faces, hostile inputs) at concurrency 16 against a server on 127.0.0.1;
# writes benchmarks/results/soak.json and fails on any 5xx, dropped connection or RSS growth over 10 %.
soak: install
	$(BIN)/python -m scripts.soak --requests 10000 --concurrency 16 --out benchmarks/results/soak.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache frontend/node_modules frontend/.next frontend/out

FRONTEND_SOURCES := $(shell find frontend/app frontend/components frontend/lib frontend/public -type f 2>/dev/null) \
	$(filter-out frontend/next-env.d.ts,$(wildcard frontend/*.json frontend/*.mjs frontend/*.ts))
CHROMIUM ?= /usr/bin/chromium

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

frontend/out/index.html: frontend/node_modules/.installed $(FRONTEND_SOURCES)
	cd frontend && npm run build
	touch $@

dashboard: frontend/out/index.html

# The dashboard's API types, generated from the service's OpenAPI schema: frontend/openapi.json, then
# frontend/lib/api-schema.ts (tests/test_openapi_types.py and frontend/tests/apiSchema.test.ts fail when stale).
types: install frontend/node_modules/.installed
	$(BIN)/python -m scripts.export_openapi > frontend/openapi.json.tmp && mv frontend/openapi.json.tmp frontend/openapi.json
	cd frontend && npx openapi-typescript openapi.json -o lib/api-schema.ts

# Unit tests of the dashboard's logic (vitest) and its type check.
frontend-test: frontend/node_modules/.installed
	cd frontend && npm run typecheck && npm test

# The dashboard in Debian's Chromium against the real API with the shipped model (screenshots go to a temp
# folder; `make screenshots` refreshes the README's docs/screenshots/).
# Installs Chromium when missing and running as root; skips LOUDLY (exit 0) only when it cannot be had.
e2e: install dashboard
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium with apt-get"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || true; \
	fi
	@if [ ! -x "$(CHROMIUM)" ]; then \
		echo "################################################################################"; \
		echo "### E2E SKIPPED: no Chromium at $(CHROMIUM) and it could not be installed"; \
		echo "### (apt-get install chromium as root, or set CHROMIUM=/path/to/chromium)"; \
		echo "################################################################################"; \
	else cd frontend && CHROMIUM_PATH=$(CHROMIUM) SCREENSHOTS_DIR=$(SCREENSHOTS_DIR) npm run e2e; fi

screenshots:
	$(MAKE) e2e SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots
