//! Every operation of the protocol: from a request's arguments to a store call and back.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value as Json, json};
use statemesh_core::{
    Cursor, Isolation, Language, Metric, PutOptions, Timestamp, TxnId, Value, WaitPolicy,
};
use tokio::sync::oneshot;

use super::args::{Args, OpError, OpResult};
use super::conn::{Conn, MAX_PER_CONNECTION, SharedTxn, error_line, ok_line};
use super::wire::{self, WireValue};
use super::{events, history, search, txn_wire};

/// What an operation produced.
pub(crate) enum Reply {
    /// The `result` of an ok response, as JSON text.
    Result(Vec<u8>),
    /// A new subscription's `result`, and the start signal of its forwarder: events may follow
    /// only once this response is queued, so that it keeps its place among the connection's
    /// responses and still comes before the subscription's first event.
    Subscribed(Vec<u8>, oneshot::Sender<()>),
}

/// A response line, and whom to tell once it is queued.
pub(crate) struct Response {
    pub(crate) line: Vec<u8>,
    pub(crate) on_queued: Option<oneshot::Sender<()>>,
}

/// Runs one request and returns its response.
pub(crate) async fn handle(
    conn: Arc<Conn>,
    id: Json,
    op: String,
    args: Map<String, Json>,
) -> Response {
    let (line, on_queued) = match run(&conn, &op, Args(args)).await {
        Ok(Reply::Result(result)) => (ok_line(&id, &result), None),
        Ok(Reply::Subscribed(result, start)) => (ok_line(&id, &result), Some(start)),
        Err(e) => (error_line(&id, &e), None),
    };
    Response { line, on_queued }
}

/// Serializes an operation's result.
pub(crate) fn reply(result: &impl Serialize) -> OpResult<Reply> {
    serde_json::to_vec(result)
        .map(Reply::Result)
        .map_err(|e| OpError::new("UNSUPPORTED_VALUE", e.to_string()))
}

fn opt_value(v: Option<Value>) -> OpResult<Reply> {
    reply(&v.as_ref().map(WireValue))
}

fn pairs(items: &[(String, Value)]) -> Vec<(&str, WireValue<'_>)> {
    items
        .iter()
        .map(|(k, v)| (k.as_str(), WireValue(v)))
        .collect()
}

