#!/usr/bin/env bash
# The same new web user, with a bundler: `npm pack` the built package, install it with Vite into a
# fresh folder holding the demo, `vite build` it (Vite resolves `import 'statemesh'` through the
# package's `exports` and emits the .wasm that `new URL(..., import.meta.url)` names), serve the
# build output, and use the page in headless Chromium: write notes, load again, find them.
# Needs host-wasm/build.sh to have run, and chromium + chromedriver.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# Vite 6: the newest major that runs on Node 20.x before 20.19.
vite_version=6.4.6
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$root/web-demo/app.mjs" "$work/"
# The page without its import map: the bundler resolves the bare specifier.
grep -v '<script type="importmap">' "$root/web-demo/index.html" > "$work/index.html"
cat > "$work/package.json" <<'JSON'
{ "name": "statemesh-vite-demo", "private": true, "type": "module" }
JSON
tarball=$(cd "$root/host-wasm/pkg" && npm pack --silent --pack-destination "$work")
(cd "$work" && npm install --no-audit --no-fund --silent "./$tarball" "vite@$vite_version" \
  && npx --no-install vite build --logLevel warn)
ls "$work/dist/assets" | grep -q '\.wasm$' || { echo "vite build emitted no .wasm" >&2; exit 1; }
python3 "$root/host-wasm/bench/run.py" --root "$work/dist" --timeout 120 \
  'index.html?selftest=write' 'index.html?selftest=check'
