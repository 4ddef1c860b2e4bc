#!/usr/bin/env bash
# What a new web user does: `npm pack` the built package (host-wasm/pkg), install the tarball
# next to a copy of this demo in a fresh folder, serve it, and use the page in headless Chromium:
# add notes through the form, then load the page again and find them (IndexedDB survives the
# reload), then start a new browser on the same profile and find them again (it survives a
# browser restart too). Needs host-wasm/build.sh to have run, and chromium + chromedriver.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$root/web-demo/index.html" "$root/web-demo/app.mjs" "$root/web-demo/package.json" "$work/"
tarball=$(cd "$root/host-wasm/pkg" && npm pack --silent --pack-destination "$work")
(cd "$work" && npm install --no-audit --no-fund --silent "./$tarball")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# One browser: write notes, then load the page again.
python3 "$root/host-wasm/bench/run.py" --root "$work" --timeout 120 --profile "$work/profile" \
  --port "$port" 'index.html?selftest=write' 'index.html?selftest=check'
# A new browser process on the same profile and origin: the notes survived a browser restart.
python3 "$root/host-wasm/bench/run.py" --root "$work" --timeout 120 --profile "$work/profile" \
  --port "$port" 'index.html?selftest=check'
