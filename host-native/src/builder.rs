//! Configuring and opening a store.

use std::sync::Arc;

use std::path::Path;
use std::time::Duration;

use statemesh_core::{EngineConfig, JsonEncoding, Storage};
use statemesh_fs::{FsOptions, FsStorage, SyncPolicy};

use crate::clock::{Clock, SystemClock};
use crate::error::Result;
use crate::store::Store;

/// Builds a [`Store`]. `Store::builder().open_in_memory().await` gives the defaults.
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    pub(crate) engine: EngineConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) event_capacity: usize,
    pub(crate) durability: Durability,
    pub(crate) sync_every: Option<Duration>,
    pub(crate) checkpoint_every: u64,
    pub(crate) checkpoint_bytes: u64,
    pub(crate) max_backlog_bytes: usize,
    pub(crate) fs: FsOptions,
    pub(crate) codecs: Vec<(String, Arc<dyn statemesh_core::ValueCodec>)>,
    pub(crate) strict_codecs: bool,
    pub(crate) indexes: Vec<crate::search::Declaration>,
    pub(crate) vectors: crate::search::VectorChoice,
}

/// When a write on durable storage is acknowledged. Both modes run the same engine; only the
/// moment of the acknowledgement (and of reads) differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Consistent: a write returns only once storage reports it durable, and a read never sees
    /// a write that a crash could still take back (it waits for that write's fsync instead).
    #[default]
    Cp,
    /// Available: a write returns as soon as memory holds it; the committer persists it in the
    /// background (call [`crate::Store::flush`] to wait). A crash may lose the latest writes.
    Ap,
}

impl Default for StoreBuilder {
    fn default() -> Self {
        StoreBuilder {
            engine: EngineConfig::default(),
            clock: Arc::new(SystemClock),
            event_capacity: 4096,
            durability: Durability::Cp,
            sync_every: None,
            checkpoint_every: 100_000,
            checkpoint_bytes: 64 << 20,
            max_backlog_bytes: crate::committer::DEFAULT_MAX_BACKLOG_BYTES,
            fs: FsOptions::default(),
            codecs: Vec::new(),
            strict_codecs: false,
            indexes: Vec::new(),
            vectors: Default::default(),
        }
    }
}

impl StoreBuilder {
    /// The whole engine configuration at once.
    pub fn engine_config(mut self, config: EngineConfig) -> Self {
        self.engine = config;
        self
    }

    /// Path separator of keys (default `.`).
    pub fn separator(mut self, separator: char) -> Self {
        self.engine = self.engine.with_separator(separator);
        self
    }

    /// Fold keys to lower case.
    pub fn case_insensitive_keys(mut self, yes: bool) -> Self {
        self.engine = self.engine.with_case_insensitive_keys(yes);
        self
    }

    /// Largest stored value in bytes (default 16 MiB).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.engine = self.engine.with_max_value_size(bytes);
        self
    }

    /// Bounds memory: beyond `max_entries` keys or `max_bytes` of keys and values, the least
    /// recently used keys are evicted (a scan-resistant segmented LRU; evictions are change
    /// events of kind `Evict` and are persisted). Meant for AP stores used as caches.
    pub fn memory_limits(mut self, max_entries: Option<u64>, max_bytes: Option<u64>) -> Self {
        self.engine = self.engine.with_memory_limits(max_entries, max_bytes);
        self
    }

    /// Changes kept in memory for `get_at`, key histories and change streams that start in the
    /// past (default 10,000; 0 keeps none), and up to a sixteenth more: the oldest are dropped
    /// in blocks ([`EngineConfig::history_bound`](crate::core::EngineConfig::history_bound)).
    /// See docs/history.md.
    pub fn history_limit(mut self, changes: usize) -> Self {
        self.engine = self.engine.with_history_limit(changes);
        self
    }

    /// How JSON values are stored (JSON text by default, or MessagePack).
    pub fn json_encoding(mut self, encoding: JsonEncoding) -> Self {
        self.engine = self.engine.with_json_encoding(encoding);
        self
    }

    /// The clock the store reads (the system clock by default; [`crate::ManualClock`] in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Events buffered per subscriber before it lags (default 4096).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// CP (default) or AP acknowledgement for stores on durable storage.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Also sync storage on this period (for adapters whose sync policy is not "always").
    pub fn sync_every(mut self, period: Duration) -> Self {
        self.sync_every = Some(period);
        self
    }

    /// Write a snapshot (and let storage drop the log it covers) after this many log records
    /// (default 100,000). Fewer means faster recovery and more snapshot writing.
    pub fn checkpoint_every(mut self, records: u64) -> Self {
        self.checkpoint_every = records.max(1);
        self
    }

    /// Also write a snapshot after this many bytes of log records (default 64 MiB), so that a
    /// few huge writes (bulk imports) do not leave a long log to replay. `u64::MAX` turns the
    /// byte trigger off.
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes.max(1);
        self
    }

    /// Most bytes of encoded log records that may wait for the committer's next round, besides
    /// the round it is appending (default 64 MiB). An AP write that finds more waiting
    /// returns only once its own records are appended, so a
    /// store that writes faster than its storage keeps up waits for the disk instead of
    /// growing memory without bound. CP writes always wait.
    pub fn max_backlog_bytes(mut self, bytes: usize) -> Self {
        self.max_backlog_bytes = bytes.max(1);
        self
    }

    /// When the file adapter fsyncs (default: every write, before it is acknowledged).
    /// `EveryMillis(n)` also syncs on an `n` ms timer; a crash may then lose up to about `n` ms
    /// of acknowledged writes.
    pub fn sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.fs = self.fs.sync(policy);
        if let SyncPolicy::EveryMillis(ms) = policy {
            self.sync_every = Some(Duration::from_millis(ms.max(1)));
        }
        self
    }

    /// Size at which the file adapter starts a new log segment (default 64 MiB).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.fs = self.fs.segment_bytes(bytes);
        self
    }

    /// Opens (or creates) a store in directory `dir` with the file adapter: a checksummed
    /// write-ahead log plus snapshots, locked against a second opener. CP by default.
    pub async fn open(self, dir: impl AsRef<Path>) -> Result<Store> {
        let storage = FsStorage::open(dir, self.fs.clone()).map_err(crate::Error::Storage)?;
        Store::open_storage(self, Box::new(storage)).await
    }

    /// Opens a store on a storage adapter: recovers its snapshot and log, then persists every
    /// write through it. Must run inside a tokio runtime.
    pub async fn open_with_storage(self, storage: impl Storage + 'static) -> Result<Store> {
        Store::open_storage(self, Box::new(storage)).await
    }

    /// Opens an empty store held in memory. Must run inside a tokio runtime (for the expiry timer).
    pub async fn open_in_memory(self) -> Result<Store> {
        Store::from_parts(self, None)
    }

    /// Opens an in-memory store holding the state of a snapshot taken with [`Store::snapshot`].
    pub async fn open_snapshot(self, snapshot: &[u8]) -> Result<Store> {
        Store::from_parts(self, Some(snapshot))
    }
}
