//! statemesh-indexeddb: durable storage for statemesh in the browser's IndexedDB.
//!
//! [`IdbStorage`] implements [`statemesh_core::Storage`]. The host hands it everything queued
//! since its last flush in one `append`, and each `append` is exactly one readwrite IndexedDB
//! transaction: the records of a flush commit together or not at all, so there is never a torn
//! tail to repair. A snapshot replaces the old one and drops the log it covers in one
//! transaction too. The IndexedDB calls themselves are in `src/idb.js`.
//!
//! Index images ([`Storage::write_index_images`]) live in the same database, in the object
//! store `images`, one value per set under the key of its snapshot's revision: core's index
//! image set ([`statemesh_core::search::encode_image_set`]), the same bytes as the file
//! adapter's `index-<rev>.img` (layout in docs/storage.md). The snapshot's transaction clears that store, and
//! the images follow in a transaction of their own: a crash in between leaves a snapshot without
//! images (the indexes are rebuilt at the next open), never images of another snapshot. A
//! database created before images existed (version 1) gains the store when opened.
//!
//! One opener per store: opening takes a Web Lock named after the database, held until the
//! storage is dropped or the page goes away. A second tab (or a second open in the same page)
//! gets [`StorageError::Locked`] instead of writing beside the first, once it has waited
//! [`IdbOptions::lock_wait_ms`] for the holder to let go (a reloading page's old document
//! releases the lock only as it is torn down).
//!
//! Durability: transactions ask for `durability: "strict"` by default, so a resolved `append`
//! has been flushed by the browser; [`IdbOptions::relaxed`] trades that for speed (the browser
//! may lose the last writes on a power cut, never tear them).
#![cfg(target_family = "wasm")]

use statemesh_core::search::{ImageSetError, decode_image_set, encode_image_set};
use statemesh_core::storage::check_images_revision;
use statemesh_core::{IndexImage, LogBytes, Recovered, Storage, StorageError};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/src/idb.js")]
extern "C" {
    #[wasm_bindgen(js_name = openDatabase)]
    fn open_database(name: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = closeDatabase)]
    fn close_database(db: &JsValue);
    fn load(db: &JsValue) -> js_sys::Promise;
    fn append(
        db: &JsValue,
        revisions: &js_sys::Float64Array,
        records: &js_sys::Array,
        durability: &str,
    ) -> js_sys::Promise;
    #[wasm_bindgen(js_name = writeSnapshot)]
    fn write_snapshot(
        db: &JsValue,
        revision: f64,
        bytes: &[u8],
        durability: &str,
    ) -> js_sys::Promise;
    #[wasm_bindgen(js_name = writeImages)]
    fn write_images(db: &JsValue, revision: f64, bytes: &[u8], durability: &str)
    -> js_sys::Promise;
    #[wasm_bindgen(js_name = loadImages)]
    fn load_images(db: &JsValue, revision: f64) -> js_sys::Promise;
    #[wasm_bindgen(js_name = deleteDatabase)]
    fn delete_database(name: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = acquireLock)]
    fn acquire_lock(name: &str, wait_ms: u32) -> js_sys::Promise;
}

/// Revisions are IndexedDB keys as JS numbers: exact up to 2^53.
const MAX_REVISION: u64 = (1 << 53) - 1;

/// How long [`IdbStorage::open`] waits for the lock by default, in milliseconds.
pub const DEFAULT_LOCK_WAIT_MS: u32 = 2000;

/// Options of [`IdbStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdbOptions {
    /// Ask the browser for relaxed durability (faster commits; a power cut may lose the last
    /// ones, but never tears a transaction).
    pub relaxed: bool,
    /// How long an open waits for another holder of the store to let go before it fails with
    /// [`StorageError::Locked`] (0: fail at once). A reloaded page needs some wait: its old
    /// document releases the lock only while being torn down, after the new one may have asked.
    pub lock_wait_ms: u32,
}

impl Default for IdbOptions {
    fn default() -> Self {
        IdbOptions {
            relaxed: false,
            lock_wait_ms: DEFAULT_LOCK_WAIT_MS,
        }
    }
}

impl IdbOptions {
    /// How long an open waits for the lock, in milliseconds (default [`DEFAULT_LOCK_WAIT_MS`]).
    pub fn lock_wait_ms(mut self, ms: u32) -> Self {
        self.lock_wait_ms = ms;
        self
    }

    /// Relaxed (`true`) or strict (`false`, the default) transaction durability.
    pub fn relaxed(mut self, relaxed: bool) -> Self {
        self.relaxed = relaxed;
        self
    }

    fn durability(self) -> &'static str {
        if self.relaxed { "relaxed" } else { "strict" }
    }
}

