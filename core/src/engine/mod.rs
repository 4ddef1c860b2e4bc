//! The engine: a deterministic, sans-IO state machine over namespaced keys.
//!
//! # Host contract
//!
//! The engine never reads a clock, touches a file or spawns a thread. A host drives it:
//!
//! 1. Call an operation with the current time. A write returns its reply and, when log capture
//!    is on, queues one [`LogRecord`] (read it with [`Engine::poll_log`]).
//! 2. Hand drained log records to durable storage. In CP mode, acknowledge the write to the caller
//!    only once storage reports them durable; in AP mode the host may acknowledge first.
//! 3. If persisting fails, stop accepting writes (the store is poisoned) until it is reopened from
//!    storage with [`Engine::restore`] and [`Engine::replay`].
//! 4. Drain [`Engine::poll_event`] to deliver change events, and call
//!    [`Engine::handle_timeout`] at (or after) the deadline [`Engine::poll_timeout`] returns, so
//!    expired keys are removed and their expiry events emitted.
//!
//! Time never runs backwards inside an engine: it keeps the highest `now` it was given and uses
//! that when a later call passes an earlier one. Expired keys are invisible to every read from
//! the moment they expire, whether or not the sweep has removed them yet; every write first sweeps
//! the keys that are due, so writes always see a swept keyspace.
//!
//! Every committed write moves the store revision up by exactly one; every key it touched gets
//! that revision as its `mod_revision`. A write that changes nothing does not move it.
//!
//! Same inputs give the same replies, the same log bytes and the same snapshot bytes: all
//! iteration into outputs goes through ordered maps.

mod capacity;
mod codec;
mod evict;
mod history;
mod interactive;
mod patch;
mod prepared;
pub use history::{KeyVersion, ValueAt};
pub use patch::{LoggedPatch, Patch};
mod multi;
pub use multi::KeyPattern;
mod read;
mod search;
mod snapshot;
pub use snapshot::{SNAPSHOT_FORMAT_V1, SNAPSHOT_FORMAT_V2};
mod ttl;
mod txn;
mod write;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use compact_str::CompactString;

use crate::config::EngineConfig;
use crate::entry::Entry;
use crate::error::EngineError;
use crate::event::{ChangeEvent, ChangeKind};
use crate::key::{KeyError, join_key};
use crate::keyspace::Keyspace;
use crate::log::{LogOp, LogRecord};
use crate::lru::Lru;
use crate::ops::{WriteOp, WriteResult};
use crate::time::Timestamp;
use crate::value::{StoredValue, Value};

/// Op lists kept by [`Engine::recycle_log`], at most (enough for an AP committer's round), and
/// the longest kept (single-key writes' lists).
const MAX_SPARE_OPS: usize = 4096;
const MAX_RECYCLED_OPS: usize = 4;

/// The keyspace state machine. See the module documentation for the host contract.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    namespaces: BTreeMap<CompactString, Keyspace>,
    /// Keys with a TTL, by deadline. Ordered so sweeps and snapshots are deterministic.
    expiry: BTreeSet<(Timestamp, CompactString, CompactString)>,
    revision: u64,
    /// Revision of the last write that removed a key (delete or expiry).
    last_removal: u64,
    /// Keys held, and their approximate memory (see `EngineConfig::max_bytes`).
    entries: u64,
    bytes: u64,
    /// Eviction queues, when the configuration sets memory limits.
    lru: Option<Lru>,
    /// The highest `now` seen. Atomic because reads (`&self`) advance it too.
    clock: AtomicU64,
    capture_log: bool,
    capture_events: bool,
    log: VecDeque<LogRecord>,
    /// Emptied op lists of persisted records, for the next writes ([`Engine::recycle_log`]).
    spare_ops: Vec<Vec<LogOp>>,
    events: VecDeque<ChangeEvent>,
    history: history::History,
    /// Set for one oversized write; see `skip_history_if_oversized`.
    history_skipped: bool,
    /// Open interactive transactions.
    txns: interactive::OpenTxns,
    /// Prepared (two-phase commit) transactions and their key locks.
    pending: prepared::Pending,
    /// Codecs that check `Value::Custom` writes; not part of the state.
    codecs: crate::codec::CodecRegistry,
    /// Room to reserve in the next namespace written (see [`Engine::reserve`]); not state.
    reserve_next: Option<capacity::Reservation>,
    /// Declared search indexes; derived from the keyspace, not part of the state.
    search: crate::search::Indexes,
}

