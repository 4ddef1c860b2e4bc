// The JavaScript side of the package entry: the error class and the async-iterator protocol.
// build.sh derives install.cjs (for require) from this file, so keep its two exports as the
// only `export` lines.

/** Every error statemesh throws: `code` is stable per kind (`VERSION_CONFLICT`, `CLOSED`, ...). */
export class StatemeshError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'StatemeshError';
    this.code = code;
  }
}

/** Wires a loaded wasm-bindgen module: errors become StatemeshErrors, iterators async iterables. */
export function install(wasm) {
  wasm.__registerErrorClass(StatemeshError);
  for (const Iterator of [wasm.Subscription, wasm.ScanIterator]) {
    Iterator.prototype[Symbol.asyncIterator] = function () { return this; };
  }
}
