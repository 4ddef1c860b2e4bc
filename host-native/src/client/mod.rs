//! [`Client`]: the store over the network, with the same methods as [`crate::Store`].
//!
//! ```no_run
//! # async fn run() -> statemesh::Result<()> {
//! use statemesh::{Client, Value};
//! // let store = statemesh::Store::open("./data").await?;   // embedded
//! let store = Client::connect("127.0.0.1:9000").await?;       // remote: the same calls
//! store.put("sessions:user.42.cart", Value::from("3 items")).await?;
//! assert_eq!(store.get("sessions:user.42.cart").await?, Some(Value::from("3 items")));
//! # Ok(()) }
//! ```
//!
//! A client is one TCP connection speaking the JSON-lines protocol (docs/protocol.md). Clones
//! share it, and calls from many tasks are pipelined over it: each request carries an id and
//! its response is matched back, so no call waits for another's round trip.

mod conn;
mod decode;
mod history_ops;
mod store_ops;
mod subscription;
mod txn;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json};

pub use subscription::RemoteSubscription;
pub use txn::RemoteTransaction;

use crate::error::{Error, Result};
use crate::server::jsonl::wire::WireValue;
use statemesh_core::Value;

/// A connection to a `statemesh serve` JSON-lines port. Cheap to clone; clones share the
/// connection. Methods mirror [`crate::Store`]'s names, arguments and results.
#[derive(Clone)]
pub struct Client {
    conn: Arc<conn::Connection>,
    /// How long a call waits for its answer; `None`: as long as the connection lives.
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// What [`Client::stats`] reports about the server's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Keys held (expired keys not yet swept included), as [`crate::Store::len`].
    pub keys: u64,
    pub revision: u64,
    pub history_floor: u64,
    pub open_transactions: u64,
}

impl Client {
    /// Connects to a server that needs no token. `addr` is `host:port`.
    pub async fn connect(addr: &str) -> Result<Client> {
        let conn = conn::Connection::open(addr).await?;
        Ok(Client {
            conn: Arc::new(conn),
            timeout: None,
        })
    }

    /// This handle (and its clones) gives up on a call after `timeout` with
    /// [`Error::Timeout`]; other handles on the same connection keep theirs. A late answer is
    /// dropped, and the connection stays usable. Subscriptions' events are not calls and never
    /// time out.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// Connects and authenticates with `token` (the server's `--auth-token`). A wrong token
    /// fails with code `UNAUTHORIZED`.
    pub async fn connect_with_token(addr: &str, token: &str) -> Result<Client> {
        let client = Client::connect(addr).await?;
        client
            .call("auth", args([("token", Json::from(token))]))
            .await?;
        Ok(client)
    }

    pub(crate) async fn call(&self, op: &str, args: impl Into<conn::Args>) -> Result<Json> {
        let call = self.conn.call(op, args.into());
        match self.timeout {
            None => call.await,
            Some(after) => tokio::time::timeout(after, call).await.unwrap_or_else(|_| {
                Err(Error::Timeout {
                    op: op.to_owned(),
                    after,
                })
            }),
        }
    }

    /// Round trip to the server.
    pub async fn ping(&self) -> Result<()> {
        self.call("ping", Map::new()).await.map(|_| ())
    }

    /// Sizes and revisions of the server's store.
    pub async fn stats(&self) -> Result<ServerStats> {
        let s = self.call("stats", Map::new()).await?;
        Ok(ServerStats {
            keys: decode::u64_field(&s, "keys")?,
            revision: decode::u64_field(&s, "revision")?,
            history_floor: decode::u64_field(&s, "history_floor")?,
            open_transactions: decode::u64_field(&s, "open_transactions")?,
        })
    }

    /// Keys held, as [`crate::Store::len`] (a round trip here).
    pub async fn len(&self) -> Result<usize> {
        let keys = self.stats().await?.keys;
        usize::try_from(keys).map_err(|_| Error::Protocol("key count".into()))
    }

    /// True when the server's store holds no key.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// The revision of the last committed write.
    pub async fn revision(&self) -> Result<u64> {
        Ok(self.stats().await?.revision)
    }

    /// Makes every acknowledged write durable now (see [`crate::Store::flush`]).
    pub async fn flush(&self) -> Result<()> {
        self.call("flush", Map::new()).await.map(|_| ())
    }

    /// Writes a snapshot so recovery replays less (see [`crate::Store::checkpoint`]).
    pub async fn checkpoint(&self) -> Result<()> {
        self.call("checkpoint", Map::new()).await.map(|_| ())
    }
}

/// Builds a request's arguments.
pub(crate) fn args<const N: usize>(pairs: [(&str, Json); N]) -> Map<String, Json> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A value in its wire form.
pub(crate) fn wire(value: &Value) -> Result<Json> {
    serde_json::to_value(WireValue(value)).map_err(|e| Error::Protocol(e.to_string()))
}
