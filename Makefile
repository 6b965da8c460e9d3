# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch first and alone: 2.13.0 is the CPU build on this machine's disk; any looser spec may
# pull a multi-GB CUDA build. The project's own range admits it, so nothing else is fetched.
TORCH  ?= torch==2.13.0

.PHONY: setup demo test test-fast browser-deps test-peers lint bench clean

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

# The real peers the tests check the product against, all from Debian: R with rms, mice, survival, ordinal,
# metafor, lme4 and mitml (reference statistics), dcmtk and Orthanc (DICOM network peers), dicom3tools
# (dciodvfy). The product never needs them to run; their tests skip with a reason where they are absent,
# except in CI (CTSTUDY_REQUIRE_R=1, CTSTUDY_REQUIRE_DICOM_PEERS=1).
PEER_PKGS := r-base-core r-cran-rms r-cran-mice r-cran-survival r-cran-ordinal r-cran-metafor r-cran-lme4 \
             r-cran-mitml r-cran-jsonlite r-cran-brglm2 dcmtk orthanc dicom3tools
test-peers:
	@missing=$$(for p in $(PEER_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing test peers: sudo apt-get install $$missing (their tests are skipped without them)"; fi; fi

test: setup browser-deps test-peers
	$(VENV)/bin/pytest --durations=15

test-fast: setup
	$(VENV)/bin/pytest -m "not slow and not browser"

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	for b in bench/*_bench.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) ctstudy-data .pytest_cache
