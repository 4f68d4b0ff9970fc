# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEV_INSTALLED := $(VENV)/.installed-dev
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test lint typecheck unit fast bench diagram browser mail-servers clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEV_INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,postgres]'
	touch $@ $(INSTALLED)

## demo: install, build the demo database if missing, triage the sample inbox, print outcomes
demo: $(INSTALLED)
	$(VENV)/bin/mediavault demo

## test: install the dev extras, then ruff, mypy and pytest
test: $(DEV_INSTALLED) browser mail-servers lint typecheck unit

lint: $(DEV_INSTALLED)
	$(VENV)/bin/ruff check .

# mypy follows folders, not setup.py's mapping: link the layers under .typecheck/mediavault.
typecheck: $(DEV_INSTALLED)
	rm -rf .typecheck && mkdir -p .typecheck/mediavault
	for path in mediavault/*.py agent graph tools evals policies skills; do \
		ln -s "$(CURDIR)/$$path" .typecheck/mediavault/; done
	$(VENV)/bin/mypy

# Two tiers (README, "Tests"): the fast one on every core, then the slow one (processes killed,
# notebooks, red team, browser, Postgres, servers) one test at a time.
FAST_TIER := not slow and not integration

## unit: the fast tier in parallel, then the slow tier
unit: fast $(DEV_INSTALLED)
	$(VENV)/bin/pytest -m "not ($(FAST_TIER))"

## fast: only the fast tier (under three minutes on two cores)
fast: $(DEV_INSTALLED)
	$(VENV)/bin/pytest -m "$(FAST_TIER)" -n auto

bench: $(DEV_INSTALLED)
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

## diagram: regenerate the README's mermaid diagram from the graph
diagram: $(INSTALLED)
	$(PY) -m mediavault.graph.builder README.md

## browser: Debian's chromium for the review console's browser test (installed as root if missing)
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else echo "note: $(CHROMIUM) is missing; install Debian's chromium package as root" >&2; fi

## mail-servers: Debian's Dovecot (IMAP, LMTP) for the real-mail tests (installed as root if missing)
mail-servers:
	@if [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/lmtp ]; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
			--no-install-recommends dovecot-imapd dovecot-lmtpd; \
	else echo "note: dovecot is missing; install dovecot-imapd and dovecot-lmtpd as root" >&2; fi

clean:
	rm -rf .mediavault .typecheck .pytest_cache .mypy_cache .ruff_cache build *.egg-info
