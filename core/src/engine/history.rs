//! Kept history: the recent change events of the store, in revision order.
//!
//! No per-key index: keeping one cost two hash operations and a key copy per change on every
//! write, while the reads that need it (a key's versions, a read at a revision, transaction
//! validation) are rare and scan at most `history_limit` changes (tens of microseconds at the
//! default 10,000).
//!
//! It serves three things: reads of a key at an earlier revision, a key's list of versions, and
//! change-feed replay from a revision or a time. It keeps the newest
//! `EngineConfig::history_limit` changes and at most [`EngineConfig::history_bound`] (whole
//! revisions are dropped together, oldest first, a block at a time), except that an open
//! interactive transaction pins every change after its snapshot revision until it ends or
//! times out.
//!
//! The *floor* is the newest revision whose state can no longer be told apart from later ones:
//! every change with a revision above it is kept, so the state at any revision from the floor up
//! is the current state with the kept changes after it undone. A read or replay from below the
//! floor is refused with [`EngineError::Compacted`].

use std::collections::VecDeque;

use super::Engine;
use crate::error::EngineError;
use crate::event::{ChangeEvent, ChangeKind};
use crate::time::Timestamp;
use crate::value::{StoredValue, Value};

#[derive(Debug, Default)]
pub(crate) struct History {
    events: VecDeque<ChangeEvent>,
    floor: u64,
    /// The commit time of the floor revision: replay "since a time" needs every change at or
    /// after that time, so it must not start before this.
    floor_at: Timestamp,
}

/// One version of a key as the history holds it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KeyVersion {
    /// The revision that wrote this version (or removed the key).
    pub revision: u64,
    /// When that revision committed.
    pub at: Timestamp,
    pub kind: ChangeKind,
    /// The key's version number; 0 when the key did not exist (deleted, expired, evicted).
    pub version: u64,
    /// The value from this revision on; `None` when the key did not exist.
    pub value: Option<Value>,
}

impl KeyVersion {
    /// A version as a remote client rebuilds it from the wire.
    pub fn new(
        revision: u64,
        at: Timestamp,
        kind: ChangeKind,
        version: u64,
        value: Option<Value>,
    ) -> KeyVersion {
        KeyVersion {
            revision,
            at,
            kind,
            version,
            value,
        }
    }
}

impl History {
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn record(&mut self, event: ChangeEvent) {
        self.events.push_back(event);
    }

    /// Once more than `bound` changes are kept, drops whole revisions, oldest first, until at
    /// most `limit` are, but none above `pin`. Dropping a block at a time, not a revision per
    /// write, moves each dropped event once instead of out through `pop_front`.
    pub(crate) fn trim(&mut self, limit: usize, bound: usize, pin: u64) {
        let len = self.events.len();
        if len <= bound || len <= limit {
            return;
        }
        // The newest change that must go for `limit` to remain; its whole revision goes too.
        let Some(newest_dropped) = self.events.get(len - limit - 1) else {
            return;
        };
        let through = newest_dropped.revision.min(pin);
        let count = self.events.partition_point(|e| e.revision <= through);
        self.drop_front(count);
    }

    /// Drops every change up to and including `revision`; the floor becomes at least `revision`.
    pub(crate) fn drop_through(&mut self, revision: u64) {
        let count = self.events.partition_point(|e| e.revision <= revision);
        self.drop_front(count);
        self.floor = self.floor.max(revision);
    }

    /// Drops the oldest `count` changes (a whole number of revisions): the newest of them
    /// becomes the floor.
    fn drop_front(&mut self, count: usize) {
        let Some(newest) = count.checked_sub(1).and_then(|i| self.events.get(i)) else {
            return;
        };
        self.floor = self.floor.max(newest.revision);
        self.floor_at = newest.at;
        self.events.drain(..count);
    }

    /// Forgets everything: the state at `revision` (reached at `at`) becomes the floor. For
    /// restore and replay, which rebuild state without events.
    pub(crate) fn reset(&mut self, revision: u64, at: Timestamp) {
        self.events.clear();
        self.floor = revision;
        self.floor_at = at;
    }

