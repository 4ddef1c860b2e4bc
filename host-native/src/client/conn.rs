//! The client's connection: one writer task, one reader task, and requests in flight matched
//! to their responses by id, so many tasks can share one connection (pipelining).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::decode;
use crate::error::{Error, Result};
use crate::server::jsonl::framing::{Line, read_line};
use crate::{ChangeEvent, SubscriptionError};

/// Largest response line the client accepts (a `keys` of a big store is one line).
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// How long `connect` waits for the server to accept.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Events a subscription buffers before it is cut off as lagging.
pub(crate) const SUBSCRIPTION_BUFFER: usize = 4096;

pub(crate) type EventResult = std::result::Result<ChangeEvent, SubscriptionError>;

/// Where a subscription's events go, and whether it was cut off for not keeping up or by a
/// broken connection (for when its buffer is too full to take the error itself).
#[derive(Clone)]
pub(crate) struct SubSink {
    pub(crate) tx: mpsc::Sender<EventResult>,
    pub(crate) lagged: Arc<AtomicBool>,
    pub(crate) disconnected: Arc<AtomicBool>,
}

enum Pending {
    Call(oneshot::Sender<Result<Json>>),
    /// A subscribe: the reader registers the sink before it reads the next line, so no event
    /// that follows the response can miss it.
    Subscribe(oneshot::Sender<Result<Json>>, SubSink),
}

#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, Pending>>,
    subs: Mutex<HashMap<u64, SubSink>>,
    /// How the connection ended, once it has.
    closed: Mutex<Option<Ended>>,
}

/// How a connection ended: the two call for different errors (and for a client, different
/// next steps: a broken connection is dialed again, a closed client is not).
#[derive(Clone)]
enum Ended {
    /// The socket broke, the server closed it, or it sent something unreadable.
    Broke(String),
    /// [`crate::Client::close`].
    ByClient,
}

/// The connection itself; [`crate::Client`] wraps it in an `Arc`.
pub(crate) struct Connection {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    reader: AbortHandle,
    writer: AbortHandle,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer ends with the channel; the reader would wait on the socket forever.
        self.reader.abort();
    }
}

impl Connection {
    pub(crate) async fn open(addr: &str) -> Result<Connection> {
        // An address that drops packets would otherwise hang for the OS's minutes-long timeout.
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Connection(format!("{addr}: no answer in {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| Error::Connection(format!("{addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let writer = tokio::spawn(write_loop(rx, write_half)).abort_handle();
        let reader = tokio::spawn(read_loop(read_half, shared.clone())).abort_handle();
        Ok(Connection {
            tx,
            shared,
            next_id: AtomicU64::new(1),
            reader,
            writer,
        })
    }

    /// True once the connection has ended, broken or closed: nothing sent on it is answered.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.lock().is_some()
    }

    /// Ends the connection for [`crate::Client::close`]: calls in flight fail with
    /// [`Error::Closed`], subscriptions end with [`SubscriptionError::Closed`], and the socket
    /// is dropped (the server then rolls back this connection's open transactions).
    pub(crate) fn close(&self) {
        end(&self.shared, Ended::ByClient);
        self.reader.abort();
        self.writer.abort();
    }

    /// The error for a request that found the connection already ended: it was never sent.
    fn closed_error(&self) -> Error {
        match self.shared.closed.lock().clone() {
            Some(Ended::ByClient) => Error::Closed,
            Some(Ended::Broke(reason)) => Error::Connection(format!(
                "{reason} (the request was not sent: this handle belongs to that connection)"
            )),
            None => Error::Connection("the connection is closed (the request was not sent)".into()),
        }
    }

    /// Sends `op` with `args` and waits for its result.
    pub(crate) async fn call(&self, op: &str, args: Args) -> Result<Json> {
        self.request(op, args, None).await
    }

    /// Sends a subscribe; events start flowing into `sink` right after its response.
    pub(crate) async fn subscribe(&self, args: Args, sink: SubSink) -> Result<Json> {
        self.request("subscribe", args, Some(sink)).await
    }

    async fn request(&self, op: &str, args: Args, sink: Option<SubSink>) -> Result<Json> {
        let args = args.finish()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        let pending = match sink {
            Some(sink) => Pending::Subscribe(done, sink),
            None => Pending::Call(done),
        };
        {
            // Checked under the lock the reader takes to fail everything, so no request
            // can slip in after it and wait forever.
            let mut map = self.shared.pending.lock();
            if self.shared.closed.lock().is_some() {
                return Err(self.closed_error());
            }
            map.insert(id, pending);
        }
        // A caller that stops waiting (a timeout) leaves no entry behind for a server that
        // never answers.
        let _forget = ForgetOnDrop {
            shared: &self.shared,
            id,
        };
        if self.tx.send(request_line(id, op, args)).is_err() {
            return Err(self.closed_error());
        }
        match answer.await {
            Ok(result) => result,
            // The reader fails every pending request before it ends, so this is a reader
            // that panicked or was aborted: the request may have reached the server.
            Err(_) => Err(Error::Connection(in_flight(
                "the connection ended without an answer",
            ))),
        }
    }

    /// Sends a request whose answer nobody waits for (rollback or unsubscribe on drop).
    pub(crate) fn send_and_forget(&self, op: &str, args: Args) {
        let Ok(args) = args.finish() else {
            return;
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(request_line(id, op, args));
    }

    pub(crate) fn forget_subscription(&self, sub: u64) {
        self.shared.subs.lock().remove(&sub);
    }
}

/// Removes a request from the pending map when its caller is done with it, answered or not
/// (the reader already removed an answered one).
struct ForgetOnDrop<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.shared.pending.lock().remove(&self.id);
    }
}

/// A request's arguments, serialized as they are added (`,"name":value` each), so values go
/// straight to bytes without an intermediate JSON tree.
#[derive(Default)]
pub(crate) struct Args {
    bytes: Vec<u8>,
    /// The first value that could not be serialized; the request fails with it.
    error: Option<String>,
}

impl Args {
    pub(crate) fn new() -> Args {
        Args {
            bytes: Vec::with_capacity(64),
            error: None,
        }
    }

