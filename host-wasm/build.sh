#!/usr/bin/env bash
# Builds the npm package `statemesh` into host-wasm/pkg/.
#   host-wasm/build.sh            debug build (fast to compile; what the tests use)
#   host-wasm/build.sh --release  release build: optimised, names stripped, wasm-opt (binaryen)
# Installs what it needs: the wasm32 target and wasm-bindgen-cli of exactly the crate's version.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/statemesh-target}"

# wasm-bindgen-cli must equal the wasm-bindgen crate pinned in host-wasm/Cargo.toml.
wb_version=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' host-wasm/Cargo.toml)
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $wb_version"; then
  cargo install wasm-bindgen-cli --version "$wb_version" --locked
fi

release=false
[ "${1:-}" = "--release" ] && release=true
if $release; then
  cargo build --locked -p statemesh-wasm --target wasm32-unknown-unknown --release
  wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/statemesh_wasm.wasm"
  strip=(--remove-name-section --remove-producers-section)
else
  cargo build --locked -p statemesh-wasm --target wasm32-unknown-unknown
  wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/debug/statemesh_wasm.wasm"
  strip=()
fi

pkg="$here/pkg"
rm -rf "$pkg"
mkdir -p "$pkg"
# --weak-refs: objects handed to JS are freed by a FinalizationRegistry when collected.
wasm-bindgen --target web --weak-refs "${strip[@]}" --out-dir "$pkg/web" --out-name statemesh_wasm "$wasm"
wasm-bindgen --target nodejs --weak-refs "${strip[@]}" --out-dir "$pkg/node" --out-name statemesh_wasm "$wasm"
echo '{ "type": "commonjs" }' > "$pkg/node/package.json"
# The Node build is CommonJS, but JS snippets of Rust crates (the IndexedDB adapter's idb.js) are
# ES modules: rewrite their top-level `export function`s as CommonJS exports. (Node never calls
# them; the module only has to load.)
find "$pkg/node/snippets" -name '*.js' -print0 2>/dev/null | while IFS= read -r -d '' js; do
  sed -E -i 's/^export (async )?function ([A-Za-z0-9_]+)/exports.\2 = \2; \1function \2/' "$js"
  if grep -q '^export ' "$js"; then echo "build.sh: cannot convert $js to CommonJS" >&2; exit 1; fi
done
# Every `options` parameter is a trailing optional object (`Option<Object>` in Rust), but a typed
# parameter (`unchecked_param_type`) loses wasm-bindgen's `?`: put it back.
for dts in "$pkg/web/statemesh_wasm.d.ts" "$pkg/node/statemesh_wasm.d.ts"; do
  sed -E -i 's/\boptions: ([^)]*)\)/options?: \1)/' "$dts"
done

if $release; then
  (cd "$here" && [ -x node_modules/.bin/wasm-opt ] || npm install --no-audit --no-fund --silent)
  for dir in web node; do
    f="$pkg/$dir/statemesh_wasm_bg.wasm"
    "$here/node_modules/.bin/wasm-opt" -O3 --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
      "$f" -o "$f.opt"
    mv "$f.opt" "$f"
  done
fi

cp "$here/js/browser.js" "$here/js/node.cjs" "$here/js/node.mjs" "$here/js/node-fs.cjs" \
  "$here/js/install.mjs" "$here/js/index.d.ts" "$pkg/"
# Codec plugins: the loader of adapters/wasmtime/js, unchanged, behind `statemesh/plugins`, whose
# entries (node.mjs, browser.mjs) pass it the package's fuel metering (meterPlugin).
mkdir -p "$pkg/plugins"
cp "$root/adapters/wasmtime/js/loader.mjs" "$pkg/plugins/loader.mjs"
cp "$here/js/plugins-node.mjs" "$pkg/plugins/node.mjs"
cp "$here/js/plugins-browser.mjs" "$pkg/plugins/browser.mjs"
cp "$here/js/plugins.d.ts" "$pkg/plugins/loader.d.ts"
# install.cjs: the same code for require(); its only exports are the two `export` lines.
{
  echo "'use strict';"
  sed -e 's/^export class /class /' -e 's/^export function /function /' "$here/js/install.mjs"
  echo 'module.exports = { StatemeshError, install };'
} > "$pkg/install.cjs"
cp "$here/README.md" "$pkg/README.md"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
sed "s/@VERSION@/$version/" "$here/js/package.json.in" > "$pkg/package.json"
rm -f "$pkg/web/.gitignore" "$pkg/node/.gitignore"

gz=$(gzip -9 -c "$pkg/web/statemesh_wasm_bg.wasm" | wc -c)
raw=$(wc -c < "$pkg/web/statemesh_wasm_bg.wasm")
echo "built $pkg ($($release && echo release || echo debug)): statemesh_wasm_bg.wasm $raw bytes, $gz gzipped"
