# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch first and alone: 2.13.0 is the CPU build on this machine's disk; any looser spec may
# pull a multi-GB CUDA build. The project's own range admits it, so nothing else is fetched.
TORCH  ?= torch==2.13.0

.PHONY: setup demo test test-fast browser-deps lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[dev]"
	touch $@

demo: setup
	$(VENV)/bin/ctstudy demo

# Debian's Chromium drives the browser test (Playwright never downloads a browser here).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: sudo apt-get install chromium (the browser test is skipped without it)"; fi; }

test: setup browser-deps
	$(VENV)/bin/pytest --durations=15

test-fast: setup
	$(VENV)/bin/pytest -m "not slow and not browser"

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	for b in bench/*_bench.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) ctstudy-data .pytest_cache
