//! Interactive optimistic transactions: `begin_txn`, reads at the snapshot revision, buffered
//! writes, and a commit that validates against the kept history.
//!
//! A transaction reads the store as it was at its snapshot revision S (the revision when it
//! began), through the kept history (`get_at`); its own buffered writes shadow that. A key
//! changed after S iff the history holds a change to it with a revision above S, so validation
//! walks the changes since S once (`History::keys_changed_after`) and looks every key up in them. An open transaction
//! pins the history at S (see `history_pin`), so those changes are never trimmed while it runs.
//!
//! Open transactions live in memory only: they do not survive a restart (prepared ones do, see
//! `prepared.rs`). One that is not committed or rolled back by its deadline is dropped on the
//! next `&mut` engine call whose `now` is past it (every write, every transaction call and
//! `handle_timeout`, whose deadline `poll_timeout` reports), and then holds nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Engine;
use crate::error::EngineError;
use crate::event::ChangeKind;
use crate::key::{KeyRef, split_namespace};
use crate::ops::WriteResult;
use crate::time::Timestamp;
use crate::txn::{BufferedWrite, Isolation, TxnId};
use crate::value::Value;

/// How many ids of timed-out transactions are remembered, to tell "timed out" from "unknown".
const REMEMBER_EXPIRED: usize = 1024;

/// The open (not yet prepared) interactive transactions.
#[derive(Debug, Default)]
pub(super) struct OpenTxns {
    open: BTreeMap<TxnId, OpenTxn>,
    /// Deadlines, earliest first: `poll_timeout` and the expiry of transactions.
    deadlines: BTreeSet<(Timestamp, TxnId)>,
    /// Snapshot revisions, oldest first: the history pin.
    pins: BTreeSet<(u64, TxnId)>,
    /// The next id to hand out (shared with prepared transactions, which keep their ids).
    pub(super) next_id: u64,
    expired: BTreeSet<TxnId>,
    expired_order: VecDeque<TxnId>,
}

#[derive(Debug)]
pub(super) struct OpenTxn {
    pub(super) isolation: Isolation,
    pub(super) snapshot: u64,
    deadline: Timestamp,
    /// Keys read from the snapshot, found or absent (written form).
    pub(super) reads: BTreeSet<String>,
    /// Buffered writes by key (written form); the last write to a key wins.
    pub(super) writes: BTreeMap<String, BufferedWrite>,
}

impl OpenTxns {
    pub(super) fn pin(&self) -> u64 {
        self.pins.first().map_or(u64::MAX, |(s, _)| *s)
    }

    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    pub(super) fn len(&self) -> usize {
        self.open.len()
    }

    /// Drops every transaction whose deadline is at or before `now`; returns whether any was.
    #[inline]
    pub(super) fn expire(&mut self, now: Timestamp) -> bool {
        if !matches!(self.deadlines.first(), Some((t, _)) if *t <= now) {
            return false;
        }
        while let Some(&(t, id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.remove(id);
            self.expired.insert(id);
            self.expired_order.push_back(id);
            if self.expired_order.len() > REMEMBER_EXPIRED
                && let Some(old) = self.expired_order.pop_front()
            {
                self.expired.remove(&old);
            }
        }
        true
    }

    pub(super) fn remove(&mut self, id: TxnId) -> Option<OpenTxn> {
        let txn = self.open.remove(&id)?;
        self.deadlines.remove(&(txn.deadline, id));
        self.pins.remove(&(txn.snapshot, id));
        Some(txn)
    }

    /// Why `id` is not open (it may be prepared, timed out or unknown).
    pub(super) fn missing(&self, id: TxnId, prepared: bool) -> EngineError {
        if prepared {
            EngineError::TxnPrepared { id }
        } else if self.expired.contains(&id) {
            EngineError::TxnExpired { id }
        } else {
            EngineError::TxnNotFound { id }
        }
    }
}

impl Engine {
    /// Begins an interactive transaction reading at the current revision. It must commit, roll
    /// back or be prepared within `timeout_ms`, or it is dropped.
    pub fn begin_txn(
        &mut self,
        now: Timestamp,
        isolation: Isolation,
        timeout_ms: u64,
    ) -> Result<TxnId, EngineError> {
        if timeout_ms == 0 {
            return Err(EngineError::InvalidTimeout);
        }
        let now = self.txn_clock(now);
        let id = TxnId(self.txns.next_id);
        self.txns.next_id = self.txns.next_id.saturating_add(1);
        let deadline = now.saturating_add_millis(timeout_ms);
        let snapshot = self.revision;
        self.txns.open.insert(
            id,
            OpenTxn {
                isolation,
                snapshot,
                deadline,
                reads: BTreeSet::new(),
                writes: BTreeMap::new(),
            },
        );
        self.txns.deadlines.insert((deadline, id));
        self.txns.pins.insert((snapshot, id));
        Ok(id)
    }

