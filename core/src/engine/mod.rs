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
use crate::key::{KeyError, KeyRef, join_key_compact};
use crate::keyspace::{Keyspace, Position};
use crate::log::{EncodedLog, LogOp, LogRecord};
use crate::log_encoding::{Head, KeyedOp, push_keyed_op, push_op, push_open_head};
use crate::lru::Lru;
use crate::ops::{WriteOp, WriteResult};
use crate::time::Timestamp;
use crate::value::{StoredValue, Value};

/// [`Batch::last_op`] of a record whose only op was written with its head: the op starts
/// where the head ends (computed when needed, which only a patch does).
const AFTER_HEAD: usize = usize::MAX;

/// What [`Engine::update_in_place`] did; the input comes back when it did not write.
pub(super) enum InPlace<V, T> {
    /// The write is done.
    Done(WriteResult, T),
    /// The key does not exist.
    Missing(V),
    /// The key is at this position, and the write is one for the general path.
    Declined(Position, V),
}

/// The head `batch`'s record is written with.
#[inline]
fn record_head(batch: &Batch) -> Head {
    Head {
        format: crate::log::LOG_FORMAT_V1,
        revision: batch.revision,
        at: batch.at.0,
    }
}

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
    /// Whether single-key updates may change entries where they lie
    /// ([`Engine::update_in_place`]); off only in tests that hold that path to the general one.
    in_place_updates: bool,
    /// Committed records waiting for the host, encoded.
    log: EncodedLog,
    /// Records at the front of `log` already handed out by [`Engine::poll_log`].
    log_polled: usize,
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
    /// The batch's record is written straight into the engine's log as its ops are logged:
    /// where it starts there, how many ops it has, and where the last one starts
    /// ([`AFTER_HEAD`]: right after the record's head).
    record_start: usize,
    op_count: usize,
    last_op: usize,
    changed: u64,
    /// Commit a revision even when no key changed: the record carries a transaction op
    /// (prepare or a resolution) that replay must see.
    marker: bool,
    /// Where a single-key write found the key it read, taken by the install that replaces it.
    found: Option<Position>,
    /// The entry being installed is what [`Engine::next_entry`] made of the entry at `found`,
    /// unchanged since: replay of a [`LogOp::Update`] derives exactly it. Set only by
    /// [`Engine::follow_entry`]; a caller that changes the entry afterwards clears it.
    follows: bool,
    /// The written form of a single-key write's key, when the caller had it at hand, for the
    /// install's change event.
    event_key: Option<CompactString>,
}

