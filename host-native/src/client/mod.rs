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
//! its response is matched back, so no call waits for another's round trip. When the
//! connection breaks, the next call dials again (see [`Client`]).

mod conn;
mod decode;
mod history_ops;
mod import;
mod link;
mod store_ops;
mod subscription;
mod txn;

use std::future::Future;
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
///
/// # When the connection breaks
///
/// (The server restarted, the network failed, the server closed it.) Nothing happens in the
/// background; the next call on any clone dials the same address again, with the same token,
/// waiting up to 10 s for the server to accept, and goes out on the new connection. If the
/// server is still unreachable that call fails with [`Error::Connection`], and the one after
/// it dials again.
///
/// - A call that was in flight when the connection broke is **not** resent: it fails with
///   [`Error::Connection`] saying so, because a write may or may not have been applied. Retry
///   only what is safe to repeat (a [`Client::put_if_version`], a read).
/// - A [`RemoteSubscription`] (and a [`crate::HandlerSubscription`] from
///   [`Client::subscribe_with`]) belongs to its connection: it ends with
///   [`crate::SubscriptionError::Disconnected`]. Subscribe again with
///   [`Client::stream_changes`] from the last revision processed to miss nothing.
/// - A [`RemoteTransaction`] belongs to its connection too, and the server rolled it back: its
///   later calls fail with [`Error::Connection`]. A prepared transaction is not lost
///   (it no longer belongs to a connection); resolve it with [`Client::commit_prepared`].
/// - A break the operating system does not report (a silent network partition) is only
///   noticed by the server's idle timeout or a request timeout
///   ([`Client::with_request_timeout`]).
///
/// After [`Client::close`] nothing is dialed again: every call fails with [`Error::Closed`].
#[derive(Clone)]
pub struct Client {
    link: Arc<link::Link>,
    /// How long a call waits for its answer; `None`: as long as the connection lives.
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// What [`Client::stats`] reports about the server's store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Keys held (expired keys not yet swept included), as [`crate::Store::len`].
    pub keys: u64,
    pub revision: u64,
    pub history_floor: u64,
    pub open_transactions: u64,
    /// Most items one `multi_put` may carry (the store's `max_batch`).
    pub max_batch: u64,
    /// Longest request line the server reads (`--max-request-bytes`); a longer one closes
    /// the connection.
    pub max_request_bytes: u64,
    /// How long building the declared indexes took when the server's store opened
    /// ([`crate::Store::index_build_time`]); zero from a server that does not report it.
    pub index_build_time: Duration,
    /// What storage repaired when the server's store opened
    /// ([`crate::Store::recovery_repairs`]); empty after a clean shutdown.
    pub recovery_repairs: Vec<String>,
}

/// What a server too old to report its limits in `stats` is assumed to have: the defaults.
const DEFAULT_MAX_BATCH: u64 = 100_000;
const DEFAULT_MAX_REQUEST_BYTES: u64 = 32 << 20;

impl Client {
    /// Connects to a server that needs no token. `addr` is `host:port`.
    pub async fn connect(addr: &str) -> Result<Client> {
        Client::open(addr, None).await
    }

