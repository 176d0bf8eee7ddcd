# nuage-ryu: the two commands of the README.
#   make demo   set everything up, then run the demo lab
#               (KEEP=1: leave it up to explore, 'nuage-lab down --state-dir ...' removes it;
#                PREFIX=NAME: namespace prefix, default demo + 6 random hex digits)
#   make test   set everything up, then run the linter and the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
RYU_VENV := .venv-ryu
PYTEST_ARGS ?=
KEEP ?=
PREFIX ?=

.PHONY: setup demo test lint unit integration bench clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml scripts/install-deps.sh
	bash scripts/install-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	# nuage-cni / nuage-docker-plugin as python -I -S launchers (docs/cni.md, "Start-up")
	$(VENV)/bin/python -m nuage_ryu.plugins.launcher install >/dev/null
	touch $(STAMP)

$(RYU_VENV)/.installed: scripts/install-classic-ryu.sh
	bash scripts/install-classic-ryu.sh
	touch $@

demo: setup
	$(VENV)/bin/python scripts/demo.py $(if $(filter-out 0 no false,$(KEEP)),--keep) $(if $(PREFIX),--prefix $(PREFIX))

lint: setup
	$(VENV)/bin/ruff check .

test: setup $(RYU_VENV)/.installed lint
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

unit: setup
	$(VENV)/bin/pytest -q tests/unit $(PYTEST_ARGS)

integration: setup $(RYU_VENV)/.installed
	$(VENV)/bin/pytest -q tests/integration $(PYTEST_ARGS)

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(RYU_VENV) build *.egg-info
