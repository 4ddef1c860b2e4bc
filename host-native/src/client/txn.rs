//! Interactive transactions over the network.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use statemesh_core::{Isolation, Txn, TxnId, TxnResult, Value, WaitPolicy, WriteResult};

use super::conn::{Args, Connection};
use super::{Client, args, decode, wire};
use crate::error::{Error, Result};
use crate::server::jsonl::txn_wire;

/// An open transaction on the server, as [`crate::Transaction`]. Dropping it without commit
/// or rollback rolls it back (the server does too when the connection drops).
///
/// It belongs to the connection it was begun on: if that connection breaks, the server rolls
/// it back and its later calls fail with [`Error::Connection`] even once the client has
/// dialed again.
#[derive(Debug)]
pub struct RemoteTransaction {
    /// For the request timeout of the handle that began it.
    client: Client,
    conn: Arc<Connection>,
    id: u64,
    finished: bool,
}

impl Client {
    /// Runs a compare-then-else transaction as one atomic write (see [`crate::Store::txn`]).
    pub async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        let reply = self.call("txn", txn_wire::txn_to_json(&txn)).await?;
        txn_wire::result_from_json(reply)
            .map_err(|e| Error::Protocol(format!("the server's txn result: {e}")))
    }

    /// Commits prepared transaction `id` (second phase; see [`crate::Store::commit_prepared`]).
    /// Any connection may resolve a prepared transaction, also after a server restart.
    pub async fn commit_prepared(&self, id: TxnId) -> Result<WriteResult> {
        let r = self
            .call("commit_prepared", args([("txn", id.0.into())]))
            .await?;
        decode::write_result(&r)
    }

    /// Cancels prepared transaction `id`; returns the revision of the cancel.
    pub async fn cancel_prepared(&self, id: TxnId) -> Result<u64> {
        decode::as_u64(
            &self
                .call("cancel_prepared", args([("txn", id.0.into())]))
                .await?,
        )
    }

    /// Prepared transactions waiting for their coordinator, in id order.
    pub async fn prepared_transactions(&self) -> Result<Vec<TxnId>> {
        let r = self.call("prepared_transactions", args([])).await?;
        let Json::Array(ids) = r else {
            return Err(Error::Protocol("prepared_transactions: not a list".into()));
        };
        ids.iter().map(|id| decode::as_u64(id).map(TxnId)).collect()
    }

    /// Begins an interactive transaction (see [`crate::Store::begin`]).
    pub async fn begin(
        &self,
        isolation: Isolation,
        timeout: Duration,
    ) -> Result<RemoteTransaction> {
        let isolation = match isolation {
            Isolation::Snapshot => "snapshot",
            _ => "serializable",
        };
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let (conn, r) = self
            .call_pinned(
                "begin",
                args([
                    ("isolation", Json::from(isolation)),
                    ("timeout_ms", Json::from(timeout_ms)),
                ]),
            )
            .await?;
        Ok(RemoteTransaction {
            client: self.clone(),
            conn,
            id: decode::u64_field(&r, "txn")?,
            finished: false,
        })
    }
}

impl RemoteTransaction {
    fn id_arg(&self) -> (&'static str, Json) {
        ("txn", Json::from(self.id))
    }

    async fn call(&self, op: &str, a: impl Into<Args>) -> Result<Json> {
        self.client.call_on(&self.conn, op, a).await
    }

    /// The transaction's id on the server.
    pub fn id(&self) -> TxnId {
        TxnId(self.id)
    }

    /// The value of `key` as this transaction sees it.
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        let r = self
            .call("txn_get", args([self.id_arg(), ("key", key.into())]))
            .await?;
        decode::opt_value(r)
    }

    /// Buffers a put.
    pub async fn put(&self, key: &str, value: impl Into<Value>) -> Result<()> {
        let value = wire(&value.into())?;
        self.call(
            "txn_put",
            args([self.id_arg(), ("key", key.into()), ("value", value)]),
        )
        .await
        .map(|_| ())
    }

    /// Buffers a put whose key expires `ttl_ms` after the commit.
    pub async fn put_with_ttl(
        &self,
        key: &str,
        value: impl Into<Value>,
        ttl_ms: u64,
    ) -> Result<()> {
        let value = wire(&value.into())?;
        let a = args([
            self.id_arg(),
            ("key", key.into()),
            ("value", value),
            ("ttl_ms", ttl_ms.into()),
        ]);
        self.call("txn_put", a).await.map(|_| ())
    }

    /// Buffers a delete.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.call("txn_delete", args([self.id_arg(), ("key", key.into())]))
            .await
            .map(|_| ())
    }

    /// Validates and applies the buffered writes as one revision.
    pub async fn commit(mut self) -> Result<WriteResult> {
        self.finished = true;
        let r = self.call("commit", args([self.id_arg()])).await?;
        decode::write_result(&r)
    }

    /// Prepares the transaction for two-phase commit (see [`crate::Transaction::prepare`]):
    /// from here on it is durable and no longer tied to this connection; resolve it with
    /// [`Client::commit_prepared`] or [`Client::cancel_prepared`]. If preparing fails the
    /// transaction is rolled back.
    pub async fn prepare(mut self, policy: WaitPolicy) -> Result<TxnId> {
        self.finished = true;
        let wait = matches!(policy, WaitPolicy::Wait);
        let r = self
            .call("prepare", args([self.id_arg(), ("wait", wait.into())]))
            .await?;
        decode::u64_field(&r, "txn").map(TxnId)
    }

    /// Drops the transaction and its buffered writes.
    pub async fn rollback(mut self) -> Result<()> {
        self.finished = true;
        self.call("rollback", args([self.id_arg()]))
            .await
            .map(|_| ())
    }
}

impl Drop for RemoteTransaction {
    fn drop(&mut self) {
        if !self.finished {
            self.conn
                .send_and_forget("rollback", args([self.id_arg()]).into());
        }
    }
}
