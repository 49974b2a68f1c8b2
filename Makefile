# Two commands on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make run   - installs everything and starts the desktop app
#   make test  - installs everything the tests need (reference peers included) and runs the suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint fuzz bench clean system-deps-run system-deps-test npm-tools

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ required"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed-gui: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[gui]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[test]'
	touch $@

system-deps-run:
	@scripts/install-system-deps.sh run

system-deps-test:
	@scripts/install-system-deps.sh test

# npm reference peers (bittorrent-tracker, bittorrent-dht) in a project-local prefix
npm-tools:
	@scripts/install-npm-tools.sh

run: system-deps-run $(VENV)/.installed-gui
	$(VENV)/bin/ccbt-gui

# The GUI tests run in a pytest process of their own: pytest-qt processes Qt events after every
# test once a QApplication exists, and Qt objects left by GUI tests have crashed later,
# unrelated tests (seen twice: a segfault in pytestqt's _process_events during interop tests).
test: system-deps-test npm-tools $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider tests/gui $(PYTEST_ARGS)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider -p no:pytestqt \
		--ignore=tests/gui $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check ccbt_engine ccbt_gui tests benchmarks
	$(VENV)/bin/mypy

# make bench: every benchmark of docs/performance.md, each against its reference in the same run
bench: $(VENV)/.installed-test
	$(PY) benchmarks/create_hashing.py
	$(PY) benchmarks/recheck.py
	$(PY) benchmarks/loopback_download.py --runs 5
	$(PY) benchmarks/loopback_download.py --runs 5 --size 512M --files 200
	$(PY) benchmarks/seeding.py --runs 5
	$(PY) benchmarks/seeding.py --runs 5 --size 512M --files 200
	$(PY) benchmarks/utp_vs_tcp.py
	$(PY) benchmarks/gui_model_update.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

include mk/dist.mk
# make fuzz: every fuzz harness for 1,000,000 inputs (docs/security.md, "Fuzzing")
include mk/fuzz.mk