/// A store's log and snapshot in one IndexedDB database. See the crate documentation.
#[derive(Debug)]
pub struct IdbStorage {
    name: String,
    db: JsValue,
    release: Option<js_sys::Function>,
    options: IdbOptions,
    loaded: bool,
    poisoned: bool,
    last_revision: Option<u64>,
    snapshot_revision: Option<u64>,
}

fn message(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

fn io(op: &'static str, name: &str) -> impl Fn(JsValue) -> StorageError {
    let path = format!("indexeddb:{name}");
    move |e| StorageError::Io {
        op,
        path: path.clone(),
        message: message(&e),
    }
}

impl IdbStorage {
    /// Opens (creating it if needed) the IndexedDB database `name` and takes its lock. Call
    /// [`Storage::load`] next.
    pub async fn open(name: &str, options: IdbOptions) -> Result<IdbStorage, StorageError> {
        let lock = JsFuture::from(acquire_lock(
            &format!("statemesh:{name}"),
            options.lock_wait_ms,
        ))
        .await
        .map_err(io("lock", name))?;
        let Some(release) = lock.dyn_ref::<js_sys::Function>().cloned() else {
            return Err(StorageError::Locked {
                path: format!("indexeddb:{name} (open in another tab, worker or store)"),
            });
        };
        let db = match JsFuture::from(open_database(name)).await {
            Ok(db) => db,
            Err(e) => {
                // Release the lock again: nothing holds the database.
                let _ = release.call0(&JsValue::UNDEFINED);
                return Err(io("open", name)(e));
            }
        };
        Ok(IdbStorage {
            name: name.to_owned(),
            db,
            release: Some(release),
            options,
            loaded: false,
            poisoned: false,
            last_revision: None,
            snapshot_revision: None,
        })
    }

    /// Deletes the database `name` (close every store on it first).
    pub async fn destroy(name: &str) -> Result<(), StorageError> {
        JsFuture::from(delete_database(name))
            .await
            .map(drop)
            .map_err(io("delete", name))
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn check_writable(&self, op: &'static str) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        if !self.loaded {
            return Err(StorageError::Invalid {
                op,
                reason: "call load() before writing".into(),
            });
        }
        Ok(())
    }

    fn corrupt(&self, reason: String) -> StorageError {
        StorageError::Corrupt {
            file: format!("indexeddb:{}", self.name),
            offset: 0,
            reason,
        }
    }

    async fn load_now(&mut self) -> Result<Recovered, StorageError> {
        let loaded = JsFuture::from(load(&self.db))
            .await
            .map_err(io("load", &self.name))?;
        let get = |k: &str| js_sys::Reflect::get(&loaded, &k.into()).unwrap_or(JsValue::NULL);

        let mut snapshot = None;
        let snap = get("snapshot");
        if !snap.is_null() && !snap.is_undefined() {
            let revision = js_sys::Reflect::get(&snap, &"revision".into())
                .ok()
                .and_then(|r| r.as_f64())
                .filter(|r| r.fract() == 0.0 && *r >= 0.0 && *r <= MAX_REVISION as f64)
                .ok_or_else(|| self.corrupt("snapshot without a valid revision".into()))?;
            let bytes = js_sys::Reflect::get(&snap, &"bytes".into())
                .ok()
                .and_then(|b| b.dyn_into::<js_sys::Uint8Array>().ok())
                .ok_or_else(|| self.corrupt("snapshot without bytes".into()))?;
            snapshot = Some((revision as u64, bytes.to_vec()));
        }

        let keys: js_sys::Array = get("keys")
            .dyn_into()
            .map_err(|_| self.corrupt("log keys".into()))?;
        let values: js_sys::Array = get("values")
            .dyn_into()
            .map_err(|_| self.corrupt("log values".into()))?;
        if keys.length() != values.length() {
            return Err(self.corrupt("log keys and values differ in number".into()));
        }
        let mut records = Vec::with_capacity(keys.length() as usize);
        let mut prev: Option<u64> = None;
        for (key, value) in keys.iter().zip(values.iter()) {
            let Some(revision) = key
                .as_f64()
                .filter(|r| r.fract() == 0.0 && *r >= 1.0 && *r <= MAX_REVISION as f64)
            else {
                return Err(self.corrupt(format!("log key {key:?} is not a revision")));
            };
            let revision = revision as u64;
            // IndexedDB returns number keys in order; anything else is damage.
            if prev.is_some_and(|p| revision <= p) {
                return Err(self.corrupt(format!("log revision {revision} out of order")));
            }
            prev = Some(revision);
            let Some(bytes) = value.dyn_ref::<js_sys::Uint8Array>() else {
                return Err(self.corrupt(format!("log record {revision} is not bytes")));
            };
            if snapshot.as_ref().is_none_or(|(s, _)| revision > *s) {
                records.push(LogBytes {
                    revision,
                    bytes: bytes.to_vec(),
                });
            }
        }
        self.snapshot_revision = snapshot.as_ref().map(|(r, _)| *r);
        self.last_revision = prev.max(self.snapshot_revision);
        self.loaded = true;
        Ok(Recovered {
            snapshot: snapshot.map(|(_, b)| b),
            records,
            repairs: Vec::new(),
        })
    }

    fn validate(&self, records: &[LogBytes]) -> Result<(), StorageError> {
        let mut last = self.last_revision;
        for r in records {
            if r.revision > MAX_REVISION || last.is_some_and(|l| r.revision <= l) {
                return Err(StorageError::Invalid {
                    op: "append",
                    reason: format!(
                        "revision {} is not above the last revision {} (or above 2^53)",
                        r.revision,
                        last.unwrap_or_default()
                    ),
                });
            }
            last = Some(r.revision);
        }
        Ok(())
    }
}

impl Drop for IdbStorage {
    fn drop(&mut self) {
        close_database(&self.db);
        if let Some(release) = self.release.take() {
            // Releasing a Web Lock cannot fail in a way we could act on.
            let _ = release.call0(&JsValue::UNDEFINED);
        }
    }
}

#[async_trait::async_trait(?Send)]
impl Storage for IdbStorage {
    async fn load(&mut self) -> Result<Recovered, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        self.load_now().await
    }

    async fn append(&mut self, records: &[LogBytes]) -> Result<(), StorageError> {
        self.check_writable("append")?;
        self.validate(records)?;
        let Some(last) = records.last().map(|r| r.revision) else {
            return Ok(());
        };
        let revisions = js_sys::Float64Array::new_with_length(records.len() as u32);
        let values = js_sys::Array::new_with_length(records.len() as u32);
        for (i, r) in records.iter().enumerate() {
            revisions.set_index(i as u32, r.revision as f64);
            values.set(
                i as u32,
                js_sys::Uint8Array::from(r.bytes.as_slice()).into(),
            );
        }
        let committed = JsFuture::from(append(
            &self.db,
            &revisions,
            &values,
            self.options.durability(),
        ))
        .await;
        match committed {
            Ok(_) => {
                self.last_revision = Some(last);
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(io("append", &self.name)(e))
            }
        }
    }

    async fn sync(&mut self) -> Result<(), StorageError> {
        // Every append already committed its own transaction.
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        Ok(())
    }

    async fn write_snapshot(&mut self, revision: u64, snapshot: &[u8]) -> Result<(), StorageError> {
        self.check_writable("write_snapshot")?;
        if revision > MAX_REVISION || self.snapshot_revision.is_some_and(|s| revision < s) {
            return Err(StorageError::Invalid {
                op: "write_snapshot",
                reason: format!("revision {revision} is older than the current snapshot's"),
            });
        }
        let committed = JsFuture::from(write_snapshot(
            &self.db,
            revision as f64,
            snapshot,
            self.options.durability(),
        ))
        .await;
        match committed {
            Ok(_) => {
                self.snapshot_revision = Some(revision);
                self.last_revision = self.last_revision.max(Some(revision));
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(io("write_snapshot", &self.name)(e))
            }
        }
    }

    fn supports_index_images(&self) -> bool {
        true
    }

    async fn write_index_images(
        &mut self,
        revision: u64,
        images: &[IndexImage],
    ) -> Result<(), StorageError> {
        self.check_writable("write_index_images")?;
        check_images_revision(revision, self.snapshot_revision)?;
        let bytes = encode_image_set(revision, images);
        // A failure here does not poison: images are a cache, the log and snapshot are intact.
        JsFuture::from(write_images(
            &self.db,
            revision as f64,
            &bytes,
            self.options.durability(),
        ))
        .await
        .map(drop)
        .map_err(io("write_index_images", &self.name))
    }

    async fn load_index_images(&mut self) -> Result<Vec<IndexImage>, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        if !self.loaded {
            return Err(StorageError::Invalid {
                op: "load_index_images",
                reason: "call load() first".into(),
            });
        }
        let Some(revision) = self.snapshot_revision else {
            return Ok(Vec::new());
        };
        let stored = JsFuture::from(load_images(&self.db, revision as f64))
            .await
            .map_err(io("load_index_images", &self.name))?;
        if stored.is_undefined() || stored.is_null() {
            return Ok(Vec::new());
        }
        let Some(bytes) = stored.dyn_ref::<js_sys::Uint8Array>() else {
            return Err(self.corrupt("stored index images are not bytes".into()));
        };
        decode_image_set(&bytes.to_vec(), revision).map_err(|e| match e {
            ImageSetError::UnknownVersion(v) => StorageError::Unsupported {
                file: format!("indexeddb:{}", self.name),
                reason: format!("index image set format version {v}"),
            },
            e => StorageError::Corrupt {
                file: format!("indexeddb:{}", self.name),
                offset: e.offset(),
                reason: e.to_string(),
            },
        })
    }
}