async fn run(conn: &Arc<Conn>, op: &str, mut a: Args) -> OpResult<Reply> {
    if op == "auth" {
        return if conn.authenticate(a.str("token")?) {
            reply(&true)
        } else {
            Err(OpError::new("UNAUTHORIZED", "wrong token"))
        };
    }
    if !conn.is_authed() {
        return Err(OpError::new(
            "UNAUTHORIZED",
            "this server needs a token: send {\"op\":\"auth\",\"token\":...} first",
        ));
    }
    let store = &conn.store;
    match op {
        "ping" => reply(&"pong"),
        // ---- reads ----
        "get" => opt_value(store.get(a.str("key")?).await?),
        "get_with_version" => {
            #[derive(Serialize)]
            struct Versioned<'a> {
                value: WireValue<'a>,
                version: u64,
            }
            let found = store.get_with_version(a.str("key")?).await?;
            reply(&found.as_ref().map(|(v, version)| Versioned {
                value: WireValue(v),
                version: *version,
            }))
        }
        "get_record" => {
            #[derive(Serialize)]
            struct Full<'a> {
                key: &'a str,
                value: WireValue<'a>,
                meta: Json,
            }
            let found = store.get_record(a.str("key")?).await?;
            reply(&found.as_ref().map(|r| Full {
                key: &r.key,
                value: WireValue(&r.value),
                meta: wire::metadata(&r.meta),
            }))
        }
        "get_stored" => {
            // The stored form (header and payload) as base64: values of any kind, custom
            // codecs' included, cross without being decoded.
            let found = store.get_stored(a.str("key")?).await?;
            reply(&found.map(|v| wire::base64(v.as_bytes())))
        }
        "get_metadata" => {
            let found = store.get_metadata(a.str("key")?).await?;
            reply(&found.as_ref().map(wire::metadata))
        }
        "exists" => reply(&store.exists(a.str("key")?).await?),
        "get_ttl" | "ttl" => {
            let found = store.get_ttl(a.str("key")?).await?;
            reply(&found.as_ref().map(wire::ttl))
        }
        "multi_get" => {
            let values = store.multi_get(&a.str_list("keys")?).await?;
            reply(
                &values
                    .iter()
                    .map(|v| v.as_ref().map(WireValue))
                    .collect::<Vec<_>>(),
            )
        }
        "keys" => reply(&store.keys(a.str("pattern")?).await?),
        "namespaces" => reply(&store.namespaces()),
        "get_pattern" => reply(&pairs(&store.get_pattern(a.str("pattern")?).await?)),
        "scan" => {
            let cursor = a.opt_str("cursor")?.map(Cursor::decode).transpose()?;
            let limit = a.usize_or("limit", 100)?;
            let page = store.scan(a.str("prefix")?, limit, cursor.as_ref()).await?;
            #[derive(Serialize)]
            struct Page<'a> {
                items: Vec<(&'a str, WireValue<'a>)>,
                next: Option<String>,
            }
            reply(&Page {
                items: pairs(&page.items),
                next: page.next.as_ref().map(Cursor::encode),
            })
        }
        // ---- writes ----
        "put" => {
            let value = a.value("value")?;
            let mut opts = PutOptions::default();
            opts.ttl_ms = a.opt_u64("ttl_ms")?;
            opts.expires_at = a.opt_u64("expires_at")?.map(Timestamp::from_millis);
            opts.keep_ttl = a.bool("keep_ttl")?;
            opts.if_version = a.opt_u64("if_version")?;
            opts.metadata = a.object("metadata")?;
            let key = a.str("key")?;
            let written = if opts == PutOptions::default() {
                store.put(key, value).await?
            } else {
                store.put_with(key, value, &opts).await?
            };
            reply(&wire::write_result(&written))
        }
        "delete" => reply(&wire::write_result(&store.delete(a.str("key")?).await?)),
        "multi_put" => {
            let items = a.items("items")?;
            reply(&wire::write_result(&store.multi_put(&items).await?))
        }
        "multi_delete" => reply(&wire::write_result(
            &store.multi_delete(&a.str_list("keys")?).await?,
        )),
        "delete_pattern" => reply(&wire::write_result(
            &store.delete_pattern(a.str("pattern")?).await?,
        )),
        "increment" => {
            let delta = a.opt_i64("delta")?.unwrap_or(1);
            let (value, written) = store.increment(a.str("key")?, delta).await?;
            reply(&json!({"value": value, "write": wire::write_result(&written)}))
        }
        "append" => {
            let suffix = a.value("value")?;
            let (len, written) = store.append(a.str("key")?, suffix).await?;
            reply(&json!({"len": len, "write": wire::write_result(&written)}))
        }
        "compare_and_swap" => {
            // Absent `expected` means "only if the key does not exist"; a JSON null is a value.
            let expected = a.opt_value("expected")?;
            let new = a.value("value")?;
            let written = store
                .compare_and_swap(a.str("key")?, expected.as_ref(), new)
                .await?;
            reply(&wire::write_result(&written))
        }
        "set_metadata" => {
            let metadata = a
                .object("metadata")?
                .ok_or_else(|| OpError::bad_argument("missing argument \"metadata\""))?;
            reply(&wire::write_result(
                &store.set_metadata(a.str("key")?, &metadata).await?,
            ))
        }
        "set_ttl" => reply(&wire::write_result(
            &store.set_ttl(a.str("key")?, a.u64("ttl_ms")?).await?,
        )),
        "extend_ttl" => reply(&wire::write_result(
            &store.extend_ttl(a.str("key")?, a.u64("by_ms")?).await?,
        )),
        "remove_ttl" => reply(&wire::write_result(&store.remove_ttl(a.str("key")?).await?)),
        "cleanup_expired" => reply(&store.cleanup_expired().await?),
        // ---- transactions ----
        "begin" => begin(conn, &a).await,
        "txn_get" => {
            let txn = txn(conn, &a)?;
            let guard = txn.lock().await;
            let t = guard.as_ref().ok_or_else(txn_done)?;
            opt_value(t.get(a.str("key")?).await?)
        }
        "txn_put" => {
            let value = a.value("value")?;
            let txn = txn(conn, &a)?;
            let guard = txn.lock().await;
            let t = guard.as_ref().ok_or_else(txn_done)?;
            match a.opt_u64("ttl_ms")? {
                Some(ttl) => t.put_with_ttl(a.str("key")?, value, ttl).await?,
                None => t.put(a.str("key")?, value).await?,
            }
            reply(&true)
        }
        "txn_delete" => {
            let txn = txn(conn, &a)?;
            let guard = txn.lock().await;
            guard
                .as_ref()
                .ok_or_else(txn_done)?
                .delete(a.str("key")?)
                .await?;
            reply(&true)
        }
        "txn" => {
            let txn = txn_wire::txn_from_json(&mut a.0).map_err(OpError::bad_argument)?;
            reply(&txn_wire::result_to_json(&store.txn(txn).await?))
        }
        "commit" => {
            let t = take_txn(conn, &a).await?;
            reply(&wire::write_result(&t.commit().await?))
        }
        "rollback" => {
            take_txn(conn, &a).await?.rollback().await?;
            reply(&true)
        }
        // Two-phase commit: a prepared transaction leaves the connection (it is durable and
        // any connection, or the same one after a restart, resolves it by id).
        "prepare" => {
            let policy = if a.bool("wait")? {
                WaitPolicy::Wait
            } else {
                WaitPolicy::Fail
            };
            let id = take_txn(conn, &a).await?.prepare(policy).await?;
            reply(&json!({"txn": id.0}))
        }
        "commit_prepared" => {
            let written = store.commit_prepared(TxnId(a.u64("txn")?)).await?;
            reply(&wire::write_result(&written))
        }
        "cancel_prepared" => reply(&store.cancel_prepared(TxnId(a.u64("txn")?)).await?),
        "prepared_transactions" => reply(
            &store
                .prepared_transactions()
                .iter()
                .map(|id| id.0)
                .collect::<Vec<_>>(),
        ),
        // ---- search ----
        "declare_text_index"
        | "declare_value_index"
        | "declare_vector_index"
        | "drop_index"
        | "index_stats"
        | "index_origin"
        | "set_vector_search_effort"
        | "search_text"
        | "search_by_value"
        | "add_vector"
        | "vector_search" => search::run(store, op, a).await,
        // ---- history ----
        "patch" | "get_at" | "key_history" | "compact" => history::run(store, op, a).await,
        // ---- change feed ----
        "subscribe" => events::subscribe(conn, &a),
        "unsubscribe" => reply(&events::unsubscribe(conn, a.u64("sub")?)),
        "changes" => {
            let limit = a.usize_or("limit", 1000)?;
            let changes = store.changes_since(a.u64("since")?, limit).await?;
            reply(
                &changes
                    .iter()
                    .map(events::WireEvent::new)
                    .collect::<Vec<_>>(),
            )
        }
        // ---- state and lifecycle ----
        "stats" => reply(&json!({
            "keys": store.len(),
            "revision": store.revision(),
            "history_floor": store.history_floor(),
            "open_transactions": store.open_transactions(),
            // What a client needs to split a bulk load into requests the server takes.
            "max_batch": store.read_engine(|e| e.config().max_batch)?,
            "max_request_bytes": conn.max_request_bytes,
            "index_build_us": u64::try_from(store.index_build_time().as_micros())
                .unwrap_or(u64::MAX),
            "recovery_repairs": store.recovery_repairs(),
        })),
        // The whole state in one line: it is held in memory three times over while it is
        // sent (state, snapshot bytes, base64), as the store's own `snapshot` holds it twice.
        "snapshot" => reply(&wire::base64(&store.snapshot().await?)),
        "flush" => {
            store.flush().await?;
            reply(&true)
        }
        "checkpoint" => {
            store.checkpoint().await?;
            reply(&true)
        }
        other => Err(OpError::new(
            "UNKNOWN_OP",
            format!("unknown op {other:?} (see docs/protocol.md)"),
        )),
    }
}

