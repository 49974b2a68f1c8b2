#!/usr/bin/env bash
# Installs the npm reference programs the interop tests run against into a project-local folder
# (.npm-tools/, never global), only when missing. Skips quietly when npm is not available: the
# tests that need these programs skip themselves then.
#   bittorrent-tracker - the WebTorrent project's HTTP/UDP/WebSocket tracker (tracker interop)
#   bittorrent-dht     - the WebTorrent project's DHT node (DHT interop)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=.npm-tools
pkgs=(bittorrent-tracker@11 bittorrent-dht@11)

if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: the npm-based interop tests will be skipped" >&2
  exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
  name=${p%@*}
  [ -e "$prefix/node_modules/$name/package.json" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing npm packages into $prefix: ${missing[*]}"
npm install --prefix "$prefix" --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error "${missing[@]}" >/dev/null
