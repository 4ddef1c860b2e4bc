// Types of the package `statemesh`. The classes and plain objects come from the Rust types
// (wasm-bindgen and tsify); this file adds the entry points and the error class.
export { Store, Subscription, ScanIterator, Transaction, meterPlugin } from './web/statemesh_wasm.js';
export type {
  Value, OpenOptions, Durability, PutOptions, WriteResult, WriteOp, Metadata, StoreRecord, Entry,
  ScanPage, Versioned, ChangeKind, ChangeEvent, KeyVersion, ValueAt, TxnSpec, CompareSpec,
  CompareOp, TxnOpSpec, TxnOpKind, TxnResult, BeginOptions, Isolation, ChangesOptions, CodecSpec,
  IndexDeclaration, TextIndexOptions, ValueIndexOptions, VectorIndexOptions, IndexStats, TextHit,
  VectorHit, TextSearchOptions, ValueSearchOptions, VectorSearchOptions,
} from './web/statemesh_wasm.js';

/** Stable error codes, one per kind of failure. */
export type StatemeshErrorCode =
  | 'INVALID_KEY' | 'INVALID_PATTERN' | 'INVALID_VALUE' | 'VALUE_TOO_LARGE' | 'INVALID_ARGUMENT'
  | 'INVALID_CONFIG' | 'VERSION_CONFLICT' | 'VALUE_CONFLICT' | 'WRONG_TYPE' | 'OVERFLOW'
  | 'INVALID_TTL' | 'NO_TTL' | 'METADATA_TOO_LARGE' | 'BATCH_TOO_LARGE' | 'CORRUPT' | 'COMPACTED'
  | 'INVALID_PATCH' | 'PATCH_FAILED' | 'FUTURE_REVISION' | 'TXN_CONFLICT' | 'TXN_NOT_FOUND'
  | 'TXN_EXPIRED' | 'TXN_STATE' | 'KEY_LOCKED' | 'CODEC' | 'ENGINE' | 'FORMAT' | 'STORE_LOCKED'
  | 'STORAGE_CORRUPT' | 'STORAGE_UNSUPPORTED' | 'STORAGE' | 'POISONED' | 'CLOSED' | 'LAGGED'
  | 'UNSUPPORTED';

/** Every error statemesh throws or rejects with. */
export declare class StatemeshError extends Error {
  constructor(code: StatemeshErrorCode, message: string);
  readonly name: 'StatemeshError';
  readonly code: StatemeshErrorCode;
  /** With `LAGGED`: how many change events the subscriber missed. */
  readonly missed?: number;
}

/** What `init` can load the wasm module from (browser); ignored in Node. */
export type InitInput = string | URL | Request | Response | BufferSource | WebAssembly.Module;

/**
 * Loads the wasm module. Call (and await) it once before the first `Store.open` in a browser;
 * in Node the module is loaded on import and `init()` resolves at once.
 */
export declare function init(input?: InitInput | Promise<InitInput>): Promise<void>;
export default init;
