#!/usr/bin/env bash
# Search at 10k items, natively and as wasm32 in Node, on the same generated data (issue 5):
# text indexing and query latency, exact vector insert and top-10 latency. Release builds.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/statemesh-target}"
RUSTFLAGS='--cfg getrandom_backend="custom"' \
  cargo build --locked -q -p statemesh-core-wasm-probe --target wasm32-unknown-unknown --release
cargo build --locked -q -p statemesh-core-wasm-probe --release --bin search-bench
node tests/core-wasm-probe/bench.mjs \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/statemesh_core_wasm_probe.wasm" \
  "$CARGO_TARGET_DIR/release/search-bench"