    /// The revision transaction `id` reads at.
    pub fn txn_snapshot(&mut self, now: Timestamp, id: TxnId) -> Result<u64, EngineError> {
        self.txn_clock(now);
        Ok(self.open_txn(id)?.snapshot)
    }

    /// When transaction `id` times out (open transactions only).
    pub fn txn_deadline(&self, id: TxnId) -> Option<Timestamp> {
        self.txns.open.get(&id).map(|t| t.deadline)
    }

    /// Open (not prepared) interactive transactions.
    pub fn open_txns(&self) -> usize {
        self.txns.len()
    }

    /// The value of `key` as transaction `id` sees it: its own buffered write, or else the
    /// store at its snapshot revision. Under either isolation the read joins the read set.
    pub fn txn_get(
        &mut self,
        now: Timestamp,
        id: TxnId,
        key: &str,
    ) -> Result<Option<Value>, EngineError> {
        let now = self.txn_clock(now);
        let key = self.config.keys.parse(key)?;
        let joined = key.to_key_string();
        let txn = self.open_txn(id)?;
        if let Some(write) = txn.writes.get(&joined) {
            return match write {
                BufferedWrite::Put { value, .. } => Ok(Some(value.decode()?)),
                BufferedWrite::Delete => Ok(None),
            };
        }
        let snapshot = txn.snapshot;
        let value = self.value_at(now, &key, snapshot)?.map(|v| v.value);
        if let Some(txn) = self.txns.open.get_mut(&id) {
            txn.reads.insert(joined);
        }
        Ok(value)
    }

    /// Buffers a put (visible to the transaction's own reads; applied at commit).
    pub fn txn_put(
        &mut self,
        now: Timestamp,
        id: TxnId,
        key: &str,
        value: &Value,
    ) -> Result<(), EngineError> {
        self.txn_write(now, id, key, Some((value, None)))
    }

    /// Buffers a put whose key expires `ttl_ms` after the commit.
    pub fn txn_put_with_ttl(
        &mut self,
        now: Timestamp,
        id: TxnId,
        key: &str,
        value: &Value,
        ttl_ms: u64,
    ) -> Result<(), EngineError> {
        if ttl_ms == 0 {
            return Err(EngineError::InvalidTtl);
        }
        self.txn_write(now, id, key, Some((value, Some(ttl_ms))))
    }

    /// Buffers a delete.
    pub fn txn_delete(&mut self, now: Timestamp, id: TxnId, key: &str) -> Result<(), EngineError> {
        self.txn_write(now, id, key, None)
    }

    fn txn_write(
        &mut self,
        now: Timestamp,
        id: TxnId,
        key: &str,
        put: Option<(&Value, Option<u64>)>,
    ) -> Result<(), EngineError> {
        self.txn_clock(now);
        let parsed = self.config.keys.parse(key)?;
        let joined = parsed.to_key_string();
        let write = match put {
            Some((value, ttl_ms)) => {
                self.check_codec(&parsed, value)?;
                BufferedWrite::Put {
                    value: self.encode(value)?,
                    ttl_ms,
                }
            }
            None => BufferedWrite::Delete,
        };
        self.open_txn(id)?;
        if let Some(txn) = self.txns.open.get_mut(&id) {
            txn.writes.insert(joined, write);
        }
        Ok(())
    }

