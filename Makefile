# Deep Learning Studio for QGIS. `make help` lists the targets.
VENV := .venv
PY := $(VENV)/bin/python
SYS_PYTHON := /usr/bin/python3
PYTEST_ARGS ?=

.PHONY: help setup test lint format package install-plugin demo clean

help:
	@echo "make setup           Debian packages + .venv (idempotent)"
	@echo "make test            run the tests (PYTEST_ARGS='-k foo -x' to pass options)"
	@echo "make lint            ruff check + ruff format --check"
	@echo "make format          ruff format + ruff check --fix"
	@echo "make package         build dist/dlstudio_qgis-<version>.zip"
	@echo "make install-plugin  link the plugin into the default QGIS profile and enable it"
	@echo "make demo            run the end-to-end demo"
	@echo "make docs            regenerate docs/algorithms.md from the algorithms' help"
	@echo "make clean           remove build outputs and caches (keeps .venv)"

setup:
	bash scripts/setup.sh

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q tests $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

package:
	$(SYS_PYTHON) scripts/package.py

install-plugin: setup
	$(SYS_PYTHON) scripts/install_plugin.py

demo: setup
	bash scripts/demo.sh

.PHONY: docs
docs: setup
	QT_QPA_PLATFORM=offscreen $(PY) scripts/gen_docs.py

clean:
	rm -rf dist demo/out .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
