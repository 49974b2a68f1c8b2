# Packaging targets; the main Makefile includes this file (`include mk/dist.mk`).
#   make dist       - PyInstaller bundle dist/ccBitTorrent, then dist/ccBitTorrent-*.tar.gz and
#                     dist/ccbittorrent_*.deb (Linux)
#   make dist-test  - the packaging tests: builds the bundle itself, runs it offscreen, installs
#                     the .deb for real (root) and purges it again
# Windows (.iss) and macOS (.dmg) installers are built by .github/workflows/build.yml.
.PHONY: dist dist-test system-deps-dist

$(VENV)/.installed-dist: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[gui,dist]'
	touch $@

system-deps-dist:
	@scripts/install-system-deps.sh dist

dist: system-deps-dist $(VENV)/.installed-dist
	PYTHON=$(PY) scripts/build-dist.sh

dist-test: system-deps-dist $(VENV)/.installed-dist $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider tests/packaging $(PYTEST_ARGS)