    /// Adds an argument.
    pub(crate) fn with(mut self, name: &str, value: &(impl serde::Serialize + ?Sized)) -> Args {
        if self.error.is_some() {
            return self;
        }
        self.bytes.push(b',');
        let written = serde_json::to_writer(&mut self.bytes, name).and_then(|()| {
            self.bytes.push(b':');
            serde_json::to_writer(&mut self.bytes, value)
        });
        if let Err(e) = written {
            self.error = Some(e.to_string());
        }
        self
    }

    /// Adds an argument already serialized as JSON (a bulk load's items, sized as they are
    /// encoded).
    pub(crate) fn with_raw(mut self, name: &str, json: &[u8]) -> Args {
        if self.error.is_some() {
            return self;
        }
        self.bytes.push(b',');
        if let Err(e) = serde_json::to_writer(&mut self.bytes, name) {
            self.error = Some(e.to_string());
            return self;
        }
        self.bytes.push(b':');
        self.bytes.extend_from_slice(json);
        self
    }

    fn finish(self) -> Result<Vec<u8>> {
        match self.error {
            Some(e) => Err(Error::Protocol(format!("cannot send the request: {e}"))),
            None => Ok(self.bytes),
        }
    }
}

impl From<Map<String, Json>> for Args {
    fn from(map: Map<String, Json>) -> Args {
        map.iter().fold(Args::new(), |a, (k, v)| a.with(k, v))
    }
}

fn request_line(id: u64, op: &str, args: Vec<u8>) -> Vec<u8> {
    let mut line = Vec::with_capacity(args.len() + op.len() + 32);
    line.extend_from_slice(b"{\"id\":");
    line.extend_from_slice(id.to_string().as_bytes());
    line.extend_from_slice(b",\"op\":");
    let _ = serde_json::to_writer(&mut line, op);
    line.extend_from_slice(&args);
    line.extend_from_slice(b"}\n");
    line
}

async fn write_loop(mut rx: mpsc::UnboundedReceiver<Vec<u8>>, socket: OwnedWriteHalf) {
    let mut out = BufWriter::with_capacity(64 * 1024, socket);
    while let Some(line) = rx.recv().await {
        let mut next = Some(line);
        // Everything already queued goes out in one write: pipelining.
        while let Some(line) = next.take() {
            if out.write_all(&line).await.is_err() {
                return;
            }
            next = rx.try_recv().ok();
        }
        if out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.shutdown().await;
}

async fn read_loop(socket: OwnedReadHalf, shared: Arc<Shared>) {
    let mut reader = BufReader::with_capacity(64 * 1024, socket);
    let mut line = Vec::new();
    let reason = loop {
        match read_line(&mut reader, &mut line, MAX_RESPONSE_BYTES).await {
            Ok(Line::Complete) => {}
            Ok(Line::Eof) => break "the server closed the connection".to_owned(),
            Ok(Line::TooLarge) => break "a response line is too large".to_owned(),
            Err(e) => break e.to_string(),
        }
        let parsed: std::result::Result<Json, _> = serde_json::from_slice(&line);
        line.clear();
        match parsed {
            Ok(Json::Object(message)) => {
                if let Some(reason) = dispatch(&shared, message) {
                    break reason;
                }
            }
            _ => break "the server sent something that is not a JSON object".to_owned(),
        }
    };
    end(&shared, Ended::Broke(reason));
}

/// Routes one line from the server; returns a reason when the connection is over.
fn dispatch(shared: &Shared, mut message: Map<String, Json>) -> Option<String> {
    if let Some(sub) = message.get("sub").and_then(Json::as_u64)
        && !message.contains_key("id")
    {
        deliver_event(shared, sub, message);
        return None;
    }
    let Some(id) = message.get("id").and_then(Json::as_u64) else {
        // A connection-level error (id null): the server closes after it.
        let (_, error) = decode::outcome(&mut message);
        return Some(match error {
            Err(e) => e.to_string(),
            Ok(_) => "the server sent a response without an id".into(),
        });
    };
    let Some(pending) = shared.pending.lock().remove(&id) else {
        return None; // A request nobody waits for (send_and_forget).
    };
    let (_, result) = decode::outcome(&mut message);
    match pending {
        Pending::Call(done) => {
            let _ = done.send(result);
        }
        Pending::Subscribe(done, sink) => {
            if let Ok(Some(sub)) = result.as_ref().map(|r| r.get("sub").and_then(Json::as_u64)) {
                shared.subs.lock().insert(sub, sink);
            }
            let _ = done.send(result);
        }
    }
    None
}

fn deliver_event(shared: &Shared, sub: u64, mut message: Map<String, Json>) {
    let event = match message.remove("event") {
        Some(event) => decode::event(event).map_err(|_| SubscriptionError::Closed),
        None => {
            // The server ended this subscription, saying why.
            let code = message
                .get("error")
                .and_then(|e| e.get("code"))
                .and_then(Json::as_str)
                .unwrap_or("CLOSED");
            let Some(sink) = shared.subs.lock().remove(&sub) else {
                return;
            };
            let _ = sink.tx.try_send(Err(decode::subscription_error(code)));
            return;
        }
    };
    let mut subs = shared.subs.lock();
    let Some(sink) = subs.get(&sub) else {
        return;
    };
    if sink.tx.try_send(event).is_err() {
        // The application is not keeping up (or dropped the subscription): cut it off rather
        // than buffer without bound. Its receiver sees Lagged once it drains what it has.
        sink.lagged.store(true, Ordering::Release);
        subs.remove(&sub);
    }
}

/// What a request in flight gets when its connection breaks: it may or may not have been
/// applied, so the caller (not the client) decides whether repeating it is safe.
fn in_flight(reason: &str) -> String {
    format!(
        "{reason}; the request was in flight and may or may not have been applied (not retried)"
    )
}

/// Marks the connection ended and fails everything waiting on it. The first ending wins:
/// a close after a break (or a break noticed after a close) changes nothing.
fn end(shared: &Shared, how: Ended) {
    let mut pending = shared.pending.lock();
    {
        let mut closed = shared.closed.lock();
        if closed.is_some() {
            return;
        }
        *closed = Some(how.clone());
    }
    for (_, p) in pending.drain() {
        let done = match p {
            Pending::Call(done) | Pending::Subscribe(done, _) => done,
        };
        let _ = done.send(Err(match &how {
            Ended::ByClient => Error::Closed,
            Ended::Broke(reason) => Error::Connection(in_flight(reason)),
        }));
    }
    drop(pending);
    let ended = match how {
        Ended::ByClient => SubscriptionError::Closed,
        Ended::Broke(_) => SubscriptionError::Disconnected,
    };
    for (_, sink) in shared.subs.lock().drain() {
        if ended == SubscriptionError::Disconnected {
            sink.disconnected.store(true, Ordering::Release);
        }
        let _ = sink.tx.try_send(Err(ended));
    }
}
