//! The plain objects of the JavaScript API. Each is a Rust struct whose TypeScript declaration
//! tsify generates, so the `.d.ts` and the objects built here cannot drift apart.

use serde::{Deserialize, Serialize};
use statemesh_core as core;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use crate::convert::{to_js, value_to_js};
use crate::error::Result;

#[wasm_bindgen(typescript_custom_section)]
const VALUE_TS: &'static str = r#"
/** What a key holds: text, numbers (safe integers are integers, others floats), bigint for
 * 64-bit integers beyond 2^53, booleans, bytes, or any JSON-shaped value. Documents come back as
 * `{ contentType, data }`. */
export type Value = string | number | bigint | boolean | null | Uint8Array | unknown[] | { [key: string]: unknown };
"#;

/// How a store is opened. Without `path` or `indexedDb` the store lives in memory.
#[derive(Debug, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct OpenOptions {
    /// Node only: a directory holding the store in the native file format (log + snapshots).
    #[tsify(optional)]
    pub path: Option<String>,
    /// Browser: the IndexedDB database holding the store (one opener at a time, across tabs).
    #[tsify(optional)]
    pub indexed_db: Option<String>,
    /// IndexedDB only: commit with relaxed durability (faster; a power cut may lose the last
    /// writes, never tear them). Default false (strict).
    #[tsify(optional)]
    pub relaxed_durability: Option<bool>,
    /// IndexedDB only: how long the open waits for another tab, worker or store holding the
    /// database to close it before failing with `STORE_LOCKED` (default 2000; 0 fails at once).
    /// A reloaded page needs the wait: its old document lets go only as it is torn down.
    #[tsify(optional)]
    pub lock_wait_ms: Option<u32>,
    /// `"cp"` (default): a write resolves once durable. `"ap"`: at once, persisted right after.
    #[tsify(optional)]
    pub durability: Option<Durability>,
    /// Path separator of keys (default `"."`).
    #[tsify(optional)]
    pub separator: Option<char>,
    #[tsify(optional)]
    pub case_insensitive_keys: Option<bool>,
    /// Largest stored value in bytes (default 16 MiB).
    #[tsify(optional)]
    pub max_value_size: Option<usize>,
    /// Changes kept for `getAt`, `keyHistory` and `changes({ since })` (default 10,000).
    #[tsify(optional)]
    pub history_limit: Option<usize>,
    /// Events buffered per subscriber before it lags (default 4096).
    #[tsify(optional)]
    pub event_capacity: Option<usize>,
    /// Write a snapshot after this many log records (default 100,000).
    #[tsify(optional)]
    pub checkpoint_every: Option<u64>,
    /// Evict least recently used keys beyond this many (AP caches).
    #[tsify(optional)]
    pub max_entries: Option<u64>,
    /// Evict least recently used keys beyond this many bytes.
    #[tsify(optional)]
    pub max_bytes: Option<u64>,
    /// Codec plugins (from `loadPlugin` in `statemesh/plugins`) owning the keys of a pattern.
    #[tsify(optional)]
    pub codecs: Option<Vec<CodecSpec>>,
    /// Refuse custom values that name no registered codec.
    #[tsify(optional)]
    pub strict_codecs: Option<bool>,
    /// Indexes declared as part of the open, before the log is replayed, so that an index image
    /// stored at the last checkpoint can be loaded instead of rebuilding the index (`path` and
    /// `indexedDb` stores). Each entry is `{ text: TextIndexOptions }`, `{ value:
    /// ValueIndexOptions }` or `{ vector: VectorIndexOptions }`.
    #[tsify(optional)]
    pub indexes: Option<Vec<crate::search::IndexDeclaration>>,
}

/// A codec plugin and the keys it owns (`namespace:glob`); earlier entries win on overlap.
#[derive(Debug, Deserialize, Tsify)]
#[serde(deny_unknown_fields)]
pub struct CodecSpec {
    pub pattern: String,
    /// A `Plugin` from `loadPlugin` (`statemesh/plugins`).
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "{ name: string }")]
    pub plugin: JsValue,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Tsify)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Cp,
    Ap,
}

