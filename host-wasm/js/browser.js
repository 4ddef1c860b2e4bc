// Browser entry (with or without a bundler): `await init()` once, then use Store.
import initWasm, * as wasm from './web/statemesh_wasm.js';
import { StatemeshError, install } from './install.mjs';

export { Store, Subscription, ScanIterator, Transaction, meterPlugin } from './web/statemesh_wasm.js';
export { StatemeshError };

let ready;

/**
 * Loads and instantiates the wasm module once; later calls return the same promise. By default
 * it fetches `statemesh_wasm_bg.wasm` next to this file; pass a URL, a Response, bytes or a
 * compiled WebAssembly.Module to load it from elsewhere.
 */
export function init(input) {
  ready ??= initWasm(input === undefined ? undefined : { module_or_path: input }).then(() => {
    install(wasm);
  });
  return ready;
}

export default init;