    /// Drops transaction `id` and its buffered writes.
    pub fn rollback_txn(&mut self, now: Timestamp, id: TxnId) -> Result<(), EngineError> {
        self.txn_clock(now);
        self.open_txn(id)?;
        self.end_txn(id);
        Ok(())
    }

    /// Validates transaction `id` and applies its writes as one revision (none when they change
    /// nothing). Serializable: fails with [`EngineError::TxnConflict`] naming the first key (in
    /// key order) it read that changed since its snapshot; snapshot isolation: the first key it
    /// writes that changed. A conflict ends the transaction. A write to a key locked by a
    /// prepared transaction fails with [`EngineError::Locked`] and leaves it open.
    pub fn commit_txn(&mut self, now: Timestamp, id: TxnId) -> Result<WriteResult, EngineError> {
        let now = self.begin(now);
        self.validate_txn(id)?;
        let txn = self.open_txn(id)?;
        for key in txn.writes.keys() {
            self.pending.check_unlocked(key)?;
        }
        let Some(txn) = self.end_txn(id) else {
            return Err(EngineError::TxnNotFound { id });
        };
        let mut batch = self.batch(now);
        self.apply_writes(&mut batch, txn.writes.iter().map(|(k, w)| (k.as_str(), w)));
        Ok(self.batch_result(batch))
    }

    /// Checks the transaction's read or write set against the history; a conflict ends it.
    pub(super) fn validate_txn(&mut self, id: TxnId) -> Result<(), EngineError> {
        let txn = self.open_txn(id)?;
        let floor = self.history.floor();
        if floor > txn.snapshot {
            // Only an explicit `compact` past a pinned snapshot gets here.
            let requested = txn.snapshot;
            self.end_txn(id);
            return Err(EngineError::Compacted { requested, floor });
        }
        let changed_keys: hashbrown::HashSet<&str> =
            self.history.keys_changed_after(txn.snapshot).collect();
        let changed = |key: &String| changed_keys.contains(key.as_str());
        let conflict = match txn.isolation {
            Isolation::Serializable => txn.reads.iter().find(|k| changed(k)),
            Isolation::Snapshot => txn.writes.keys().find(|k| changed(k)),
        }
        .cloned();
        drop(changed_keys);
        if let Some(key) = conflict {
            self.end_txn(id);
            return Err(EngineError::TxnConflict { key });
        }
        Ok(())
    }

    /// Installs buffered writes (in key order) into `batch`.
    pub(super) fn apply_writes<'a>(
        &mut self,
        batch: &mut super::Batch,
        writes: impl Iterator<Item = (&'a str, &'a BufferedWrite)>,
    ) {
        for (key, write) in writes {
            let (ns, path) = split_namespace(key);
            match write {
                BufferedWrite::Put { value, ttl_ms } => {
                    let key = KeyRef {
                        namespace: ns.into(),
                        path: path.into(),
                    };
                    let old = self.current(&key);
                    let expires_at = ttl_ms.map(|ttl| batch.at.saturating_add_millis(ttl));
                    let entry = self.next_entry(batch, old, value.clone(), expires_at);
                    let kind = if entry.version == 1 {
                        ChangeKind::Create
                    } else {
                        ChangeKind::Update
                    };
                    self.install(batch, ns, path, entry, kind);
                }
                BufferedWrite::Delete => {
                    self.erase(batch, ns, path, ChangeKind::Delete);
                }
            }
        }
    }

    /// The open transaction `id`, or why there is none.
    pub(super) fn open_txn(&self, id: TxnId) -> Result<&OpenTxn, EngineError> {
        self.txns
            .open
            .get(&id)
            .ok_or_else(|| self.txns.missing(id, self.pending.contains(id)))
    }

    /// Removes an open transaction and lets the history go of what only it needed.
    pub(super) fn end_txn(&mut self, id: TxnId) -> Option<OpenTxn> {
        let txn = self.txns.remove(id)?;
        self.trim_history();
        Some(txn)
    }

    /// The clock step of transaction calls that are not writes: time moves on and transactions
    /// past their deadline are dropped, but keys are not swept (no log record).
    fn txn_clock(&mut self, now: Timestamp) -> Timestamp {
        let now = self.observe(now);
        self.expire_txns(now);
        now
    }
}
