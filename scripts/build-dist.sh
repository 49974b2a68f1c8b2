#!/usr/bin/env bash
# Build the app bundle with PyInstaller, then the Linux tarball and .deb from it (make dist).
#   PYTHON=.venv/bin/python scripts/build-dist.sh
# Prints the build time: the bundle test's place (make test or make dist-test) depends on it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
start=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN build_app.spec
echo "PyInstaller bundle dist/ccBitTorrent built in $(( $(date +%s) - start )) s"
if [ "$(uname -s)" = "Linux" ]; then
  installers/linux/package.sh --bundle dist/ccBitTorrent --out dist
fi
echo "dist finished in $(( $(date +%s) - start )) s"
