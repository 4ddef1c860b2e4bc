//! Two-phase commit: prepared (pending) transactions and the key locks they hold.
//!
//! `prepare_txn` validates an open transaction like `commit_txn`, then makes it pending: its
//! writes are kept, and its keys are locked until `commit_prepared` or `cancel_prepared`. A
//! pending transaction locks the keys it writes and, when serializable, the keys it read (its
//! validated reads must stay true until it commits). Locks refuse ordinary writes to those keys
//! with [`EngineError::Locked`]; TTL expiry and eviction are system changes and still happen.
//! Two pending transactions never overlap on a key one of them writes, so `commit_prepared`
//! cannot fail on a conflict.
//!
//! Prepare and each resolution are logged (`LogOp::Prepare`, `CommitPrepared`,
//! `CancelPrepared`), each in a revision of its own even when no key changes, so replay
//! rebuilds the pending set; snapshots carry it too (format V2). Pending transactions never time
//! out: the coordinator that prepared them must resolve them, after a restart too.

use std::collections::{BTreeMap, BTreeSet};

use super::Engine;
use crate::error::{EngineError, FormatError};
use crate::key::{KeyRef, split_namespace};
use crate::log::LogOp;
use crate::ops::{WriteOp, WriteResult};
use crate::time::Timestamp;
use crate::txn::{Isolation, PreparedTxn, TxnId, WaitPolicy};

/// Pending transactions and their locks.
#[derive(Debug, Default)]
pub(super) struct Pending {
    txns: BTreeMap<TxnId, PreparedTxn>,
    /// Key (written form) -> who holds it. Empty whenever no transaction is pending, which is
    /// what keeps the check on ordinary writes to one branch.
    locks: BTreeMap<String, Holders>,
}

#[derive(Debug, Default)]
struct Holders {
    writer: Option<TxnId>,
    readers: BTreeSet<TxnId>,
}

impl Holders {
    /// Any holder, the writer first.
    fn any(&self) -> Option<TxnId> {
        self.writer.or_else(|| self.readers.first().copied())
    }
}

impl Pending {
    pub(super) fn contains(&self, id: TxnId) -> bool {
        self.txns.contains_key(&id)
    }

    pub(super) fn get(&self, id: TxnId) -> Option<&PreparedTxn> {
        self.txns.get(&id)
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.txns.keys().copied()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&TxnId, &PreparedTxn)> {
        self.txns.iter()
    }

    /// Refuses a write to `key` (written form) while a pending transaction holds it.
    #[inline]
    pub(super) fn check_unlocked(&self, key: &str) -> Result<(), EngineError> {
        if self.locks.is_empty() {
            return Ok(());
        }
        self.check_locked(key)
    }

    #[cold]
    fn check_locked(&self, key: &str) -> Result<(), EngineError> {
        match self.locks.get(key).and_then(Holders::any) {
            Some(txn) => Err(EngineError::Locked {
                key: key.to_owned(),
                txn,
            }),
            None => Ok(()),
        }
    }

    /// True when no transaction is pending: ordinary writes skip the lock check.
    #[inline]
    pub(super) fn no_locks(&self) -> bool {
        self.locks.is_empty()
    }

    pub(super) fn insert(&mut self, id: TxnId, txn: PreparedTxn) {
        for (key, _) in &txn.writes {
            self.locks.entry(key.clone()).or_default().writer = Some(id);
        }
        for key in &txn.reads {
            self.locks
                .entry(key.clone())
                .or_default()
                .readers
                .insert(id);
        }
        self.txns.insert(id, txn);
    }

    pub(super) fn remove(&mut self, id: TxnId) -> Option<PreparedTxn> {
        let txn = self.txns.remove(&id)?;
        let keys = txn.writes.iter().map(|(k, _)| k).chain(&txn.reads);
        for key in keys {
            if let Some(holders) = self.locks.get_mut(key) {
                if holders.writer == Some(id) {
                    holders.writer = None;
                }
                holders.readers.remove(&id);
                if holders.writer.is_none() && holders.readers.is_empty() {
                    self.locks.remove(key);
                }
            }
        }
        Some(txn)
    }

    /// The first lock (key, holder) that keeps `txn` from becoming pending: a key it writes that
    /// anyone holds, or a key it read that a pending transaction writes.
    fn conflict(&self, txn: &PreparedTxn) -> Option<(String, TxnId)> {
        if self.locks.is_empty() {
            return None;
        }
        let writes = txn.writes.iter().filter_map(|(key, _)| {
            let holder = self.locks.get(key)?.any()?;
            Some((key.clone(), holder))
        });
        let reads = txn.reads.iter().filter_map(|key| {
            let holder = self.locks.get(key)?.writer?;
            Some((key.clone(), holder))
        });
        writes.chain(reads).next()
    }
}

