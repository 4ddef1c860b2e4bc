//! The Redis-compatible port (RESP2). See docs/resp.md.
//!
//! One task per connection reads into a buffer, parses every complete request in it
//! ([`parse`]), runs them in order ([`exec`]) and answers all of them with one write: pipelined
//! clients get one syscall per batch, not per command. Arguments are slices of the read
//! buffer; the output buffer is reused.

mod admin;
mod data;
mod exec;
mod glob;
mod keyspace;
mod multi;
mod num;
mod parse;
mod pubsub;
mod reply;
mod table;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Session;
use exec::{Conn, Flow};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Replies are written out once this many bytes are waiting, even mid-batch, so a client that
/// pipelines many large reads without reading its replies cannot grow the buffer without bound.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Buffers larger than this are given back once empty (after a large value went through).
const KEEP_BUFFER: usize = 256 * 1024;

/// State every RESP connection shares: pub/sub channels, SCAN cursors, counters for INFO.
#[derive(Debug)]
pub(crate) struct Shared {
    broker: Mutex<pubsub::Broker>,
    cursors: Mutex<keyspace::Cursors>,
    clients: AtomicUsize,
    next_client: AtomicU64,
    commands: AtomicU64,
    connections: AtomicU64,
    started: Instant,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            broker: Mutex::default(),
            cursors: Mutex::default(),
            clients: AtomicUsize::new(0),
            next_client: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

/// Counts a connection for INFO while it lives, and drops its subscriptions when it ends.
struct ClientGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.shared.clients.fetch_sub(1, Ordering::Relaxed);
        self.shared.broker.lock().remove_client(self.id);
    }
}

/// Serves one connection until the client closes it (QUIT), idles out, breaks the protocol, or
/// the server shuts down.
pub(crate) async fn serve_connection(
    mut stream: TcpStream,
    session: Session,
) -> std::io::Result<()> {
    let shared = session.resp_shared.clone();
    shared.clients.fetch_add(1, Ordering::Relaxed);
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let id = shared.next_client.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = ClientGuard {
        shared: shared.clone(),
        id,
    };
    let mut shutdown = session.shutdown.clone();
    let idle = session.config.idle_timeout;
    let max_request = session.config.max_request_bytes;
    let mut conn = Conn::new(session, shared, id);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut args = Vec::with_capacity(8);
    loop {
        // Run every complete request in the buffer, in order.
        let mut start = 0;
        loop {
            match parse::parse_request(&buf, start, max_request, &mut args) {
                Ok(Some(end)) => {
                    start = end;
                    if args.is_empty() {
                        continue;
                    }
                    let flow = conn
                        .dispatch(table::Args::new(&buf, &args), &mut out)
                        .await;
                    if flow == Flow::Close {
                        send(&mut stream, &mut out, idle).await?;
                        return Ok(());
                    }
                    if out.len() >= WRITE_HIGH_WATER {
                        send(&mut stream, &mut out, idle).await?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    reply::error(&mut out, &format!("ERR Protocol error: {e}"));
                    send(&mut stream, &mut out, idle).await?;
                    tracing::debug!(peer = %conn.peer(), error = %e, "protocol error; closing");
                    return Ok(());
                }
            }
        }
        buf.drain(..start);
        send(&mut stream, &mut out, idle).await?;
        if *shutdown.borrow() {
            return Ok(());
        }
        if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
            buf = Vec::with_capacity(READ_CHUNK);
        }
        if out.capacity() > KEEP_BUFFER {
            out = Vec::with_capacity(READ_CHUNK);
        }
        buf.reserve(READ_CHUNK);
        // Subscribed connections wait for messages too, and never idle out.
        let idle_for = if conn.subscribed() { None } else { idle };
        tokio::select! {
            _ = shutdown.changed() => {
                return Ok(());
            }
            delivered = conn.next_message(&mut out), if conn.subscribed() => {
                if !delivered {
                    tracing::debug!(peer = %conn.peer(), "subscriber fell behind its buffer limit; closing");
                    send(&mut stream, &mut out, idle).await?;
                    return Ok(());
                }
            }
            read = read_some(&mut stream, &mut buf, idle_for) => {
                match read {
                    Some(Ok(0)) => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => {
                        tracing::debug!(peer = %conn.peer(), "idle timeout; closing");
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Reads what is there; `None` when nothing came within `idle`.
async fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    idle: Option<Duration>,
) -> Option<std::io::Result<usize>> {
    match idle {
        Some(limit) => tokio::time::timeout(limit, stream.read_buf(buf)).await.ok(),
        None => Some(stream.read_buf(buf).await),
    }
}

/// Writes out the replies waiting. A client that does not read them for as long as the idle
/// timeout is cut off rather than left holding this task.
async fn send(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    idle: Option<Duration>,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let write = stream.write_all(out);
    match idle {
        Some(limit) => tokio::time::timeout(limit, write)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading"))??,
        None => write.await?,
    }
    out.clear();
    Ok(())
}
