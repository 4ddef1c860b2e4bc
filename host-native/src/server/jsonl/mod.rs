//! The JSON-lines protocol: one JSON request per line, one JSON response per line.
//! See docs/protocol.md.
//!
//! Requests take effect in the order they arrive: each is run until it first has to wait
//! (in CP mode, for durability), which is after a write has been applied. Only then does the
//! next line get read, so a pipelined `put` then `get` always reads the put. Requests that wait
//! finish on their own tasks (up to [`MAX_IN_FLIGHT`] per connection), which lets one
//! connection's writes share fsyncs; their responses may therefore come out of order, and
//! carry the request's `id` to be matched.

mod args;
mod conn;
mod events;
pub(crate) mod framing;
mod history;
mod ops;
mod outbox;
mod search;
pub(crate) mod txn_wire;
pub(crate) mod wire;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use self::args::OpError;
use self::conn::{Conn, error_line};
use self::framing::{Line, read_line};
use self::outbox::Outbox;
use super::Session;

/// Requests of one connection that may be waiting at once; the next line is not read until
/// one of them finishes.
pub(crate) const MAX_IN_FLIGHT: u32 = 256;

/// Bytes of responses and events queued for one connection before responses wait and
/// subscriptions are cut off.
const OUTBOX_BYTES: usize = 8 << 20;

/// How long a response may wait for room in the outbox (the client is not reading) before the
/// connection is given up.
const STALLED_WRITE: Duration = Duration::from_secs(30);

/// Serves one connection until the client closes it, idles out, breaks the protocol, or the
/// server shuts down.
pub(crate) async fn serve_connection(stream: TcpStream, session: Session) -> std::io::Result<()> {
    let (read_half, write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let (outbox, writer) = Outbox::start(write_half, OUTBOX_BYTES);
    let conn = Arc::new(Conn::new(
        session.store.clone(),
        outbox.clone(),
        session.config.auth_token.clone(),
        session.config.max_request_bytes,
    ));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize));
    let max = session.config.max_request_bytes;
    let mut shutdown = session.shutdown.clone();
    let mut line = Vec::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        // A subscribed connection is waiting for events, not idle.
        let idle = session
            .config
            .idle_timeout
            .filter(|_| !conn.has_subscriptions());
        let read = read_line(&mut reader, &mut line, max);
        let outcome = tokio::select! {
            read = with_timeout(idle, read) => read,
            _ = shutdown.changed() => break,
            _ = conn.overflow.notified() => {
                let sub = conn.overflowed.load(std::sync::atomic::Ordering::Acquire);
                let e = OpError::new("SLOW_CONSUMER", format!(
                    "subscription {sub} fell more than {OUTBOX_BYTES} bytes behind; closing"));
                outbox.send_last(error_line(&Json::Null, &e));
                break;
            }
        };
        match outcome {
            None => {
                tracing::debug!(peer = %session.peer, "idle timeout");
                let e = OpError::new("IDLE_TIMEOUT", "no request for the idle timeout; closing");
                outbox.send_last(error_line(&Json::Null, &e));
                break;
            }
            Some(Err(e)) => {
                tracing::debug!(peer = %session.peer, error = %e, "read failed");
                break;
            }
            Some(Ok(Line::Eof)) => break,
            Some(Ok(Line::TooLarge)) => {
                let e = OpError::new(
                    "TOO_LARGE",
                    format!("request line over {max} bytes; closing the connection"),
                );
                outbox.send_last(error_line(&Json::Null, &e));
                break;
            }
            Some(Ok(Line::Complete)) => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            line.clear();
            continue; // Blank lines (keep-alives, a stray `\r\n`) are not requests.
        }
        let parsed = parse(&line);
        line.clear();
        let (id, op, args) = match parsed {
            Ok(request) => request,
            Err((id, e)) => {
                if !send(&outbox, error_line(&id, &e)).await {
                    break;
                }
                continue;
            }
        };
        // Unconstrained: tokio's cooperative budget must not make a request "wait" before it
        // has been applied (a transaction's lock, say), or a later request could overtake it.
        let mut request = Box::pin(tokio::task::unconstrained(ops::handle(
            conn.clone(),
            id,
            op,
            args,
        )));
        // Run it here until it first waits: that applies a write before the next line is read.
        let polled = poll_once(request.as_mut());
        match polled {
            Poll::Ready(response) => {
                if !answer(&outbox, response).await {
                    break;
                }
            }
            Poll::Pending => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let outbox = outbox.clone();
                tokio::spawn(async move {
                    answer(&outbox, request.await).await;
                    drop(permit);
                });
            }
        }
    }
    // Let requests already running finish and answer, then close.
    let grace = session.config.shutdown_grace;
    let _ = tokio::time::timeout(grace, in_flight.acquire_many(MAX_IN_FLIGHT)).await;
    conn.end();
    outbox.close();
    // Give a slow reader time to take what is queued (the reason for a close comes last),
    // but not a shutting-down server: it has its own grace period.
    let drain = if *shutdown.borrow() {
        Duration::from_secs(1)
    } else {
        STALLED_WRITE
    };
    let mut writer = writer;
    match tokio::time::timeout(drain, &mut writer).await {
        Ok(Ok(result)) => result,
        _ => {
            writer.abort();
            Ok(())
        }
    }
}

/// Polls a future once without a task to wake: if it is pending, the task that takes it over
/// polls it again with its own waker, which every future must then use.
fn poll_once<F: Future + ?Sized>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

async fn with_timeout<F: Future>(limit: Option<Duration>, f: F) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, f).await.ok(),
        None => Some(f.await),
    }
}

/// Queues a response; false when the client has not read for [`STALLED_WRITE`] or is gone.
async fn send(outbox: &Outbox, line: Vec<u8>) -> bool {
    matches!(
        tokio::time::timeout(STALLED_WRITE, outbox.send(line)).await,
        Ok(true)
    )
}

/// Queues an operation's response, then tells whoever waits for it to be queued.
async fn answer(outbox: &Outbox, response: ops::Response) -> bool {
    let queued = send(outbox, response.line).await;
    if queued && let Some(start) = response.on_queued {
        let _ = start.send(());
    }
    queued
}

type Request = (Json, String, serde_json::Map<String, Json>);

/// Splits a line into its id, op and arguments.
fn parse(line: &[u8]) -> Result<Request, (Json, OpError)> {
    let json: Json = serde_json::from_slice(line).map_err(|e| {
        (
            Json::Null,
            OpError::new("BAD_JSON", format!("not valid JSON: {e}")),
        )
    })?;
    let Json::Object(mut map) = json else {
        return Err((
            Json::Null,
            OpError::new("BAD_REQUEST", "a request is a JSON object with \"op\""),
        ));
    };
    let id = map.remove("id").unwrap_or(Json::Null);
    match map.remove("op") {
        Some(Json::String(op)) => Ok((id, op, map)),
        Some(_) => Err((id, OpError::bad_argument("\"op\" must be a string"))),
        None => Err((id, OpError::bad_argument("missing \"op\""))),
    }
}