/// Options of `put`.
#[derive(Debug, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PutOptions {
    /// Expire the key this many milliseconds after the write.
    #[tsify(optional)]
    pub ttl_ms: Option<u64>,
    /// Expire the key at this time (milliseconds since the Unix epoch, like `Date.now()`);
    /// wins over `ttlMs`. A time not in the future is refused (`INVALID_TTL`).
    #[tsify(optional)]
    pub expires_at: Option<u64>,
    /// Keep the key's current expiry (a put clears it otherwise).
    #[tsify(optional)]
    pub keep_ttl: Option<bool>,
    /// Write only if the key is at this version (0: must not exist).
    #[tsify(optional)]
    pub if_version: Option<u64>,
    /// Replace the key's user metadata in the same write.
    #[tsify(optional, type = "Record<string, unknown>")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl PutOptions {
    pub(crate) fn into_core(self) -> core::PutOptions {
        let mut opts = core::PutOptions::default();
        if let Some(ttl) = self.ttl_ms {
            opts = opts.ttl_ms(ttl);
        }
        if let Some(at) = self.expires_at {
            opts = opts.expires_at(core::Timestamp(at));
        }
        if self.keep_ttl == Some(true) {
            opts = opts.keep_ttl();
        }
        if let Some(v) = self.if_version {
            opts = opts.if_version(v);
        }
        if let Some(m) = self.metadata {
            opts = opts.metadata(m);
        }
        opts
    }
}

/// What a write did.
#[derive(Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct WriteResult {
    pub op: WriteOp,
    /// Keys changed.
    pub affected: u64,
    /// The key's version after a single-key write; 0 after a delete, a batch or a no-op.
    pub version: u64,
    /// The store revision after the write.
    pub revision: u64,
}

#[derive(Debug, Serialize, Tsify)]
#[serde(rename_all = "lowercase")]
pub enum WriteOp {
    Create,
    Update,
    Delete,
    Batch,
    Noop,
}

impl WriteResult {
    pub(crate) fn from_core(r: &core::WriteResult) -> WriteResult {
        WriteResult {
            op: match r.op {
                core::WriteOp::Create => WriteOp::Create,
                core::WriteOp::Update => WriteOp::Update,
                core::WriteOp::Delete => WriteOp::Delete,
                core::WriteOp::Noop => WriteOp::Noop,
                _ => WriteOp::Batch,
            },
            affected: r.affected,
            version: r.version,
            revision: r.revision,
        }
    }

    pub(crate) fn js(r: &core::WriteResult) -> Result<JsValue> {
        to_js(&WriteResult::from_core(r))
    }
}

/// System and user metadata of a key. Times are milliseconds since the epoch.
#[derive(Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub created_at: u64,
    pub updated_at: u64,
    #[tsify(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    pub version: u64,
    pub create_revision: u64,
    pub mod_revision: u64,
    /// XXH3-64 of the stored value, 16 hex digits.
    pub checksum: String,
    /// Stored size in bytes, header included.
    pub size: usize,
    /// `"string"`, `"integer"`, `"float"`, `"bool"`, `"json"`, `"bytes"`, `"document"`, ...
    pub kind: String,
    pub content_type: String,
    #[tsify(type = "Record<string, unknown>")]
    pub user: serde_json::Map<String, serde_json::Value>,
}

impl Metadata {
    pub(crate) fn from_core(m: core::Metadata) -> Metadata {
        Metadata {
            created_at: m.created_at.as_millis(),
            updated_at: m.updated_at.as_millis(),
            expires_at: m.expires_at.map(core::Timestamp::as_millis),
            version: m.version,
            create_revision: m.create_revision,
            mod_revision: m.mod_revision,
            checksum: format!("{:016x}", m.checksum),
            size: m.size,
            kind: m.kind.map_or("unknown", |k| k.name()).to_owned(),
            content_type: m.content_type,
            user: m.user,
        }
    }
}

