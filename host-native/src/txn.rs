//! Transactions on the Store: compare-then-else, interactive transactions behind a handle, and
//! two-phase commit with a host-side wait for locks.
//!
//! Every call runs through the Store's write path, so CP durability, change events and the
//! committer work as for any write. The engine's rules are in `docs/transactions.md`.

use std::time::{Duration, Instant};

use statemesh_core::{
    EngineError, Isolation, Timestamp, Txn, TxnId, TxnResult, Value, WaitPolicy, WriteResult,
};

use crate::error::{Error, Result};
use crate::store::Store;

/// An open interactive transaction. Reads see the store at the transaction's snapshot revision
/// plus its own buffered writes; writes are buffered until [`Transaction::commit`].
///
/// Dropping the handle without committing, rolling back or preparing rolls the transaction
/// back. A transaction not finished within its timeout is dropped by the store and holds nothing.
#[derive(Debug)]
pub struct Transaction {
    store: Store,
    id: TxnId,
    /// False once commit, rollback or prepare consumed the handle.
    live: bool,
}

impl Store {
    /// Runs a compare-then-else transaction (etcd's model) as one atomic write.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        self.write(|e, now| e.txn(now, &txn)).await
    }

    /// Begins an interactive transaction reading at the current revision. It must commit, roll
    /// back or be prepared within `timeout`. In CP mode the call returns once that revision is
    /// durable, so its reads never show a write a crash could take back.
    pub async fn begin(&self, isolation: Isolation, timeout: Duration) -> Result<Transaction> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let (id, snapshot) = self
            .write(|e, now| {
                let id = e.begin_txn(now, isolation, timeout_ms)?;
                Ok((id, e.txn_snapshot(now, id)?))
            })
            .await?;
        let handle = Transaction {
            store: self.clone(),
            id,
            live: true,
        };
        if self.cp().is_some() {
            self.wait_durable(snapshot).await?;
        }
        Ok(handle)
    }

    /// Prepares open transaction `id` (two-phase commit, first phase): validated, then pending
    /// with its keys locked until [`Store::commit_prepared`] or [`Store::cancel_prepared`];
    /// durable (CP) and surviving a restart. With [`WaitPolicy::Wait`], a key locked by another
    /// prepared transaction makes this call wait until that one is resolved and try again, up
    /// to the transaction's own timeout ([`Error::LockTimeout`], the transaction rolled back).
    /// Returns the revision of the prepare.
    pub async fn prepare(&self, id: TxnId, policy: WaitPolicy) -> Result<u64> {
        loop {
            // Registered before the attempt, so a resolution in between is not missed.
            let resolved = self.inner().resolved.notified();
            tokio::pin!(resolved);
            resolved.as_mut().enable();
            let (key, holder) = match self.write(|e, now| e.prepare_txn(now, id, policy)).await {
                Err(Error::Engine(EngineError::WouldWait { key, txn })) => (key, txn),
                other => return other,
            };
            let deadline = self.inner().with_engine(|e, _| e.txn_deadline(id));
            let Some(deadline) = deadline else {
                continue; // no longer open: the next attempt says why
            };
            let wait = self.inner().clock.now().millis_until(deadline);
            let timed_out = wait == 0
                || tokio::time::timeout(Duration::from_millis(wait), resolved)
                    .await
                    .is_err();
            if timed_out {
                self.inner()
                    .with_engine(|e, now| e.rollback_txn(now, id).ok());
                return Err(Error::LockTimeout { id, key, holder });
            }
        }
    }

    /// Commits prepared transaction `id` (second phase). It cannot conflict: it was validated
    /// and its keys locked when it was prepared.
    pub async fn commit_prepared(&self, id: TxnId) -> Result<WriteResult> {
        let start = Instant::now();
        let result = self.write(|e, now| e.commit_prepared(now, id)).await;
        self.inner().resolved.notify_waiters();
        let mut result = result?;
        result.latency = start.elapsed();
        Ok(result)
    }

    /// Cancels prepared transaction `id`: its writes are dropped and its locks released.
    /// Returns the revision of the cancel.
    pub async fn cancel_prepared(&self, id: TxnId) -> Result<u64> {
        let result = self.write(|e, now| e.cancel_prepared(now, id)).await;
        self.inner().resolved.notify_waiters();
        result
    }

    /// Open (not yet prepared) interactive transactions. One that times out is dropped by the
    /// store's timer even when nobody calls the store.
    pub fn open_transactions(&self) -> usize {
        self.inner().with_engine(|e, _| e.open_txns())
    }

    /// Prepared transactions waiting for their coordinator (after a restart too), in id order.
    pub fn prepared_transactions(&self) -> Vec<TxnId> {
        self.inner().with_engine(|e, _| e.prepared_txns())
    }
}

impl Transaction {
    /// The transaction's id (for [`Store::prepare`] and the two-phase-commit calls).
    pub fn id(&self) -> TxnId {
        self.id
    }

    /// The value of `key` as this transaction sees it.
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.store
            .write(|e, now| e.txn_get(now, self.id, key))
            .await
    }

    /// Buffers a put.
    pub async fn put(&self, key: &str, value: impl Into<Value>) -> Result<()> {
        let value = value.into();
        self.store
            .write(|e, now| e.txn_put(now, self.id, key, &value))
            .await
    }

    /// Buffers a put whose key expires `ttl_ms` after the commit.
    pub async fn put_with_ttl(
        &self,
        key: &str,
        value: impl Into<Value>,
        ttl_ms: u64,
    ) -> Result<()> {
        let value = value.into();
        self.store
            .write(|e, now| e.txn_put_with_ttl(now, self.id, key, &value, ttl_ms))
            .await
    }

    /// Buffers a delete.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.store
            .write(|e, now| e.txn_delete(now, self.id, key))
            .await
    }

    /// Validates and applies the buffered writes as one revision. A conflict
    /// (`EngineError::TxnConflict`, naming the key) ends the transaction: begin again and retry.
    pub async fn commit(mut self) -> Result<WriteResult> {
        let start = Instant::now();
        let id = self.id;
        let result = self.store.write(|e, now| e.commit_txn(now, id)).await;
        // A refusal for a locked key leaves it open in the engine; the handle is consumed, so
        // its drop rolls it back.
        self.live = matches!(result, Err(Error::Engine(EngineError::Locked { .. })));
        let mut result = result?;
        result.latency = start.elapsed();
        Ok(result)
    }

    /// Drops the transaction and its buffered writes.
    pub async fn rollback(mut self) -> Result<()> {
        self.live = false;
        let id = self.id;
        self.store.write(|e, now| e.rollback_txn(now, id)).await
    }

    /// Prepares the transaction for two-phase commit; see [`Store::prepare`]. Returns its id,
    /// which the coordinator passes to [`Store::commit_prepared`] or [`Store::cancel_prepared`].
    /// If preparing fails the transaction is rolled back.
    pub async fn prepare(mut self, policy: WaitPolicy) -> Result<TxnId> {
        let result = self.store.prepare(self.id, policy).await;
        self.live = result.is_err();
        result.map(|_| self.id)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.live {
            let id = self.id;
            // Rolling back logs nothing, so it can run here without awaiting.
            self.store.inner().with_engine(|e, now: Timestamp| {
                let _ = e.rollback_txn(now, id);
            });
        }
    }
}
