# Two commands: `make run` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench lint deps browser clean screenshots

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

deps: $(STAMP)

# Debian's Chromium for the browser tests (Playwright's own download cannot work offline).
browser:
	@command -v chromium >/dev/null || { \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null'; }

# Offline machines cannot download CLIP weights: fall back to random weights (the UI,
# the API and the log say so). Set NUCLEUS_EMBEDDING_RANDOM_FALLBACK=0 to fail instead.
run: export NUCLEUS_EMBEDDING_RANDOM_FALLBACK ?= 1
run: $(STAMP)
	$(PY) manage.py serve --host $(HOST) --port $(PORT) $(SERVE_ARGS)

# The search tests (and index warming) run a second time against pgvector 0.6.2 (tests/pgvector_legacy.py):
# the embedded server's pgvector 0.8 takes iterative index scans, an external server with
# pgvector < 0.8 the other path (raised ef_search, top-ups, exact fallbacks).
SEARCH_TESTS := $(wildcard tests/test_search_*.py tests/test_duplicates*.py tests/test_ui_search*.py tests/test_index_warm.py)

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PY) -m pytest -p tests.pgvector_legacy $(PYTEST_ARGS) $(SEARCH_TESTS)

# The README's pictures: the browser tests, saving their screenshots into docs/.
screenshots: $(STAMP) browser
	NUCLEUS_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/browser

# Benchmarks print their figures next to the targets in DESIGN.md; not part of CI.
# BENCH_ARGS is passed to each, e.g. `make bench BENCH_ARGS="--n 100000"` for smaller runs.
bench: $(STAMP)
	$(PY) bench/ingest.py
	$(PY) bench/search.py $(BENCH_ARGS)
	$(PY) bench/query.py --reuse $(BENCH_ARGS)
	$(PY) bench/export.py --reuse $(BENCH_ARGS)
	$(PY) bench/ui.py
	$(PY) bench/embed.py
	$(PY) bench/load.py
	$(PY) bench/duplicates.py
	$(PY) bench/projection.py $(BENCH_ARGS)
	$(PY) bench/evaluate.py
	$(PY) bench/label_errors.py
	$(PY) bench/uniqueness.py
	$(PY) bench/autotag.py $(BENCH_ARGS)
	$(PY) bench/review.py
	$(PY) bench/selection.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy curation embeddings evaluation insights review selection nucleus

clean:
	rm -rf $(VENV) var
