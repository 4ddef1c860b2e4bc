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

use std::ops::Range;
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
    if *shutdown.borrow_and_update() {
        return Ok(());
    }
    // Waits for the shutdown signal. Created once: a fresh `changed()` per request would
    // register with the channel's waiter list (a lock shared by every connection) every time.
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    tokio::pin!(stop);
    let idle = session.config.idle_timeout;
    let max_request = session.config.max_request_bytes;
    let mut conn = Conn::new(session, shared, id);
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut batch = Batch::default();
    // One timer for the idle timeout, pushed back only when it fires early: arming a timer
    // around every read would cost more than the read on a busy connection.
    let mut last_active = Instant::now();
    let idle_timer = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(86_400)));
    tokio::pin!(idle_timer);
    loop {
        // Parse every complete request in the buffer, then run them in order.
        let (end, broken) = batch.parse(&mut buf, max_request);
        let input = table::Input::new(buf.get(..end).unwrap_or_default());
        let flow = conn.run(input, &batch, &mut out, &mut stream, idle).await?;
        if flow == Flow::Close {
            send(&mut stream, &mut out, idle, conn.mailbox().as_deref()).await?;
            return Ok(());
        }
        if let Some(e) = broken {
            reply::error(&mut out, &format!("ERR Protocol error: {e}"));
            send(&mut stream, &mut out, idle, conn.mailbox().as_deref()).await?;
            tracing::debug!(peer = %conn.peer(), error = %e, "protocol error; closing");
            return Ok(());
        }
        buf.drain(..end);
        conn.report_commands();
        send(&mut stream, &mut out, idle, conn.mailbox().as_deref()).await?;
        if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
            buf = Vec::with_capacity(READ_CHUNK);
        }
        if out.capacity() > KEEP_BUFFER {
            out = Vec::with_capacity(READ_CHUNK);
        }
        batch.shrink();
        buf.reserve(READ_CHUNK);
        let subscribed = conn.subscribed();
        tokio::select! {
            // A shutdown wins over more requests: the ones read so far have been answered.
            biased;
            () = &mut stop => {
                return Ok(());
            }
            delivered = conn.next_message(&mut out), if subscribed => {
                if !delivered {
                    tracing::debug!(peer = %conn.peer(), "subscriber fell behind its buffer limit; closing");
                    send(&mut stream, &mut out, idle, conn.mailbox().as_deref()).await?;
                    return Ok(());
                }
            }
            read = stream.read_buf(&mut buf) => {
                if read? == 0 {
                    return Ok(());
                }
                last_active = Instant::now();
            }
            () = &mut idle_timer, if idle.is_some() => {
                let limit = idle.unwrap_or_default();
                if !subscribed && last_active.elapsed() >= limit {
                    tracing::debug!(peer = %conn.peer(), "idle timeout; closing");
                    return Ok(());
                }
                // Subscribed connections do not idle out: look again a full period later.
                let next = if subscribed { Instant::now() } else { last_active } + limit;
                idle_timer.as_mut().reset(tokio::time::Instant::from_std(next));
            }
        }
    }
}

/// The requests parsed out of one read buffer: every request's arguments back to back, where
/// each request's start in that list, and each request's command, looked up once (grouping
/// and running a request both need it). Reused from batch to batch.
#[derive(Debug, Default)]
struct Batch {
    args: Vec<Range<usize>>,
    requests: Vec<Range<usize>>,
    cmds: Vec<Option<table::Cmd>>,
    scratch: Vec<Range<usize>>,
}

impl Batch {
    /// Parses complete requests from the start of `buf` (unescaping inline arguments in place);
    /// returns where the unparsed rest starts, and the protocol error that stopped parsing, if
    /// one did (the requests before it still run).
    fn parse(
        &mut self,
        buf: &mut [u8],
        max_request: usize,
    ) -> (usize, Option<parse::ProtocolError>) {
        self.args.clear();
        self.requests.clear();
        self.cmds.clear();
        let mut start = 0;
        loop {
            match parse::parse_request(buf, start, max_request, &mut self.scratch) {
                Ok(Some(end)) => {
                    start = end;
                    if let Some(name) = self.scratch.first() {
                        self.cmds.push(table::Cmd::lookup(
                            buf.get(name.clone()).unwrap_or_default(),
                        ));
                        let first = self.args.len();
                        self.args.append(&mut self.scratch);
                        self.requests.push(first..self.args.len());
                    }
                }
                Ok(None) => return (start, None),
                Err(e) => return (start, Some(e)),
            }
        }
    }

    fn len(&self) -> usize {
        self.requests.len()
    }

    /// The command of request `i`; `None` for an unknown one.
    fn cmd(&self, i: usize) -> Option<table::Cmd> {
        self.cmds.get(i).copied().flatten()
    }

    fn args<'a>(&'a self, input: table::Input<'a>, i: usize) -> table::Args<'a> {
        let range = self.requests.get(i).cloned().unwrap_or_default();
        input.args(self.args.get(range).unwrap_or_default())
    }

    /// Gives back the memory of an unusually large pipeline.
    fn shrink(&mut self) {
        if self.args.capacity() > 4096 {
            *self = Batch::default();
        }
    }
}

/// Writes out the replies waiting. A client that does not read them for as long as the idle
/// timeout is cut off rather than left holding this task, and so is a subscriber dropped by the
/// broker for falling behind while this write waits.
async fn send(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    idle: Option<Duration>,
    mailbox: Option<&pubsub::Mailbox>,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    // Almost always the socket takes the whole reply at once: try that before arming a timer.
    let done = match stream.try_write(out) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if done == out.len() {
        out.clear();
        return Ok(());
    }
    let rest = &out[done..];
    let write = async {
        match idle {
            Some(limit) => tokio::time::timeout(limit, stream.write_all(rest))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading")
                })?,
            None => stream.write_all(rest).await,
        }
    };
    match mailbox {
        None => write.await?,
        Some(mailbox) => tokio::select! {
            written = write => written?,
            () = mailbox.dropped.notified() => {
                return Err(std::io::Error::other("subscriber fell behind its buffer limit"));
            }
        },
    }
    out.clear();
    Ok(())
}