    /// Kept changes to `key`, oldest first.
    pub(crate) fn key_events<'a>(
        &'a self,
        key: &'a str,
    ) -> impl DoubleEndedIterator<Item = &'a ChangeEvent> + 'a {
        self.events.iter().filter(move |e| e.key == key)
    }

    /// Keys changed after `revision`, newest first: a backward walk over the changes since
    /// then only (transaction validation asks this once per commit).
    pub(crate) fn keys_changed_after(&self, revision: u64) -> impl Iterator<Item = &str> {
        self.events
            .iter()
            .rev()
            .take_while(move |e| e.revision > revision)
            .map(|e| e.key.as_str())
    }

    /// Index of the first kept change with a revision above `revision`.
    fn after_revision(&self, revision: u64) -> usize {
        self.events.partition_point(|e| e.revision <= revision)
    }

    fn check(&self, revision: u64, current: u64) -> Result<(), EngineError> {
        if revision > current {
            return Err(EngineError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision < self.floor {
            return Err(EngineError::Compacted {
                requested: revision,
                floor: self.floor,
            });
        }
        Ok(())
    }
}

/// A key's value at a revision, as [`Engine::get_at`] returns it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ValueAt {
    pub value: Value,
    /// The key's version at that revision.
    pub version: u64,
    /// The revision that wrote that version.
    pub mod_revision: u64,
}

impl ValueAt {
    /// A value at a revision as a remote client rebuilds it from the wire.
    pub fn new(value: Value, version: u64, mod_revision: u64) -> ValueAt {
        ValueAt {
            value,
            version,
            mod_revision,
        }
    }
}

impl Engine {
    /// The value `key` held at `revision` (after that revision committed); `None` when the key
    /// did not exist then. Fails with [`EngineError::Compacted`] below the history floor and
    /// [`EngineError::FutureRevision`] above the current revision.
    pub fn get_at(
        &self,
        now: Timestamp,
        key: &str,
        revision: u64,
    ) -> Result<Option<ValueAt>, EngineError> {
        let key = self.config.keys.parse(key)?;
        self.value_at(now, &key, revision)
    }

    /// [`Engine::get_at`] of a parsed key; transactions read their snapshot through it.
    pub(super) fn value_at(
        &self,
        now: Timestamp,
        key: &crate::key::KeyRef<'_>,
        revision: u64,
    ) -> Result<Option<ValueAt>, EngineError> {
        self.history.check(revision, self.revision)?;
        if revision == self.revision {
            return self.value_now(now, key);
        }
        let joined = key.to_key_string();
        let mut later = None;
        let mut at_or_before = None;
        for event in self.history.key_events(&joined) {
            if event.revision <= revision {
                at_or_before = Some(event);
            } else {
                later = Some(event);
                break;
            }
        }
        let stored_at = |stored: &Option<StoredValue>, version: u64, mod_revision: u64| {
            stored
                .as_ref()
                .map(|s| {
                    Ok::<_, EngineError>(ValueAt {
                        value: s.decode()?,
                        version,
                        mod_revision,
                    })
                })
                .transpose()
        };
        if let Some(event) = at_or_before {
            return stored_at(&event.new, event.version, event.revision);
        }
        if let Some(event) = later {
            // The first kept change after `revision` tells what the key held before it.
            return stored_at(&event.old, event.old_version, event.old_mod_revision);
        }
        // No kept change since the floor: the key holds what it holds now. It was live at
        // `revision` even if its TTL has run out since: a later revision committed, and every
        // write first sweeps the keys due, so it had not expired then.
        match self.current(key) {
            Some(entry) => Ok(Some(ValueAt {
                value: entry.value.decode()?,
                version: entry.version,
                mod_revision: entry.mod_revision,
            })),
            None => Ok(None),
        }
    }

    /// The current committed state of `key` as `get` sees it (an expired key is absent).
    fn value_now(
        &self,
        now: Timestamp,
        key: &crate::key::KeyRef<'_>,
    ) -> Result<Option<ValueAt>, EngineError> {
        let now = self.observe(now);
        match self.current(key) {
            Some(entry) if !entry.is_expired(now) => Ok(Some(ValueAt {
                value: entry.value.decode()?,
                version: entry.version,
                mod_revision: entry.mod_revision,
            })),
            _ => Ok(None),
        }
    }

    /// The kept versions of `key`, oldest first: every change since the history floor.
    pub fn key_history(&self, key: &str) -> Result<Vec<KeyVersion>, EngineError> {
        let key = self.config.keys.parse(key)?;
        self.history
            .key_events(&key.to_key_string())
            .map(|e| {
                Ok(KeyVersion {
                    revision: e.revision,
                    at: e.at,
                    kind: e.kind,
                    version: e.version,
                    value: e.new.as_ref().map(StoredValue::decode).transpose()?,
                })
            })
            .collect()
    }

