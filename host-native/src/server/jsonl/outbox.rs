//! A connection's outgoing lines: queued for one writer task, bounded in bytes.
//!
//! Responses wait for room (so a client that stops reading stops being read from); pushed
//! events never wait: when there is no room the subscriber is too slow and the connection is
//! closed instead of buffering without bound.

use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

enum Message {
    Line(Vec<u8>, Option<OwnedSemaphorePermit>),
    /// Flush what is queued, close the socket's write side, stop.
    Close,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Message>,
    budget: Arc<Semaphore>,
    capacity: usize,
}

impl Outbox {
    /// Starts the writer task over `socket`, holding at most about `capacity` queued bytes.
    pub(crate) fn start(
        socket: OwnedWriteHalf,
        capacity: usize,
    ) -> (Outbox, JoinHandle<std::io::Result<()>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(rx, socket));
        let budget = Arc::new(Semaphore::new(capacity));
        (
            Outbox {
                tx,
                budget,
                capacity,
            },
            writer,
        )
    }

    /// A line bigger than the whole budget takes the whole budget: it is sent alone.
    fn permits(&self, line: &[u8]) -> u32 {
        u32::try_from(line.len().clamp(1, self.capacity)).unwrap_or(u32::MAX)
    }

    /// Queues a line, waiting for room. False when the writer is gone.
    pub(crate) async fn send(&self, line: Vec<u8>) -> bool {
        let Ok(permit) = self
            .budget
            .clone()
            .acquire_many_owned(self.permits(&line))
            .await
        else {
            return false;
        };
        self.tx.send(Message::Line(line, Some(permit))).is_ok()
    }

    /// Queues a line only if there is room now. False when full or the writer is gone.
    pub(crate) fn try_send(&self, line: Vec<u8>) -> bool {
        let Ok(permit) = self
            .budget
            .clone()
            .try_acquire_many_owned(self.permits(&line))
        else {
            return false;
        };
        self.tx.send(Message::Line(line, Some(permit))).is_ok()
    }

    /// Queues a line past the budget: for the one last error line before a close.
    pub(crate) fn send_last(&self, line: Vec<u8>) {
        let _ = self.tx.send(Message::Line(line, None));
    }

    /// Asks the writer to flush what is queued and close.
    pub(crate) fn close(&self) {
        let _ = self.tx.send(Message::Close);
    }
}

async fn write_loop(
    mut rx: mpsc::UnboundedReceiver<Message>,
    socket: OwnedWriteHalf,
) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, socket);
    while let Some(message) = rx.recv().await {
        let mut next = Some(message);
        // Write everything already queued, then flush once: pipelined responses share writes.
        while let Some(message) = next.take() {
            match message {
                Message::Line(line, permit) => {
                    out.write_all(&line).await?;
                    drop(permit);
                }
                Message::Close => {
                    out.flush().await?;
                    return out.shutdown().await;
                }
            }
            next = rx.try_recv().ok();
        }
        out.flush().await?;
    }
    out.flush().await
}