/// The changes of one write, committed as one revision.
struct Batch {
    revision: u64,
    at: Timestamp,
    ops: Vec<LogOp>,
    changed: u64,
    /// Commit a revision even when no key changed: the record carries a transaction op
    /// (prepare or a resolution) that replay must see.
    marker: bool,
}

impl Engine {
    /// An empty engine.
    pub fn new(config: EngineConfig) -> Result<Engine, KeyError> {
        config.validate()?;
        let lru = config.has_memory_limits().then(Lru::default);
        Ok(Engine {
            config,
            namespaces: BTreeMap::new(),
            expiry: BTreeSet::new(),
            revision: 0,
            last_removal: 0,
            entries: 0,
            bytes: 0,
            lru,
            clock: AtomicU64::new(0),
            capture_log: true,
            capture_events: true,
            log: VecDeque::new(),
            spare_ops: Vec::new(),
            events: VecDeque::new(),
            history: history::History::default(),
            history_skipped: false,
            txns: Default::default(),
            pending: Default::default(),
            codecs: Default::default(),
            reserve_next: None,
            search: Default::default(),
        })
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The revision of the last committed write (0 for a fresh store).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The revision of the last write that removed a key (a delete or an expiry). A host that must
    /// not show a read "key absent" before the removal is durable compares it with the durable
    /// revision.
    pub fn last_removal_revision(&self) -> u64 {
        self.last_removal
    }

    /// The engine's time: the highest `now` it has been given.
    pub fn clock(&self) -> Timestamp {
        Timestamp(self.clock.load(Ordering::Relaxed))
    }

    /// Keys held, including expired keys the sweep has not removed yet.
    pub fn len(&self) -> usize {
        usize::try_from(self.entries).unwrap_or(usize::MAX)
    }

    /// Approximate memory of keys and values, as counted for `max_bytes`.
    pub fn approx_bytes(&self) -> u64 {
        self.bytes
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// Namespaces that hold at least one key, in order.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> + '_ {
        self.namespaces.keys().map(CompactString::as_str)
    }

    /// Whether writes queue log records. Hosts without durable storage turn it off to save work.
    pub fn set_capture_log(&mut self, on: bool) {
        self.capture_log = on;
        if !on {
            self.log.clear();
        }
    }

    /// Whether writes queue change events. Hosts turn it off while nobody listens.
    pub fn set_capture_events(&mut self, on: bool) {
        self.capture_events = on;
        if !on {
            self.events.clear();
        }
    }

    /// Whether writes currently queue change events.
    pub fn captures_events(&self) -> bool {
        self.capture_events
    }

    /// The next log record to make durable, oldest first.
    pub fn poll_log(&mut self) -> Option<LogRecord> {
        self.log.pop_front()
    }

    /// Every log record waiting to be made durable, oldest first, in one allocation (a host
    /// that takes them all at once: [`Engine::poll_log`] one by one grows its collection).
    pub fn poll_log_all(&mut self) -> Vec<LogRecord> {
        self.log.drain(..).collect()
    }

    /// Takes back a record the host has persisted: its op list serves a later write, so a
    /// host that hands records back makes writes allocate nothing for their ops. Optional.
    pub fn recycle_log(&mut self, record: LogRecord) {
        let mut ops = record.ops;
        if self.spare_ops.len() < MAX_SPARE_OPS && ops.capacity() <= MAX_RECYCLED_OPS {
            ops.clear();
            self.spare_ops.push(ops);
        }
    }

    /// The next change event, oldest first.
    pub fn poll_event(&mut self) -> Option<ChangeEvent> {
        self.events.pop_front()
    }

    /// When the next key expires or the next open transaction times out, whichever is first.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let key = self.expiry.first().map(|(t, _, _)| *t);
        match (key, self.txns.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes every key whose TTL has run out by `now` (one revision for all of them, with an
    /// expiry event each) and drops open transactions past their deadline. Returns how many keys
    /// were removed.
    pub fn handle_timeout(&mut self, now: Timestamp) -> u64 {
        let now = self.observe(now);
        self.expire_txns(now);
        self.sweep(now)
    }

    /// Drops open transactions past their deadline (and lets the history go of what they pinned).
    #[inline]
    fn expire_txns(&mut self, now: Timestamp) {
        if self.txns.expire(now) {
            self.trim_history();
        }
    }

    /// Moves the engine's clock forward to `now` (never back) and returns the clock.
    fn observe(&self, now: Timestamp) -> Timestamp {
        let seen = self.clock.load(Ordering::Relaxed);
        if now.0 > seen {
            // fetch_max: concurrent readers may race; the clock still only moves forward.
            let prev = self.clock.fetch_max(now.0, Ordering::Relaxed);
            Timestamp(prev.max(now.0))
        } else {
            Timestamp(seen)
        }
    }

    /// Clock and sweep, the first step of every write.
    fn begin(&mut self, now: Timestamp) -> Timestamp {
        let now = self.observe(now);
        self.expire_txns(now);
        self.sweep(now);
        now
    }

    fn sweep(&mut self, now: Timestamp) -> u64 {
        if !matches!(self.expiry.first(), Some((t, _, _)) if *t <= now) {
            return 0;
        }
        let mut batch = self.batch(now);
        while let Some((t, ns, path)) = self.expiry.first().cloned() {
            if t > now {
                break;
            }
            self.erase(&mut batch, &ns, &path, ChangeKind::Expire);
        }
        let expired = batch.changed;
        self.commit(batch);
        expired
    }

    fn batch(&self, at: Timestamp) -> Batch {
        Batch {
            revision: self.revision + 1,
            at,
            ops: Vec::new(),
            changed: 0,
            marker: false,
        }
    }

    fn commit(&mut self, mut batch: Batch) -> u64 {
        if batch.changed == 0 && !batch.marker {
            self.history_skipped = false;
            return self.revision;
        }
        self.enforce_limits(&mut batch);
        self.revision = batch.revision;
        self.trim_history();
        if self.capture_log {
            self.log.push_back(LogRecord {
                revision: batch.revision,
                at: batch.at,
                ops: batch.ops,
            });
        }
        self.revision
    }

    /// The entry a write to `key` produces, given the key's current entry.
    fn next_entry(
        &self,
        batch: &Batch,
        old: Option<&Entry>,
        value: StoredValue,
        expires_at: Option<Timestamp>,
    ) -> Entry {
        Entry {
            checksum: crate::value::checksum(value.as_bytes()),
            value,
            created_at: old.map_or(batch.at, |o| o.created_at),
            updated_at: batch.at,
            expires_at,
            version: old.map_or(1, |o| o.version + 1),
            create_revision: old.map_or(batch.revision, |o| o.create_revision),
            mod_revision: batch.revision,
            user_meta: old.and_then(|o| o.user_meta.clone()),
            lru: Default::default(),
        }
    }

    fn encode(&self, value: &Value) -> Result<StoredValue, EngineError> {
        // A value that alone exceeds the memory limit could never be kept: refuse it.
        let limit = match self.config.max_bytes {
            Some(max) => self
                .config
                .max_value_size
                .min(usize::try_from(max).unwrap_or(usize::MAX)),
            None => self.config.max_value_size,
        };
        Ok(StoredValue::encode(
            value,
            self.config.json_encoding,
            limit,
        )?)
    }

    /// Memory charged for one entry.
    fn cost(ns: &str, path: &str, entry: &Entry) -> u64 {
        (ns.len() + path.len() + entry.value.len()) as u64 + crate::config::ENTRY_OVERHEAD
    }

    /// Stores `entry` under the key with its bookkeeping (count, bytes, eviction queues);
    /// returns the entry it replaced. One hash lookup unless eviction is on.
    fn store_entry(&mut self, ns: &str, path: &str, entry: Entry) -> Option<Entry> {
        let new_cost = Self::cost(ns, path, &entry);
        let indexed = (!self.search.is_empty()).then(|| entry.value.clone());
        let keyspace = match self.namespaces.get_mut(ns) {
            Some(ks) => ks,
            None => self.namespaces.entry(CompactString::from(ns)).or_default(),
        };
        if self.reserve_next.is_some() {
            capacity::apply(&mut self.reserve_next, ns, keyspace);
        }
        let old = keyspace.insert(path, entry);
        self.bytes += new_cost;
        match &old {
            Some(old) => self.bytes -= Self::cost(ns, path, old),
            None => self.entries += 1,
        }
        if let (Some(lru), Some(slot)) = (self.lru.as_mut(), keyspace.get_mut(path)) {
            match &old {
                // A write is a use; the key keeps its place in the queues.
                Some(old) => {
                    slot.lru = old.lru.clone();
                    slot.lru.touch();
                }
                None => {
                    let ticket = lru.ticket();
                    slot.lru.ticket = ticket;
                    lru.probation.push_back((ns.into(), path.into(), ticket));
                }
            }
        }
        // A metadata-only change keeps the value (the same shared bytes): nothing to re-index.
        if let Some(value) = indexed
            && old.as_ref().is_none_or(|o| !o.value.same_bytes(&value))
        {
            self.search.on_put(ns, path, &value);
        }
        old
    }

    /// Bookkeeping after `old` left the keyspace.
    fn account_remove(&mut self, ns: &str, path: &str, old: &Entry) {
        self.entries -= 1;
        self.bytes -= Self::cost(ns, path, old);
        self.lru_forget(old);
        if !self.search.is_empty() {
            self.search.on_remove(ns, path);
        }
    }

    /// Gives a batch's op list room for one op before its first push: a list a host handed back
    /// ([`Engine::recycle_log`]) or one sized for exactly one op. Most writes log exactly one,
    /// and a `Vec`'s first push reserves four (640 bytes where 160 are used); with a thousand
    /// records in flight during an AP committer's round, the writer paid for the allocator's
    /// fresh pages.
    #[inline]
    fn first_op_room(&mut self, batch: &mut Batch) {
        if batch.ops.capacity() == 0 {
            match self.spare_ops.pop() {
                Some(ops) => batch.ops = ops,
                None => batch.ops.reserve_exact(1),
            }
        }
    }

    /// Stores `entry` under the key, recording the log op, the expiry index and the event.
    fn install(&mut self, batch: &mut Batch, ns: &str, path: &str, entry: Entry, kind: ChangeKind) {
        let new_expiry = entry.expires_at;
        let version = entry.version;
        let new_value = self.wants_events().then(|| entry.value.clone());
        if self.capture_log {
            let (namespace, path, entry) = (ns.into(), path.into(), entry.clone());
            self.first_op_room(batch);
            batch.ops.push(if kind == ChangeKind::Metadata {
                LogOp::Metadata {
                    namespace,
                    path,
                    entry,
                }
            } else {
                LogOp::Put {
                    namespace,
                    path,
                    entry,
                }
            });
        }
        let old = self.store_entry(ns, path, entry);
        let old_expiry = old.as_ref().and_then(|o| o.expires_at);
        if old_expiry != new_expiry {
            if let Some(t) = old_expiry {
                self.expiry.remove(&(t, ns.into(), path.into()));
            }
            if let Some(t) = new_expiry {
                self.expiry.insert((t, ns.into(), path.into()));
            }
        }
        batch.changed += 1;
        if let Some(new) = new_value {
            let (old_version, old_mod_revision) =
                old.as_ref().map_or((0, 0), |o| (o.version, o.mod_revision));
            self.emit(ChangeEvent {
                revision: batch.revision,
                at: batch.at,
                key: join_key(ns, path),
                kind,
                version,
                old: old.map(|o| o.value),
                new: Some(new),
                old_version,
                old_mod_revision,
            });
        }
    }

    /// Removes the key (a delete or an expiry); returns the removed entry.
    fn erase(
        &mut self,
        batch: &mut Batch,
        ns: &str,
        path: &str,
        kind: ChangeKind,
    ) -> Option<Entry> {
        let keyspace = self.namespaces.get_mut(ns)?;
        let old = keyspace.remove(path)?;
        if keyspace.is_empty() {
            self.namespaces.remove(ns);
        }
        self.account_remove(ns, path, &old);
        if let Some(t) = old.expires_at {
            self.expiry.remove(&(t, ns.into(), path.into()));
        }
        if self.capture_log {
            let (namespace, path) = (ns.into(), path.into());
            self.first_op_room(batch);
            batch.ops.push(match kind {
                ChangeKind::Expire => LogOp::Expire { namespace, path },
                ChangeKind::Evict => LogOp::Evict { namespace, path },
                _ => LogOp::Delete { namespace, path },
            });
        }
        batch.changed += 1;
        self.last_removal = batch.revision;
        if self.wants_events() {
            self.emit(ChangeEvent {
                revision: batch.revision,
                at: batch.at,
                key: join_key(ns, path),
                kind,
                version: 0,
                old: Some(old.value.clone()),
                new: None,
                old_version: old.version,
                old_mod_revision: old.mod_revision,
            });
        }
        Some(old)
    }

    /// The reply for a single-key write that has been installed.
    fn single_result(&mut self, batch: Batch, op: WriteOp, version: u64) -> WriteResult {
        let affected = batch.changed;
        let revision = self.commit(batch);
        WriteResult {
            op,
            affected,
            version,
            revision,
            latency: Default::default(),
        }
    }

    fn noop(&self) -> WriteResult {
        WriteResult {
            op: WriteOp::Noop,
            affected: 0,
            version: 0,
            revision: self.revision,
            latency: Default::default(),
        }
    }

    fn check_batch(&self, count: usize) -> Result<(), EngineError> {
        if count > self.config.max_batch {
            return Err(EngineError::BatchTooLarge {
                count,
                limit: self.config.max_batch,
            });
        }
        Ok(())
    }
}
