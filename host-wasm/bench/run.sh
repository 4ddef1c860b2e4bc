#!/usr/bin/env bash
# Browser benchmarks: statemesh on IndexedDB vs raw IndexedDB vs Dexie 4, in headless Chromium.
#   host-wasm/bench/run.sh           (builds the release package first)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/build.sh" --release
(cd "$here" && npm ci --no-audit --no-fund --silent)
python3 "$here/bench/run.py" --timeout 900 bench/index.html