    async fn open(addr: &str, token: Option<&str>) -> Result<Client> {
        Ok(Client {
            link: Arc::new(link::Link::open(addr, token).await?),
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
    /// fails with code `UNAUTHORIZED`. A reconnect authenticates again with the same token.
    pub async fn connect_with_token(addr: &str, token: &str) -> Result<Client> {
        Client::open(addr, Some(token)).await
    }

    /// Sends `op` on the current connection (dialing a new one if it broke).
    pub(crate) async fn call(&self, op: &str, args: impl Into<conn::Args>) -> Result<Json> {
        let args = args.into();
        self.timed(op, async {
            self.link.connection().await?.call(op, args).await
        })
        .await
    }

    /// As [`Client::call`], and also returns the connection it went out on, for a handle
    /// that belongs to it (a transaction).
    pub(crate) async fn call_pinned(
        &self,
        op: &str,
        args: impl Into<conn::Args>,
    ) -> Result<(Arc<conn::Connection>, Json)> {
        let args = args.into();
        self.timed(op, async {
            let conn = self.link.connection().await?;
            let reply = conn.call(op, args).await?;
            Ok((conn, reply))
        })
        .await
    }

    /// Sends `op` on `conn` only: a transaction's calls must not follow the client to a new
    /// connection, where the server does not know the transaction.
    pub(crate) async fn call_on(
        &self,
        conn: &conn::Connection,
        op: &str,
        args: impl Into<conn::Args>,
    ) -> Result<Json> {
        self.timed(op, conn.call(op, args.into())).await
    }

    /// Applies this handle's request timeout (dialing again counts towards it).
    async fn timed<T>(&self, op: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
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

    /// Closes the connection, as [`crate::Store::close`] closes the store: later calls on
    /// every clone fail with [`Error::Closed`] (and dial nothing), calls in flight fail with
    /// it too, and subscriptions end with [`crate::SubscriptionError::Closed`]. The server
    /// rolls back transactions left open on the connection; the store itself stays up for
    /// other clients.
    pub async fn close(&self) {
        self.link.close();
    }

    /// Round trip to the server.
    pub async fn ping(&self) -> Result<()> {
        self.call("ping", Map::new()).await.map(|_| ())
    }

    /// Sizes and revisions of the server's store.
    pub async fn stats(&self) -> Result<ServerStats> {
        server_stats(&self.call("stats", Map::new()).await?)
    }

    /// How long building the declared indexes took when the server's store opened, as
    /// [`crate::Store::index_build_time`]. A round trip (the `stats` op carries it).
    pub async fn index_build_time(&self) -> Result<Duration> {
        Ok(self.stats().await?.index_build_time)
    }

    /// What storage repaired when the server's store opened (a torn tail truncated after a
    /// crash, ...), as [`crate::Store::recovery_repairs`]. A round trip (the `stats` op).
    pub async fn recovery_repairs(&self) -> Result<Vec<String>> {
        Ok(self.stats().await?.recovery_repairs)
    }

    /// The server's whole state as bytes, as [`crate::Store::snapshot`]: open it with
    /// [`crate::StoreBuilder::open_snapshot`]. It travels as one response line, so it suits
    /// states of up to a few hundred MiB (the client reads lines of up to 1 GiB); for more,
    /// use `statemesh export` or a checkpoint on the server's machine.
    pub async fn snapshot(&self) -> Result<Vec<u8>> {
        decode::base64(&self.call("snapshot", Map::new()).await?, "snapshot")
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

    /// The oldest revision reads and change streams can start from, as
    /// [`crate::Store::history_floor`]. A round trip (the `stats` op carries it), so unlike the
    /// store's it is `async` and returns `Result`.
    pub async fn history_floor(&self) -> Result<u64> {
        Ok(self.stats().await?.history_floor)
    }

    /// Open (not yet prepared) interactive transactions on the server, of every connection, as
    /// [`crate::Store::open_transactions`]. A round trip (the `stats` op carries it), so it is
    /// `async` and returns `Result`.
    pub async fn open_transactions(&self) -> Result<usize> {
        Ok(usize::try_from(self.stats().await?.open_transactions).unwrap_or(usize::MAX))
    }

    /// Writes a snapshot so recovery replays less (see [`crate::Store::checkpoint`]).
    pub async fn checkpoint(&self) -> Result<()> {
        self.call("checkpoint", Map::new()).await.map(|_| ())
    }
}

/// Reads a `stats` result. The fields added after the first release default when absent, so
/// a client can talk to an older server.
fn server_stats(s: &Json) -> Result<ServerStats> {
    Ok(ServerStats {
        keys: decode::u64_field(s, "keys")?,
        revision: decode::u64_field(s, "revision")?,
        history_floor: decode::u64_field(s, "history_floor")?,
        open_transactions: decode::u64_field(s, "open_transactions")?,
        max_batch: decode::u64_field(s, "max_batch").unwrap_or(DEFAULT_MAX_BATCH),
        max_request_bytes: decode::u64_field(s, "max_request_bytes")
            .unwrap_or(DEFAULT_MAX_REQUEST_BYTES),
        index_build_time: Duration::from_micros(
            decode::u64_field(s, "index_build_us").unwrap_or(0),
        ),
        recovery_repairs: match s.get("recovery_repairs") {
            None => Vec::new(),
            Some(list) => decode::strings(list.clone())?,
        },
    })
}

/// Builds a request's arguments.
pub(crate) fn args<const N: usize>(pairs: [(&str, Json); N]) -> Map<String, Json> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A value in its wire form.
pub(crate) fn wire(value: &Value) -> Result<Json> {
    serde_json::to_value(WireValue(value)).map_err(|e| Error::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stats_read_every_field_and_default_the_late_ones() {
        let full = json!({
            "keys": 3, "revision": 9, "history_floor": 2, "open_transactions": 1,
            "max_batch": 10, "max_request_bytes": 2048, "index_build_us": 1500,
            "recovery_repairs": ["truncated a torn tail"],
        });
        let s = server_stats(&full).expect("stats");
        assert_eq!((s.keys, s.revision, s.history_floor), (3, 9, 2));
        assert_eq!((s.max_batch, s.max_request_bytes), (10, 2048));
        assert_eq!(s.index_build_time, Duration::from_micros(1500));
        assert_eq!(s.recovery_repairs, ["truncated a torn tail"]);

        let old = json!({"keys": 0, "revision": 0, "history_floor": 0, "open_transactions": 0});
        let s = server_stats(&old).expect("stats of an older server");
        assert_eq!(s.max_batch, DEFAULT_MAX_BATCH);
        assert_eq!(s.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(s.index_build_time, Duration::ZERO);
        assert!(s.recovery_repairs.is_empty());

        let bad = json!({"keys": 0, "revision": 0, "history_floor": 0, "open_transactions": 0,
            "recovery_repairs": [1]});
        assert_eq!(
            server_stats(&bad).expect_err("not strings").code(),
            "PROTOCOL"
        );
    }
}