impl Engine {
    /// Prepares transaction `id` (the first phase of two-phase commit): validates it as
    /// `commit_txn` does, then makes it pending with its keys locked. Returns the revision of
    /// the prepare record. When a key is locked by another pending transaction: `Fail` answers
    /// [`EngineError::Locked`], `Wait` answers [`EngineError::WouldWait`] (the host waits for the
    /// holder and prepares again); either way the transaction stays open.
    pub fn prepare_txn(
        &mut self,
        now: Timestamp,
        id: TxnId,
        policy: WaitPolicy,
    ) -> Result<u64, EngineError> {
        let now = self.begin(now);
        self.validate_txn(id)?;
        let txn = self.open_txn(id)?;
        let prepared = PreparedTxn {
            writes: txn
                .writes
                .iter()
                .map(|(k, w)| (k.clone(), w.clone()))
                .collect(),
            reads: match txn.isolation {
                Isolation::Serializable => txn.reads.iter().cloned().collect(),
                Isolation::Snapshot => Vec::new(),
            },
        };
        if let Some((key, holder)) = self.pending.conflict(&prepared) {
            return Err(match policy {
                WaitPolicy::Fail => EngineError::Locked { key, txn: holder },
                WaitPolicy::Wait => EngineError::WouldWait { key, txn: holder },
            });
        }
        // Logged before anything changes, so a record that cannot be encoded changes nothing.
        let mut batch = self.batch(now);
        batch.marker = true;
        if self.capture_log {
            self.log_op(
                &mut batch,
                &LogOp::Prepare {
                    txn: id,
                    prepared: prepared.clone(),
                },
            )?;
        }
        self.end_txn(id);
        self.pending.insert(id, prepared);
        Ok(self.commit(batch))
    }

    /// Commits prepared transaction `id`: its writes as one revision (which also records the
    /// resolution, so it is a new revision even when the writes change nothing). Cannot
    /// conflict: the transaction was validated and its keys locked.
    pub fn commit_prepared(
        &mut self,
        now: Timestamp,
        id: TxnId,
    ) -> Result<WriteResult, EngineError> {
        let now = self.begin(now);
        let mut batch = self.batch(now);
        batch.marker = true;
        if self.capture_log {
            self.log_op(&mut batch, &LogOp::CommitPrepared { txn: id })?;
        }
        let txn = self.take_pending(id)?;
        self.apply_writes(&mut batch, txn.writes.iter().map(|(k, w)| (k.as_str(), w)));
        let affected = batch.changed;
        let revision = self.commit(batch);
        Ok(WriteResult {
            op: if affected == 0 {
                WriteOp::Noop
            } else {
                WriteOp::Batch
            },
            affected,
            version: 0,
            revision,
            latency: Default::default(),
        })
    }

    /// Cancels prepared transaction `id`: drops its writes and releases its locks. Returns the
    /// revision of the cancel record.
    pub fn cancel_prepared(&mut self, now: Timestamp, id: TxnId) -> Result<u64, EngineError> {
        let now = self.begin(now);
        let mut batch = self.batch(now);
        batch.marker = true;
        if self.capture_log {
            self.log_op(&mut batch, &LogOp::CancelPrepared { txn: id })?;
        }
        self.take_pending(id)?;
        Ok(self.commit(batch))
    }

    /// Ids of the prepared transactions waiting for a coordinator, in order.
    pub fn prepared_txns(&self) -> Vec<TxnId> {
        self.pending.ids().collect()
    }

    /// The writes and locks of prepared transaction `id`.
    pub fn prepared_txn(&self, id: TxnId) -> Option<&PreparedTxn> {
        self.pending.get(id)
    }

    fn take_pending(&mut self, id: TxnId) -> Result<PreparedTxn, EngineError> {
        match self.pending.remove(id) {
            Some(txn) => Ok(txn),
            None if self.txns_contains(id) => Err(EngineError::TxnNotPrepared { id }),
            None => Err(self.txns.missing(id, false)),
        }
    }

    fn txns_contains(&self, id: TxnId) -> bool {
        self.txn_deadline(id).is_some()
    }

    /// Refuses an ordinary write to `key` while a prepared transaction holds it. A no-op branch
    /// when nothing is prepared.
    #[inline]
    pub(super) fn check_unlocked(&self, key: &KeyRef<'_>) -> Result<(), EngineError> {
        if self.pending.no_locks() {
            return Ok(());
        }
        self.pending.check_unlocked(&key.to_key_string())
    }

    /// Checks a replayed transaction op against the pending set before any of the record is
    /// applied.
    pub(super) fn check_replayed_txn_op(&self, op: &LogOp) -> Result<(), FormatError> {
        let bad = |message: String| FormatError::Decode {
            what: "log record",
            message,
        };
        match op {
            LogOp::Prepare { txn, prepared } => {
                if self.pending.contains(*txn) {
                    return Err(bad(format!("transaction {txn} is prepared twice")));
                }
                self.check_prepared(prepared, "log record")
            }
            LogOp::CommitPrepared { txn } | LogOp::CancelPrepared { txn } => {
                if self.pending.contains(*txn) {
                    Ok(())
                } else {
                    Err(bad(format!(
                        "resolves transaction {txn}, which is not prepared"
                    )))
                }
            }
            _ => Ok(()),
        }
    }

    /// Checks the keys of a prepared transaction read from the log or a snapshot.
    pub(super) fn check_prepared(
        &self,
        prepared: &PreparedTxn,
        what: &'static str,
    ) -> Result<(), FormatError> {
        let keys = prepared
            .writes
            .iter()
            .map(|(k, _)| k)
            .chain(&prepared.reads);
        for key in keys {
            let (ns, path) = split_namespace(key);
            self.check_key(ns, path, what)?;
        }
        Ok(())
    }

    /// Applies a replayed transaction op (already checked).
    pub(super) fn replay_txn_op(&mut self, op: LogOp) {
        match op {
            LogOp::Prepare { txn, prepared } => self.add_pending(txn, prepared),
            LogOp::CommitPrepared { txn } | LogOp::CancelPrepared { txn } => {
                self.pending.remove(txn);
            }
            _ => {}
        }
    }

    /// Adds a recovered pending transaction; ids handed out later never reuse its id.
    pub(super) fn add_pending(&mut self, id: TxnId, prepared: PreparedTxn) {
        self.txns.next_id = self.txns.next_id.max(id.0.saturating_add(1));
        self.pending.insert(id, prepared);
    }
}
