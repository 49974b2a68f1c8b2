#!/usr/bin/env bash
# Installs the Debian packages a target needs, only those missing.
#   run  - libraries Qt needs to open a window (xcb platform plugin)
#   test - the reference peers the interop tests run against, and Qt's offscreen needs
#   dist - what PyInstaller and the .deb packaging need (make dist)
set -euo pipefail
target=${1:?usage: install-system-deps.sh run|test|dist}

common=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0)
case "$target" in
  run)  pkgs=("${common[@]}" libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
              libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0) ;;
  test) pkgs=("${common[@]}" aria2 mktorrent transmission-cli opentracker lighttpd xdg-utils desktop-file-utils binutils
              libxcb-icccm4 libxcb-keysyms1) ;;
  dist) pkgs=(binutils xdg-utils desktop-file-utils) ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac

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
