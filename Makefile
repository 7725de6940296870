# rnnautomata — every command of the README. `make study` and `make test` do all set-up first.
#
#   make study        set up, then run tasks/streaming_parity.toml end to end (runs/streaming_parity/)
#   make test         set up, then run the whole test suite (slow and browser tests included)
#   make test-fast    the fast tests only (what plain `pytest` runs)
#   make lint         ruff over the package, tests and benchmarks (rules in pyproject.toml; not part of `make test`)
#   make bench        the benchmarks (docs/benchmarks.md)
#   make docs         build the documentation site into site/ (`.venv/bin/mkdocs serve` to browse it)
#
# Torch: a fresh venv gets $(TORCH_SPEC) (the CPU build where one is at hand). A GPU user brings
# their own: `make setup TORCH_SPEC=torch` (CUDA build from PyPI) or any spec/index they like;
# an already-installed torch in the venv is never replaced.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rnnautomata-installed

.PHONY: setup system-deps browser-deps study test test-fast lint bench docs clean

setup: $(STAMP) system-deps

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev,notebook,docs,ray,slt]"
	@touch $(STAMP)

# The graphviz binary draws the machines; without it drawings fall back to .dot files.
system-deps:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing graphviz (apt-get)"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "notice: graphviz 'dot' is not installed and cannot be installed here; drawings are written as .dot files"; \
	  fi; }

# Headless Chromium drives report.html in tests/test_report_browser.py (skipped when absent).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium (apt-get) for the browser test"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "notice: chromium is not installed and cannot be installed here; the browser test is skipped"; \
	  fi; }

study: setup
	$(BIN)/rnnautomata --threads 1 run tasks/streaming_parity.toml

test: setup browser-deps
	$(BIN)/python -m pytest -m "slow or not slow" -q

test-fast: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check rnnautomata tests benchmarks

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

docs: setup
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs site .pytest_cache test-artifacts