/// A key with its value and metadata.
#[derive(Serialize, Tsify)]
pub struct StoreRecord {
    pub key: String,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "Value")]
    pub value: JsValue,
    pub meta: Metadata,
}

/// A key and its value.
#[derive(Serialize, Tsify)]
pub struct Entry {
    pub key: String,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "Value")]
    pub value: JsValue,
}

impl Entry {
    pub(crate) fn list(items: &[(String, core::Value)]) -> Result<JsValue> {
        let array = js_sys::Array::new_with_length(items.len() as u32);
        for (i, (key, value)) in items.iter().enumerate() {
            let entry = Entry {
                key: key.clone(),
                value: value_to_js(value)?,
            };
            array.set(i as u32, to_js(&entry)?);
        }
        Ok(array.into())
    }
}

/// One page of a scan; pass `next` back as `cursor` for the following page.
#[derive(Serialize, Tsify)]
pub struct ScanPage {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "Entry[]")]
    pub items: JsValue,
    #[tsify(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A value and its version, for a later `put(key, value, { ifVersion })`.
#[derive(Serialize, Tsify)]
pub struct Versioned {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "Value")]
    pub value: JsValue,
    pub version: u64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, Serialize, Tsify)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
    Metadata,
    Delete,
    Expire,
    Evict,
}

impl ChangeKind {
    pub(crate) fn from_core(k: core::ChangeKind) -> ChangeKind {
        match k {
            core::ChangeKind::Create => ChangeKind::Create,
            core::ChangeKind::Update => ChangeKind::Update,
            core::ChangeKind::Metadata => ChangeKind::Metadata,
            core::ChangeKind::Delete => ChangeKind::Delete,
            core::ChangeKind::Expire => ChangeKind::Expire,
            _ => ChangeKind::Evict,
        }
    }
}

/// One change to one key. Every key a write touched carries that write's revision.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvent {
    pub revision: u64,
    /// Commit time, milliseconds since the epoch.
    pub at: u64,
    pub key: String,
    pub kind: ChangeKind,
    /// The key's version after the change; 0 after a removal.
    pub version: u64,
    /// The key's version before the change; 0 when it did not exist.
    pub old_version: u64,
    /// The new value; `undefined` after a removal.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "Value | undefined")]
    pub value: JsValue,
    /// The value before; `undefined` when the key did not exist.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "Value | undefined")]
    pub old_value: JsValue,
}

impl ChangeEvent {
    pub(crate) fn js(e: &core::ChangeEvent) -> Result<JsValue> {
        let decode = |v: &Option<core::StoredValue>| -> Result<JsValue> {
            match v {
                Some(stored) => value_to_js(&stored.decode().map_err(core::EngineError::from)?),
                None => Ok(JsValue::UNDEFINED),
            }
        };
        to_js(&ChangeEvent {
            revision: e.revision,
            at: e.at.as_millis(),
            key: e.key.to_string(),
            kind: ChangeKind::from_core(e.kind),
            version: e.version,
            old_version: e.old_version,
            value: decode(&e.new)?,
            old_value: decode(&e.old)?,
        })
    }
}

/// One kept version of a key.
#[derive(Serialize, Tsify)]
pub struct KeyVersion {
    pub revision: u64,
    pub at: u64,
    pub kind: ChangeKind,
    pub version: u64,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "Value | undefined")]
    pub value: JsValue,
}

/// A key's value at an earlier revision.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ValueAt {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "Value")]
    pub value: JsValue,
    pub version: u64,
    pub mod_revision: u64,
}

impl ValueAt {
    pub(crate) fn js(v: Option<&core::ValueAt>) -> Result<JsValue> {
        match v {
            None => Ok(JsValue::UNDEFINED),
            Some(v) => to_js(&ValueAt {
                value: value_to_js(&v.value)?,
                version: v.version,
                mod_revision: v.mod_revision,
            }),
        }
    }
}

