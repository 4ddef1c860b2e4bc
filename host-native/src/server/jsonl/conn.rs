//! One connection's state: its store handle, outgoing queue, transactions and subscriptions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value as Json;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::args::OpError;
use super::outbox::Outbox;
use crate::{Store, Transaction};

/// Open transactions or subscriptions one connection may hold, so that a client cannot grow
/// the server's memory without bound through them.
pub(crate) const MAX_PER_CONNECTION: usize = 1024;

/// A transaction shared between the requests that use it; `None` once committed or rolled back.
pub(crate) type SharedTxn = Arc<tokio::sync::Mutex<Option<Transaction>>>;

pub(crate) struct Conn {
    pub(crate) store: Store,
    pub(crate) outbox: Outbox,
    token: Option<String>,
    authed: AtomicBool,
    pub(crate) txns: Mutex<HashMap<u64, SharedTxn>>,
    pub(crate) subs: Mutex<HashMap<u64, AbortHandle>>,
    pub(crate) next_sub: AtomicU64,
    /// Set by a subscription that found no room for an event: the connection must close.
    pub(crate) overflow: Notify,
    pub(crate) overflowed: AtomicU64,
    /// The server's `--max-request-bytes`, which `stats` reports so a client can size batches.
    pub(crate) max_request_bytes: usize,
}

impl Conn {
    pub(crate) fn new(
        store: Store,
        outbox: Outbox,
        token: Option<String>,
        max_request_bytes: usize,
    ) -> Conn {
        let token = token.filter(|t| !t.is_empty());
        Conn {
            store,
            outbox,
            authed: AtomicBool::new(token.is_none()),
            token,
            txns: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            next_sub: AtomicU64::new(1),
            overflow: Notify::new(),
            overflowed: AtomicU64::new(0),
            max_request_bytes,
        }
    }

    pub(crate) fn is_authed(&self) -> bool {
        self.authed.load(Ordering::Acquire)
    }

    /// Checks a presented token; compares every byte so timing does not tell how much matched.
    pub(crate) fn authenticate(&self, presented: &str) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let (a, b) = (expected.as_bytes(), presented.as_bytes());
        let mut diff = u8::from(a.len() != b.len());
        for (i, x) in a.iter().enumerate() {
            diff |= x ^ b.get(i).copied().unwrap_or(0);
        }
        let ok = diff == 0;
        if ok {
            self.authed.store(true, Ordering::Release);
        }
        ok
    }

    pub(crate) fn has_subscriptions(&self) -> bool {
        !self.subs.lock().is_empty()
    }

    /// A subscription could not queue an event: ask the connection to close.
    pub(crate) fn overflowed(&self, sub: u64) {
        self.overflowed.store(sub, Ordering::Release);
        self.overflow.notify_one();
    }

    /// Ends every subscription and rolls back every open transaction (dropping a
    /// [`Transaction`] rolls it back).
    pub(crate) fn end(&self) {
        for (_, handle) in self.subs.lock().drain() {
            handle.abort();
        }
        self.txns.lock().clear();
    }
}

/// `{"id":..,"ok":true,"result":..}` followed by a newline; `result` is already JSON text.
pub(crate) fn ok_line(id: &Json, result: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(result.len() + 40);
    out.extend_from_slice(b"{\"id\":");
    write_json(&mut out, id);
    out.extend_from_slice(b",\"ok\":true,\"result\":");
    out.extend_from_slice(result);
    out.extend_from_slice(b"}\n");
    out
}

/// `{"id":..,"ok":false,"error":{"code":..,"message":..}}` followed by a newline.
pub(crate) fn error_line(id: &Json, error: &OpError) -> Vec<u8> {
    #[derive(Serialize)]
    struct Line<'a> {
        id: &'a Json,
        ok: bool,
        error: Body<'a>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        code: &'a str,
        message: &'a str,
    }
    let line = Line {
        id,
        ok: false,
        error: Body {
            code: &error.code,
            message: &error.message,
        },
    };
    let mut out = Vec::with_capacity(96 + error.message.len());
    // Serializing plain strings and a parsed JSON id cannot fail.
    let _ = serde_json::to_writer(&mut out, &line);
    out.push(b'\n');
    out
}

fn write_json(out: &mut Vec<u8>, json: &Json) {
    let _ = serde_json::to_writer(out, json);
}