    /// Up to `limit` kept changes with a revision above `revision`, in order. A transaction's
    /// (or any one write's) changes share a revision and are never split across calls: a page
    /// ends on a revision boundary, so it may hold more than `limit` changes.
    pub fn changes_since(
        &self,
        revision: u64,
        limit: usize,
    ) -> Result<Vec<ChangeEvent>, EngineError> {
        self.history.check(revision, self.revision)?;
        Ok(self.page_from(self.history.after_revision(revision), limit))
    }

    /// Like [`Engine::changes_since`], from the first change committed at or after `at`.
    /// Refused with [`EngineError::Compacted`] when changes at or after `at` may have been
    /// dropped already.
    pub fn changes_since_time(
        &self,
        at: Timestamp,
        limit: usize,
    ) -> Result<Vec<ChangeEvent>, EngineError> {
        let history = &self.history;
        if history.floor > 0 && at <= history.floor_at {
            return Err(EngineError::Compacted {
                requested: history
                    .events
                    .front()
                    .map_or(history.floor, |e| e.revision.saturating_sub(1)),
                floor: history.floor,
            });
        }
        let start = history.events.partition_point(|e| e.at < at);
        Ok(self.page_from(start, limit))
    }

    fn page_from(&self, start: usize, limit: usize) -> Vec<ChangeEvent> {
        let events = &self.history.events;
        let mut out = Vec::new();
        let mut i = start;
        while let Some(event) = events.get(i) {
            if out.len() >= limit
                && out
                    .last()
                    .is_some_and(|l: &ChangeEvent| l.revision != event.revision)
            {
                break;
            }
            out.push(event.clone());
            i += 1;
        }
        out
    }

    /// The kept changes with a revision above `revision`, newest first, as (written key,
    /// revision): every write, delete and expiry. `None` when the history no longer reaches
    /// back to `revision`, so changes after it may have been dropped. What Redis's WATCH needs
    /// to see a key created and deleted again: its current entry cannot tell.
    pub fn keys_changed_after(
        &self,
        revision: u64,
    ) -> Option<impl Iterator<Item = (&str, u64)> + '_> {
        (revision >= self.history.floor()).then(|| {
            self.history
                .events
                .iter()
                .rev()
                .take_while(move |e| e.revision > revision)
                .map(|e| (e.key.as_str(), e.revision))
        })
    }

    /// The oldest revision reads and change replay can start from.
    pub fn history_floor(&self) -> u64 {
        self.history.floor()
    }

    /// Changes currently kept.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Drops the history up to and including `revision` (etcd's compact): reads at revisions
    /// below it and change replay from below it are refused from now on.
    pub fn compact(&mut self, revision: u64) -> Result<(), EngineError> {
        if revision > self.revision {
            return Err(EngineError::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        self.history.drop_through(revision);
        Ok(())
    }

    /// Records a committed change in the history and, when events are captured, in the queue.
    pub(super) fn emit(&mut self, event: ChangeEvent) {
        let keep = self.keeps_history();
        match (keep, self.capture_events) {
            (true, true) => {
                self.events.push_back(event.clone());
                self.history.record(event);
            }
            (true, false) => self.history.record(event),
            (false, true) => self.events.push_back(event),
            (false, false) => {}
        }
    }

    /// Whether a change must be turned into an event at all.
    pub(super) fn wants_events(&self) -> bool {
        self.capture_events || self.keeps_history()
    }

    fn keeps_history(&self) -> bool {
        !self.history_skipped && (self.config.history_limit > 0 || self.history_pin() != u64::MAX)
    }

    /// Called before a write of `changes` keys: a revision with more changes than the history
    /// holds would be trimmed whole right after it commits (unless a transaction pins it), so
    /// its events are not built at all and the commit moves the floor past it instead. This
    /// keeps bulk loads from building and dropping an event per key.
    pub(super) fn skip_history_if_oversized(&mut self, changes: usize) {
        self.history_skipped =
            changes > self.config.history_limit && self.history_pin() == u64::MAX;
    }

    /// Trims the history after a commit; see [`History::trim`].
    pub(super) fn trim_history(&mut self) {
        if std::mem::take(&mut self.history_skipped) {
            self.history.drop_through(self.revision);
            self.history.floor_at = self.clock();
        }
        let pin = self.history_pin();
        let (limit, bound) = (self.config.history_limit, self.config.history_bound());
        self.history.trim(limit, bound, pin);
        if self.history.len() == 0 && pin == u64::MAX {
            // Nothing kept: reads at earlier revisions can no longer be answered.
            self.history.floor = self.history.floor.max(self.revision);
            self.history.floor_at = self.clock();
        }
    }

    /// The oldest snapshot revision an open transaction reads at, or `u64::MAX`.
    pub(super) fn history_pin(&self) -> u64 {
        self.txns.pin()
    }
}