/// A compare-then-else transaction: when every `compare` holds, `success` runs, otherwise
/// `failure`; the branch commits as one revision or not at all.
#[derive(Deserialize, Tsify)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct TxnSpec {
    #[tsify(optional)]
    pub compare: Vec<CompareSpec>,
    #[tsify(optional)]
    pub success: Vec<TxnOpSpec>,
    #[tsify(optional)]
    pub failure: Vec<TxnOpSpec>,
}

/// One condition: the key's `value`, `version`, `modRevision`, `createRevision` or `exists`
/// (give exactly one) compared with `op` (default `"=="`).
#[derive(Deserialize, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompareSpec {
    pub key: String,
    #[tsify(optional)]
    #[serde(default)]
    pub op: Option<CompareOp>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(optional, type = "Value")]
    pub value: JsValue,
    #[tsify(optional)]
    #[serde(default)]
    pub version: Option<u64>,
    #[tsify(optional)]
    #[serde(default)]
    pub mod_revision: Option<u64>,
    #[tsify(optional)]
    #[serde(default)]
    pub create_revision: Option<u64>,
    #[tsify(optional)]
    #[serde(default)]
    pub exists: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, Tsify)]
pub enum CompareOp {
    #[serde(rename = "==")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = "<")]
    Less,
}

/// One operation of a transaction branch.
#[derive(Deserialize, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TxnOpSpec {
    pub op: TxnOpKind,
    pub key: String,
    /// The value of a `put`.
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(optional, type = "Value")]
    pub value: JsValue,
    #[tsify(optional)]
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, Tsify)]
#[serde(rename_all = "lowercase")]
pub enum TxnOpKind {
    Put,
    Delete,
    Get,
}

/// The reply to a transaction: which branch ran, one result per operation, the revision after.
#[derive(Serialize, Tsify)]
pub struct TxnResult {
    pub succeeded: bool,
    pub revision: u64,
    /// Per operation: `{ version }` after a put, `{ deleted }` after a delete, the `ValueAt` (or
    /// `undefined`) of a get.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "Array<{ version: number } | { deleted: boolean } | ValueAt | undefined>")]
    pub results: JsValue,
}

/// Options of `begin`.
#[derive(Debug, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct BeginOptions {
    /// `"serializable"` (default) or `"snapshot"`.
    #[tsify(optional)]
    pub isolation: Option<Isolation>,
    /// The transaction is dropped after this many milliseconds (default 30,000).
    #[tsify(optional)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, Tsify)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    Serializable,
    Snapshot,
}

/// Options of `changes`.
#[derive(Debug, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ChangesOptions {
    /// Replay kept changes after this revision first, then follow live (no gap, no duplicate).
    /// Without it, only changes committed from now on.
    #[tsify(optional)]
    pub since: Option<u64>,
    /// Only keys matching this pattern (`namespace:glob`).
    #[tsify(optional)]
    pub pattern: Option<String>,
}

/// Option objects list the properties they take, so a misspelt one (`ttlMS`) is an error rather
/// than silently ignored (serde-wasm-bindgen reads only the fields it knows).
pub(crate) trait Fields {
    const FIELDS: &'static [&'static str];
}

impl Fields for OpenOptions {
    const FIELDS: &'static [&'static str] = &[
        "path",
        "indexedDb",
        "relaxedDurability",
        "lockWaitMs",
        "durability",
        "separator",
        "caseInsensitiveKeys",
        "maxValueSize",
        "historyLimit",
        "eventCapacity",
        "checkpointEvery",
        "maxEntries",
        "maxBytes",
        "codecs",
        "strictCodecs",
        "indexes",
    ];
}

impl Fields for PutOptions {
    const FIELDS: &'static [&'static str] =
        &["ttlMs", "expiresAt", "keepTtl", "ifVersion", "metadata"];
}

impl Fields for BeginOptions {
    const FIELDS: &'static [&'static str] = &["isolation", "timeoutMs"];
}

impl Fields for ChangesOptions {
    const FIELDS: &'static [&'static str] = &["since", "pattern"];
}