fn txn_done() -> OpError {
    OpError::new(
        "TXN_NOT_FOUND",
        "the transaction is already committed or rolled back",
    )
}

async fn begin(conn: &Arc<Conn>, a: &Args) -> OpResult<Reply> {
    let isolation = match a.opt_str("isolation")? {
        None | Some("serializable") => Isolation::Serializable,
        Some("snapshot") => Isolation::Snapshot,
        Some(other) => {
            return Err(OpError::bad_argument(format!(
                "isolation must be \"serializable\" or \"snapshot\", not {other:?}"
            )));
        }
    };
    let timeout = Duration::from_millis(a.opt_u64("timeout_ms")?.unwrap_or(30_000));
    if conn.txns.lock().len() >= MAX_PER_CONNECTION {
        return Err(OpError::new(
            "LIMIT",
            "too many open transactions on this connection",
        ));
    }
    let t = conn.store.begin(isolation, timeout).await?;
    let id = t.id().0;
    conn.txns
        .lock()
        .insert(id, Arc::new(tokio::sync::Mutex::new(Some(t))));
    reply(&json!({"txn": id}))
}

/// A transaction this connection opened (other connections' ids are not found).
fn txn(conn: &Conn, a: &Args) -> OpResult<SharedTxn> {
    let id = a.u64("txn")?;
    conn.txns.lock().get(&id).cloned().ok_or_else(|| {
        OpError::new(
            "TXN_NOT_FOUND",
            format!("no open transaction {id} on this connection"),
        )
    })
}

async fn take_txn(conn: &Conn, a: &Args) -> OpResult<crate::Transaction> {
    let id = a.u64("txn")?;
    let shared = conn.txns.lock().remove(&id).ok_or_else(txn_done)?;
    let taken = shared.lock().await.take();
    taken.ok_or_else(txn_done)
}

pub(crate) fn parse_metric(name: &str) -> OpResult<Metric> {
    statemesh_core::search::metric_from_name(name).ok_or_else(|| {
        OpError::bad_argument(format!(
            "metric must be \"cosine\", \"l2\" or \"dot\", not {name:?}"
        ))
    })
}

/// A text index's language; absent means English, like `TextIndexDef::new`, and `"none"` no
/// stemming or stop words.
pub(crate) fn parse_language(name: Option<&str>) -> OpResult<Option<Language>> {
    match name {
        None => Ok(Some(Language::English)),
        Some("none") => Ok(None),
        Some(name) => statemesh_core::search::language_from_name(name)
            .map(Some)
            .ok_or_else(|| OpError::bad_argument(format!("unsupported language {name:?}"))),
    }
}