impl Batch {
    /// An empty batch for `revision` at `at`; replay builds these to derive a record's entries.
    fn at_revision(revision: u64, at: Timestamp) -> Batch {
        Batch {
            revision,
            at,
            record_start: 0,
            op_count: 0,
            last_op: 0,
            changed: 0,
            marker: false,
            found: None,
            follows: false,
            event_key: None,
        }
    }
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
            in_place_updates: true,
            log: EncodedLog::new(),
            log_polled: 0,
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
            self.log_polled = 0;
        }
    }

    /// Turns off changing entries in place for single-key updates, so tests can compare that
    /// path with the general one. Nothing observable differs.
    #[doc(hidden)]
    pub fn set_in_place_updates(&mut self, on: bool) {
        self.in_place_updates = on;
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

    /// Moves every committed log record waiting into `into` (emptied first), oldest first, for
    /// the host to make durable. The engine keeps `into`'s old buffers for its next records, so a
    /// host that passes the same few logs back and forth makes logging allocate nothing.
    pub fn take_log(&mut self, into: &mut EncodedLog) {
        into.clear();
        self.append_log_to(into);
    }

    /// Moves every committed log record waiting to the end of `to`, after the records it
    /// already holds, oldest first. A host that collects several writes' records in one log
    /// before it hands them to storage calls this once per write: into an empty `to` the
    /// records move without a copy (the engine keeps `to`'s old buffers for its next records,
    /// as with [`Engine::take_log`]); otherwise they are copied and the engine keeps its own.
    pub fn append_log_to(&mut self, to: &mut EncodedLog) {
        if !self.has_log() {
            return;
        }
        self.log.discard_open();
        self.log.drop_front(std::mem::take(&mut self.log_polled));
        if to.is_empty() {
            to.clear();
            std::mem::swap(&mut self.log, to);
        } else {
            to.extend_from(&self.log);
            self.log.clear();
        }
    }

    /// True when committed records wait for [`Engine::take_log`] or [`Engine::poll_log`].
    pub fn has_log(&self) -> bool {
        self.log.len() > self.log_polled
    }

    /// The next log record to make durable, oldest first, decoded: for hosts and tests that
    /// want the structure; [`Engine::take_log`] hands over the encoded bytes storage takes.
    ///
    /// # Panics
    /// Only if the engine's encoder wrote a record its decoder cannot read, which the property
    /// tests of `log_encoding` rule out.
    pub fn poll_log(&mut self) -> Option<LogRecord> {
        let (_, bytes) = self.log.get(self.log_polled)?;
        let record = LogRecord::decode(bytes).expect("the engine decodes the records it encodes");
        self.log_polled += 1;
        if self.log_polled == self.log.len() {
            self.log.clear();
            self.log_polled = 0;
        }
        Some(record)
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
        Batch::at_revision(self.revision + 1, at)
    }

    fn commit(&mut self, mut batch: Batch) -> u64 {
        if batch.changed == 0 && !batch.marker {
            self.history_skipped = false;
            if batch.op_count > 0 {
                self.log.discard_open();
            }
            return self.revision;
        }
        self.enforce_limits(&mut batch);
        self.revision = batch.revision;
        self.trim_history();
        if self.capture_log {
            if batch.op_count == 0 {
                self.open_record(&mut batch);
            }
            self.log
                .close_record(batch.record_start, record_head(&batch), batch.op_count);
        }
        self.revision
    }

    /// Starts `batch`'s record in the log with its head, for a first op that does not write
    /// the head itself.
    fn open_record(&mut self, batch: &mut Batch) {
        let (bytes, start) = self.log.open_record();
        push_open_head(bytes, record_head(batch));
        batch.record_start = start;
    }

    /// Logs a single-key op of `batch`, encoded from the key and entry being written.
    #[inline]
    fn log_keyed(
        &mut self,
        batch: &mut Batch,
        op: KeyedOp,
        ns: &str,
        path: &str,
        entry: Option<&Entry>,
    ) {
        Self::log_keyed_into(&mut self.log, batch, op, ns, path, entry);
    }

    /// [`Engine::log_keyed`] for a caller that holds the entry borrowed from the keyspace.
    #[inline]
    fn log_keyed_into(
        log: &mut EncodedLog,
        batch: &mut Batch,
        op: KeyedOp,
        ns: &str,
        path: &str,
        entry: Option<&Entry>,
    ) {
        if batch.op_count == 0 {
            let (bytes, start) = log.open_record();
            batch.record_start = start;
            batch.last_op = AFTER_HEAD;
            push_keyed_op(bytes, Some(record_head(batch)), op, ns, path, entry);
        } else {
            let bytes = log.open_bytes();
            batch.last_op = bytes.len();
            push_keyed_op(bytes, None, op, ns, path, entry);
        }
        batch.op_count += 1;
    }

    /// Logs any op of `batch` (the rare kinds, which postcard encodes). On failure nothing is
    /// logged.
    fn log_op(&mut self, batch: &mut Batch, op: &LogOp) -> Result<(), EngineError> {
        if batch.op_count == 0 {
            self.open_record(batch);
        }
        let bytes = self.log.open_bytes();
        let start = bytes.len();
        if let Err(e) = push_op(bytes, op) {
            bytes.truncate(start);
            if batch.op_count == 0 {
                self.log.discard_open();
            }
            return Err(EngineError::Unloggable(e.to_string()));
        }
        batch.last_op = start;
        batch.op_count += 1;
        Ok(())
    }

    /// The entry a write to `key` produces, given the key's current entry.
    fn next_entry(
        &self,
        batch: &Batch,
        old: Option<&Entry>,
        value: StoredValue,
        expires_at: Option<Timestamp>,
    ) -> Entry {
        let checksum = crate::value::checksum(value.as_bytes());
        self.next_entry_checked(batch, old, value, checksum, expires_at)
    }

    /// [`Engine::next_entry`] for a single-key write whose batch found the key at `old`'s
    /// position: marks the batch so the install logs an [`LogOp::Update`] when `old` exists.
    fn follow_entry(
        &self,
        batch: &mut Batch,
        old: Option<&Entry>,
        value: StoredValue,
        expires_at: Option<Timestamp>,
    ) -> Entry {
        batch.follows = old.is_some() && batch.found.is_some();
        self.next_entry(batch, old, value, expires_at)
    }

    /// [`Engine::next_entry`] for a value whose checksum is known (replay checked it already).
    fn next_entry_checked(
        &self,
        batch: &Batch,
        old: Option<&Entry>,
        value: StoredValue,
        checksum: u64,
        expires_at: Option<Timestamp>,
    ) -> Entry {
        Entry {
            checksum,
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
        Ok(StoredValue::encode(
            value,
            self.config.json_encoding,
            self.value_limit(),
        )?)
    }

    /// The largest stored value: a value that alone exceeds the memory limit could never be
    /// kept, so it is refused.
    fn value_limit(&self) -> usize {
        match self.config.max_bytes {
            Some(max) => self
                .config
                .max_value_size
                .min(usize::try_from(max).unwrap_or(usize::MAX)),
            None => self.config.max_value_size,
        }
    }

    /// Memory charged for one entry.
    fn cost(ns: &str, path: &str, entry: &Entry) -> u64 {
        (ns.len() + path.len() + entry.value.len()) as u64 + crate::config::ENTRY_OVERHEAD
    }

    /// Stores `entry` under the key with its bookkeeping (count, bytes, eviction queues);
    /// returns the entry it replaced. One hash lookup unless eviction is on.
    fn store_entry(
        &mut self,
        ns: &str,
        path: &str,
        entry: Entry,
        found: Option<Position>,
    ) -> Option<Entry> {
        let new_cost = Self::cost(ns, path, &entry);
        let indexed = (!self.search.is_empty()).then(|| entry.value.clone());
        let keyspace = match self.namespaces.get_mut(ns) {
            Some(ks) => ks,
            None => self.namespaces.entry(CompactString::from(ns)).or_default(),
        };
        if self.reserve_next.is_some() {
            capacity::apply(&mut self.reserve_next, ns, keyspace);
        }
        let old = match found {
            Some(at) => match keyspace.replace_at(at, path, entry) {
                Ok(old) => Some(old),
                Err(entry) => keyspace.insert(path, entry),
            },
            None => keyspace.insert(path, entry),
        };
        self.bytes += new_cost;
        match &old {
            Some(old) => self.bytes -= Self::cost(ns, path, old),
            None => self.entries += 1,
        }
        // Eviction bookkeeping only when eviction is on: a tuple of both lookups ran the
        // second one (a hash probe and a key compare) on every write.
        if let Some(lru) = self.lru.as_mut()
            && let Some(slot) = keyspace.get_mut(path)
        {
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

    /// Stores `entry` under the key, recording the log op, the expiry index and the event.
    fn install(&mut self, batch: &mut Batch, ns: &str, path: &str, entry: Entry, kind: ChangeKind) {
        let new_expiry = entry.expires_at;
        let version = entry.version;
        let new_value = self.wants_events().then(|| entry.value.clone());
        let follows = std::mem::take(&mut batch.follows);
        if self.capture_log {
            // Knowing it from how the entry was made saves looking the old entry up again
            // (about 150 instructions of a pipelined Redis-port write); the tests check it.
            debug_assert!(
                !follows || self.follows_found(batch, ns, path, &entry),
                "an entry marked as following its old one does not"
            );
            let op = if kind == ChangeKind::Metadata {
                KeyedOp::Metadata
            } else if follows {
                KeyedOp::Update
            } else {
                KeyedOp::Put
            };
            self.log_keyed(batch, op, ns, path, Some(&entry));
        }
        let old = self.store_entry(ns, path, entry, batch.found.take());
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
            let key = batch
                .event_key
                .take()
                .unwrap_or_else(|| join_key_compact(ns, path));
            let old = old.map(|o| (o.value, o.version, o.mod_revision));
            self.emit_written(batch, key, kind, version, old, new);
        }
    }

    /// The change event of `key` (its written form), which `batch` wrote: `old` is the value,
    /// version and modification revision it replaced.
    #[inline]
    fn emit_written(
        &mut self,
        batch: &Batch,
        key: CompactString,
        kind: ChangeKind,
        version: u64,
        old: Option<(StoredValue, u64, u64)>,
        new: StoredValue,
    ) {
        let (old, old_version, old_mod_revision) = match old {
            Some((value, version, mod_revision)) => (Some(value), version, mod_revision),
            None => (None, 0, 0),
        };
        self.emit(ChangeEvent {
            revision: batch.revision,
            at: batch.at,
            key,
            kind,
            version,
            old,
            new: Some(new),
            old_version,
            old_mod_revision,
        });
    }

    /// Whether single-key writes may change an entry where it lies ([`Engine::update_in_place`]):
    /// nothing but the entry has to see the change (no search index, eviction queues or
    /// capacity reservation).
    #[inline]
    pub(super) fn in_place_allowed(&self) -> bool {
        self.in_place_updates
            && self.search.is_empty()
            && self.lru.is_none()
            && self.reserve_next.is_none()
    }

    /// A single-key write that replaces the value of `key` and keeps its TTL and metadata,
    /// done where the entry lies, with one lookup: `next` turns the key's current entry into
    /// the new value, or refuses (`Err`), or declines (`Ok(Err(_))`: the write changes more
    /// than the value, such as the TTL, and takes the general path). The result is the general
    /// path's to the byte (the version and modification revision and time move on, the same
    /// log op, [`LogOp::Update`], and change event; a property test holds the two together).
    /// `input` goes to `next`, which gives it back when it declines, and comes back when the
    /// key is missing. Building a new entry, moving it through the install into the keyspace
    /// and dropping the old one, after a second lookup, cost about 400 instructions of a
    /// pipelined Redis-port write, with several store-forwarding stalls
    /// (docs/resp-performance.md, item 26). Only when [`Engine::in_place_allowed`]; `now` has
    /// been through [`Engine::begin`].
    pub(super) fn update_in_place<V, T, E>(
        &mut self,
        now: Timestamp,
        key: &KeyRef<'_>,
        written: Option<&str>,
        input: V,
        next: impl FnOnce(&Entry, V) -> Result<Result<(StoredValue, T), V>, E>,
    ) -> Result<InPlace<V, T>, E> {
        let wants_events = self.wants_events();
        let (ns, path) = (key.namespace.as_ref(), key.path.as_ref());
        let Some((at, entry)) = self
            .namespaces
            .get_mut(ns)
            .and_then(|ks| ks.get_with_position_mut(path))
        else {
            return Ok(InPlace::Missing(input));
        };
        let (value, extra) = match next(entry, input)? {
            Ok(replace) => replace,
            Err(input) => return Ok(InPlace::Declined(at, input)),
        };
        // `Engine::batch`, which cannot borrow `self` while `entry` does.
        let mut batch = Batch::at_revision(self.revision + 1, now);
        let new = wants_events.then(|| value.clone());
        let (old_len, new_len) = (entry.value.len() as u64, value.len() as u64);
        entry.checksum = crate::value::checksum(value.as_bytes());
        let old = std::mem::replace(&mut entry.value, value);
        let (old_version, old_mod_revision) = (entry.version, entry.mod_revision);
        entry.version = old_version + 1;
        entry.updated_at = batch.at;
        entry.mod_revision = batch.revision;
        let version = entry.version;
        if self.capture_log {
            Self::log_keyed_into(
                &mut self.log,
                &mut batch,
                KeyedOp::Update,
                ns,
                path,
                Some(entry),
            );
        }
        self.bytes = self.bytes - old_len + new_len;
        batch.changed += 1;
        if let Some(new) = new {
            let event_key = match written {
                Some(written) => key.compact_written_form(written),
                None => join_key_compact(ns, path),
            };
            let old = Some((old, old_version, old_mod_revision));
            self.emit_written(&batch, event_key, ChangeKind::Update, version, old, new);
        }
        let result = self.single_result(batch, WriteOp::Update, version);
        Ok(InPlace::Done(result, extra))
    }

    /// The entry of `key` at `at`, where [`Engine::update_in_place`] found it.
    pub(super) fn found_at(&self, key: &KeyRef<'_>, at: Position) -> Option<(Position, &Entry)> {
        self.entry_at(&key.namespace, &key.path, at)
            .map(|entry| (at, entry))
    }

    /// The entry of `ns:path` at `at`; `None` when `at` no longer holds it.
    fn entry_at(&self, ns: &str, path: &str, at: Position) -> Option<&Entry> {
        self.namespaces.get(ns).and_then(|ks| ks.get_at(at, path))
    }

    /// Whether `entry` is what replay of a [`LogOp::Update`] derives: the single-key write
    /// found the key's current entry (its position is in the batch) and `entry` follows from
    /// it by [`Engine::next_entry`]'s rule, checked field by field against the entry replay
    /// will see. Debug builds (every test) hold [`Batch::follows`] to it on each install.
    fn follows_found(&self, batch: &Batch, ns: &str, path: &str, entry: &Entry) -> bool {
        let Some(at) = batch.found else {
            return false;
        };
        let Some(old) = self.entry_at(ns, path, at) else {
            return false;
        };
        entry.version == old.version.wrapping_add(1)
            && entry.created_at == old.created_at
            && entry.create_revision == old.create_revision
            && entry.updated_at == batch.at
            && entry.mod_revision == batch.revision
            && entry.user_meta == old.user_meta
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
            let op = match kind {
                ChangeKind::Expire => KeyedOp::Expire,
                ChangeKind::Evict => KeyedOp::Evict,
                _ => KeyedOp::Delete,
            };
            self.log_keyed(batch, op, ns, path, None);
        }
        batch.changed += 1;
        self.last_removal = batch.revision;
        if self.wants_events() {
            self.emit(ChangeEvent {
                revision: batch.revision,
                at: batch.at,
                key: join_key_compact(ns, path),
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
