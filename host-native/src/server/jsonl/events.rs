//! Change-feed subscriptions: events pushed as lines between responses.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use statemesh_core::{ChangeEvent, StoredValue, Value};
use tokio::sync::oneshot;

use super::args::{Args, OpError, OpResult};
use super::conn::{Conn, MAX_PER_CONNECTION};
use super::ops::Reply;
use super::wire::{self, WireValue};
use crate::{ChangeStream, Since, Subscription, SubscriptionError};

/// Where a subscription's events come from: live only, or history first and then live.
enum Source {
    Live(Subscription),
    // Boxed: a stream is twice a subscription's size, and there is one per subscriber.
    Resumed(Box<ChangeStream>),
}

impl Source {
    async fn next(&mut self) -> Result<ChangeEvent, SubscriptionError> {
        match self {
            Source::Live(s) => s.recv().await,
            Source::Resumed(s) => s.next().await,
        }
    }
}

/// `subscribe {pattern?, since?}`: the response `{"sub": n}` goes out before any event.
pub(crate) fn subscribe(conn: &Arc<Conn>, a: &Args) -> OpResult<Reply> {
    let pattern = a.opt_str("pattern")?;
    let source = match (a.opt_u64("since")?, pattern) {
        (Some(revision), _) => Source::Resumed(Box::new(
            conn.store
                .stream_changes(Since::Revision(revision), pattern)?,
        )),
        (None, Some(p)) => Source::Live(conn.store.subscribe_pattern(p)?),
        (None, None) => Source::Live(conn.store.subscribe()?),
    };
    // Held while the forwarder starts, so that one ending at once finds itself registered.
    let mut subs = conn.subs.lock();
    if subs.len() >= MAX_PER_CONNECTION {
        return Err(OpError::new(
            "LIMIT",
            "too many subscriptions on this connection",
        ));
    }
    let sub = conn
        .next_sub
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (start, started) = oneshot::channel();
    let task = tokio::spawn(forward(conn.clone(), sub, source, started));
    subs.insert(sub, task.abort_handle());
    Ok(Reply::Subscribed(
        json!({"sub": sub}).to_string().into_bytes(),
        start,
    ))
}

/// Ends subscription `sub`; false when this connection has none by that number.
pub(crate) fn unsubscribe(conn: &Conn, sub: u64) -> bool {
    match conn.subs.lock().remove(&sub) {
        Some(handle) => {
            handle.abort();
            true
        }
        None => false,
    }
}

async fn forward(conn: Arc<Conn>, sub: u64, mut source: Source, started: oneshot::Receiver<()>) {
    // The subscribe's response is queued first; a dropped signal means it never will be.
    if started.await.is_err() {
        return;
    }
    loop {
        match source.next().await {
            Ok(event) => {
                let line = event_line(sub, &event);
                // Never wait for a slow reader: it would stall the store's feed for nobody.
                if !conn.outbox.try_send(line) {
                    conn.overflowed(sub);
                    return;
                }
            }
            Err(e) => {
                let code = match e {
                    SubscriptionError::Lagged { .. } => "LAGGED",
                    SubscriptionError::Compacted { .. } => "COMPACTED",
                    // Disconnected is the client's own; a store's feed never ends with it.
                    SubscriptionError::Closed | SubscriptionError::Disconnected => "CLOSED",
                };
                let line = json!({
                    "sub": sub, "end": true,
                    "error": {"code": code, "message": e.to_string()},
                });
                let mut line = line.to_string().into_bytes();
                line.push(b'\n');
                conn.subs.lock().remove(&sub);
                if !conn.outbox.try_send(line) {
                    conn.overflowed(sub);
                }
                return;
            }
        }
    }
}

fn event_line(sub: u64, event: &ChangeEvent) -> Vec<u8> {
    #[derive(Serialize)]
    struct Line<'a> {
        sub: u64,
        event: WireEvent<'a>,
    }
    let mut line = Vec::with_capacity(128);
    let _ = serde_json::to_writer(
        &mut line,
        &Line {
            sub,
            event: WireEvent::new(event),
        },
    );
    line.push(b'\n');
    line
}

/// A change event on the wire; `old` / `new` are values in their wire form, absent when none.
#[derive(Serialize)]
pub(crate) struct WireEvent<'a> {
    revision: u64,
    at: u64,
    key: &'a str,
    kind: &'static str,
    version: u64,
    old_version: u64,
    old_mod_revision: u64,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "wire_value")]
    old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "wire_value")]
    new: Option<Value>,
}

impl WireEvent<'_> {
    pub(crate) fn new(e: &ChangeEvent) -> WireEvent<'_> {
        // A value that cannot be decoded (a codec plugin's bytes without the plugin) is left
        // out rather than failing the whole feed.
        let decode = |stored: &Option<StoredValue>| stored.as_ref().and_then(|s| s.decode().ok());
        WireEvent {
            revision: e.revision,
            at: e.at.as_millis(),
            key: &e.key,
            kind: wire::change_kind_name(e.kind),
            version: e.version,
            old_version: e.old_version,
            old_mod_revision: e.old_mod_revision,
            old: decode(&e.old),
            new: decode(&e.new),
        }
    }
}

fn wire_value<S: serde::Serializer>(value: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
    value.as_ref().map(WireValue).serialize(s)
}
