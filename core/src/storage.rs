//! The storage trait: what a host needs from durable storage, and an in-memory implementation.
//!
//! Core defines the trait and never calls it: hosts do (the engine is sans-IO). An adapter stores
//! opaque bytes — encoded [`crate::LogRecord`]s and snapshots — and gives them back at open.
//! Framing, checksums, file layout and durability are the adapter's business, with one
//! exception: index images are stored as core's image set ([`crate::search::encode_image_set`]),
//! so that every adapter keeps the same, pinned bytes for them.
//!
//! Contract for every adapter (checked by the conformance suite in `tests/`):
//! 1. `append` returns `Ok` only when the records are durable under the adapter's sync policy
//!    (with a "sync always" policy: on stable storage). Records come back from `load` in append
//!    order, each exactly as appended.
//! 2. `write_snapshot(revision, bytes)` is atomic: after a crash, `load` returns either the old
//!    snapshot or the new one, never a mix. Once it returns, log records up to `revision` may be
//!    dropped; later ones must be kept.
//! 3. `load` returns the newest snapshot and every record appended after the records it covers.
//!    It may also return records the snapshot covers (replay skips them). A torn final record
//!    (a crash mid-append) is dropped and reported in [`Recovered::repairs`]; damage anywhere else
//!    is [`StorageError::Corrupt`], never silent loss.
//! 4. After a failed `append`, `sync` or `write_snapshot`, the adapter refuses further writes with
//!    [`StorageError::Poisoned`] until it is opened again.
//! 5. Index images are optional ([`Storage::supports_index_images`]; the default methods store
//!    none). An adapter that stores them keeps the set written for its current snapshot's
//!    revision: `write_index_images(revision, images)` is accepted only for that revision, is
//!    atomic (after a crash `load_index_images` returns the whole new set, the whole previous
//!    set or nothing) and replaces the previous set. `load_index_images` (after `load`) returns
//!    the set written for the loaded snapshot's revision, exactly as written, or nothing; damage
//!    is `Ok(vec![])` or an error, never a wrong image. A failed image write does not poison:
//!    images are a cache, and the engine rebuilds any index whose image is missing.

use std::sync::{Arc, Mutex};

use crate::log::EncodedLog;
use crate::search::IndexImage;

/// What an adapter recovered at open.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The newest complete snapshot, if one was written.
    pub snapshot: Option<Vec<u8>>,
    /// Log records in append order, from (at most) the snapshot's revision on.
    pub records: Vec<LogBytes>,
    /// What recovery repaired, e.g. a torn tail it truncated, for the host to report.
    pub repairs: Vec<String>,
}

/// One encoded [`crate::LogRecord`] and its revision, which adapters keep beside the bytes so they
/// can drop what a snapshot covers without decoding records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBytes {
    pub revision: u64,
    pub bytes: Vec<u8>,
}

/// The check every adapter makes before `write_index_images`: images belong to the snapshot
/// they were taken with, so `revision` must be the current snapshot's (`snapshot`).
pub fn check_images_revision(revision: u64, snapshot: Option<u64>) -> Result<(), StorageError> {
    if snapshot == Some(revision) {
        return Ok(());
    }
    Err(StorageError::Invalid {
        op: "write_index_images",
        reason: format!("revision {revision} is not the current snapshot's ({snapshot:?})"),
    })
}

/// Why storage failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("{path} is already open in another process or store")]
    Locked { path: String },
    #[error("{op} failed on {path}: {message}")]
    Io {
        op: &'static str,
        path: String,
        message: String,
    },
    #[error("corrupt data in {file} at byte {offset}: {reason}")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error("storage is poisoned by an earlier failure; reopen the store to recover")]
    Poisoned,
    /// The caller broke the contract (wrote before `load`, a revision that does not increase, a
    /// snapshot older than the current one, a record too large). Nothing was written and the
    /// storage is not poisoned.
    #[error("invalid {op}: {reason}")]
    Invalid { op: &'static str, reason: String },
    #[error("unsupported storage format in {file}: {reason}")]
    Unsupported { file: String, reason: String },
}

impl StorageError {
    /// The stable code hosts report for this failure (see [`crate::EngineError::code`]).
    pub fn code(&self) -> &'static str {
        match self {
            StorageError::Locked { .. } => "STORE_LOCKED",
            StorageError::Corrupt { .. } => "STORAGE_CORRUPT",
            StorageError::Unsupported { .. } => "STORAGE_UNSUPPORTED",
            StorageError::Io { .. } | StorageError::Poisoned | StorageError::Invalid { .. } => {
                "STORAGE"
            }
        }
    }
}

