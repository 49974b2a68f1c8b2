#!/usr/bin/env bash
# Debian packages `make dist` / `make dist-test` need, only those missing:
#   - the Qt display libraries (`install-system-deps.sh run`): PyInstaller copies the libraries
#     Qt's platform plugins link into the bundle, so they must exist on the build machine
#   - binutils (PyInstaller reads ELF headers with objdump), dpkg-deb (part of dpkg)
#   - xdg-utils, desktop-file-utils: the .deb's postinst and its test (xdg-mime query default)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/install-system-deps.sh" run

pkgs=(binutils xdg-utils desktop-file-utils)
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "not a Debian-like system: install these yourself: ${pkgs[*]}" >&2
  exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "need root to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
