#!/usr/bin/env bash
# Codec plugins in headless Chromium through the built package (host-wasm/pkg): geo.point, the
# hostile plugin and the WAT corpus. STATEMESH_GUEST_DIR: the guest workspace's release output;
# STATEMESH_PLUGIN_CORPUS: the corpus as .wasm (written here with the plugin_corpus example if unset).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
: "${STATEMESH_GUEST_DIR:?set STATEMESH_GUEST_DIR to the built guest plugins}"
mkdir -p "$here/pkg/test-plugins"
cp "$STATEMESH_GUEST_DIR/geo_point.wasm" "$STATEMESH_GUEST_DIR/hostile.wasm" "$here/pkg/test-plugins/"
if [ -z "${STATEMESH_PLUGIN_CORPUS:-}" ]; then
  STATEMESH_PLUGIN_CORPUS="${CARGO_TARGET_DIR:-$HOME/.cache/statemesh-target}/plugin-corpus"
  (cd "$here/.." && cargo run --locked -q -p statemesh-wasmtime --example plugin_corpus -- "$STATEMESH_PLUGIN_CORPUS")
fi
cp "$STATEMESH_PLUGIN_CORPUS"/*.wasm "$here/pkg/test-plugins/"
python3 "$here/bench/run.py" --timeout 300 browser-test/plugins.html
