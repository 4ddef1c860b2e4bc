#!/usr/bin/env bash
# Codec plugins in headless Chromium through the built package (host-wasm/pkg): geo.point and
# the hostile plugin. STATEMESH_GUEST_DIR: the guest workspace's release output.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${STATEMESH_GUEST_DIR:?set STATEMESH_GUEST_DIR to the built guest plugins}"
mkdir -p "$here/pkg/test-plugins"
cp "$STATEMESH_GUEST_DIR/geo_point.wasm" "$STATEMESH_GUEST_DIR/hostile.wasm" "$here/pkg/test-plugins/"
python3 "$here/bench/run.py" --timeout 300 browser-test/plugins.html