/// Durable storage for one store. See the module documentation for the contract.
#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
pub trait Storage: MaybeSend + std::fmt::Debug {
    /// The newest snapshot and the log after it.
    async fn load(&mut self) -> Result<Recovered, StorageError>;
    /// Appends encoded records; `Ok` means durable under the adapter's sync policy.
    async fn append(&mut self, records: &[LogBytes]) -> Result<(), StorageError>;
    /// Appends the records of `logs`, in order, exactly as [`Storage::append`] would (the
    /// engine's [`crate::Engine::take_log`] hands them over in this form). The default copies each
    /// record into a [`LogBytes`] first; adapters that can write from the encoded buffers
    /// override it.
    async fn append_logs(&mut self, logs: &[EncodedLog]) -> Result<(), StorageError> {
        let records: Vec<LogBytes> = logs.iter().flat_map(EncodedLog::to_log_bytes).collect();
        self.append(&records).await
    }
    /// Makes every appended record durable now, whatever the sync policy.
    async fn sync(&mut self) -> Result<(), StorageError>;
    /// Atomically replaces the snapshot with one covering revisions up to `revision`.
    async fn write_snapshot(&mut self, revision: u64, snapshot: &[u8]) -> Result<(), StorageError>;

    /// Whether this adapter stores index images. The default: no, and the two methods below
    /// store and return nothing.
    fn supports_index_images(&self) -> bool {
        false
    }

    /// Stores the index images taken at `revision`, which must be the revision of the snapshot
    /// just written, replacing any stored before (contract point 5).
    async fn write_index_images(
        &mut self,
        _revision: u64,
        _images: &[IndexImage],
    ) -> Result<(), StorageError> {
        Err(StorageError::Unsupported {
            file: String::new(),
            reason: "this storage adapter does not store index images".into(),
        })
    }

    /// The index images stored for the snapshot `load` returned; empty when there are none.
    async fn load_index_images(&mut self) -> Result<Vec<IndexImage>, StorageError> {
        Ok(Vec::new())
    }
}

/// `Send` on native targets, nothing on wasm, where JS handles are not `Send`.
#[cfg(not(target_family = "wasm"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_family = "wasm"))]
impl<T: Send> MaybeSend for T {}
/// `Send` on native targets, nothing on wasm, where JS handles are not `Send`.
#[cfg(target_family = "wasm")]
pub trait MaybeSend {}
#[cfg(target_family = "wasm")]
impl<T> MaybeSend for T {}

/// Storage in memory: for tests and for stores that persist nothing. Clones share their
/// contents, so a test can "reopen" a store from the same `MemoryStorage`.
#[derive(Debug, Default, Clone)]
pub struct MemoryStorage {
    inner: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    snapshot: Option<(u64, Vec<u8>)>,
    images: Option<(u64, Vec<IndexImage>)>,
    records: Vec<LogBytes>,
    fail_next: Option<StorageError>,
    poisoned: bool,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next write fail with `error` (and poison this handle), for failure tests.
    pub fn fail_next_write(&self, error: StorageError) {
        self.state().fail_next = Some(error);
    }

    /// Records currently held (after snapshots dropped what they cover).
    pub fn record_count(&self) -> usize {
        self.state().records.len()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A panic while holding this lock leaves plain data behind; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_write(state: &mut MemoryState) -> Result<(), StorageError> {
        if state.poisoned {
            return Err(StorageError::Poisoned);
        }
        if let Some(e) = state.fail_next.take() {
            state.poisoned = true;
            return Err(e);
        }
        Ok(())
    }
}

#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
impl Storage for MemoryStorage {
    async fn load(&mut self) -> Result<Recovered, StorageError> {
        let mut state = self.state();
        state.poisoned = false;
        Ok(Recovered {
            snapshot: state.snapshot.as_ref().map(|(_, s)| s.clone()),
            records: state.records.clone(),
            repairs: Vec::new(),
        })
    }

    async fn append(&mut self, records: &[LogBytes]) -> Result<(), StorageError> {
        let mut state = self.state();
        Self::check_write(&mut state)?;
        state.records.extend(records.iter().cloned());
        Ok(())
    }

    async fn sync(&mut self) -> Result<(), StorageError> {
        let mut state = self.state();
        Self::check_write(&mut state)
    }

    async fn write_snapshot(&mut self, revision: u64, snapshot: &[u8]) -> Result<(), StorageError> {
        let mut state = self.state();
        Self::check_write(&mut state)?;
        state.records.retain(|r| r.revision > revision);
        state.snapshot = Some((revision, snapshot.to_vec()));
        Ok(())
    }

    fn supports_index_images(&self) -> bool {
        true
    }

    async fn write_index_images(
        &mut self,
        revision: u64,
        images: &[IndexImage],
    ) -> Result<(), StorageError> {
        let mut state = self.state();
        if state.poisoned {
            return Err(StorageError::Poisoned);
        }
        check_images_revision(revision, state.snapshot.as_ref().map(|(r, _)| *r))?;
        state.images = Some((revision, images.to_vec()));
        Ok(())
    }

    async fn load_index_images(&mut self) -> Result<Vec<IndexImage>, StorageError> {
        let state = self.state();
        let current = state.snapshot.as_ref().map(|(r, _)| *r);
        Ok(match &state.images {
            Some((revision, images)) if Some(*revision) == current => images.clone(),
            _ => Vec::new(),
        })
    }
}
