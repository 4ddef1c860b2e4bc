//! The committer: one thread that owns the storage adapter and makes log records durable.
//!
//! Writers apply their change to the engine under the store lock and, still under it, take
//! its encoded records and queue them for the committer, so records reach storage in revision
//! order; the buffers come back for later writes (see [`LogPool`] for why). The committer takes
//! everything queued since its last round and appends it in one call: concurrent writers share
//! one fsync (group commit). It then publishes the durable revision; CP writers wait for
//! it before they return. A storage failure poisons the store: the committer refuses all later
//! work and every waiter and later call sees [`Error::Poisoned`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use statemesh_core::{EncodedLog, IndexImage, Storage, StorageError};
use tokio::sync::{oneshot, watch};

use crate::error::{Error, Result};
use crate::log_pool::LogPool;

/// Most queued jobs taken in one round, so one huge backlog cannot starve replies.
const MAX_ROUND: usize = 4096;
/// Most writes queued for the committer. Past it a writer waits for the disk (backpressure),
/// so an AP store that writes faster than storage syncs cannot grow memory without bound.
const MAX_QUEUED: usize = 65_536;

/// How long an AP committer lets writes gather before it appends them. Nobody waits for an AP
/// write's durability, so appending at once buys nothing, while one write and fsync per few
/// records cost the disk and a CPU the writers need: at tens of thousands of writes a second,
/// a millisecond turns one append per handful of writes into one per hundred.
pub(crate) const AP_GATHER: Duration = Duration::from_millis(1);

/// Called with each newly durable revision, on the committer thread.
pub(crate) type OnDurable = Box<dyn Fn(u64) + Send>;

enum Job {
    /// Records in revision order; the log goes back to [`LogPool`] once appended.
    Append(EncodedLog),
    Checkpoint {
        revision: u64,
        bytes: Vec<u8>,
        images: Vec<IndexImage>,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    Sync(oneshot::Sender<Result<(), StorageError>>),
}

#[derive(Debug)]
pub(crate) struct Committer {
    jobs: Mutex<Option<mpsc::SyncSender<Job>>>,
    durable: watch::Receiver<u64>,
    durable_revision: Arc<AtomicU64>,
    poison: Arc<Poison>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Encoded log bytes appended since the store last took the count (checkpoint trigger).
    log_bytes: Arc<AtomicU64>,
    pool: Arc<LogPool>,
}

/// The first storage failure, kept so every later caller can be told what happened.
#[derive(Debug, Default)]
pub(crate) struct Poison {
    set: AtomicBool,
    cause: Mutex<Option<StorageError>>,
}

impl Poison {
    fn poison(&self, cause: StorageError) {
        let mut slot = self.cause.lock();
        if slot.is_none() {
            *slot = Some(cause);
        }
        self.set.store(true, Ordering::Release);
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.set.load(Ordering::Acquire) {
            let cause = self.cause.lock().clone().unwrap_or(StorageError::Poisoned);
            return Err(Error::Poisoned(cause));
        }
        Ok(())
    }
}

impl Committer {
    /// Starts the committer thread. `durable` is the revision already durable at open.
    /// `gather`: how long to let appends pile up before each round ([`AP_GATHER`] for AP
    /// stores; `None` when writers wait for durability).
    pub(crate) fn start(
        storage: Box<dyn Storage>,
        durable: u64,
        sync_every: Option<Duration>,
        gather: Option<Duration>,
        on_durable: OnDurable,
    ) -> Result<Committer> {
        let (tx, rx) = mpsc::sync_channel(MAX_QUEUED);
        let (durable_tx, durable_rx) = watch::channel(durable);
        let durable_revision = Arc::new(AtomicU64::new(durable));
        let poison = Arc::new(Poison::default());
        let log_bytes = Arc::new(AtomicU64::new(0));
        let pool = Arc::new(LogPool::default());
        let worker = Worker {
            pool: pool.clone(),
            round_logs: Vec::new(),
            log_bytes: log_bytes.clone(),
            storage,
            jobs: rx,
            durable: durable_tx,
            durable_revision: durable_revision.clone(),
            poison: poison.clone(),
            sync_every,
            gather,
            on_durable,
        };
        let thread = std::thread::Builder::new()
            .name("statemesh-committer".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                Error::Poisoned(StorageError::Io {
                    op: "spawn committer thread",
                    path: String::new(),
                    message: e.to_string(),
                })
            })?;
        Ok(Committer {
            jobs: Mutex::new(Some(tx)),
            durable: durable_rx,
            durable_revision,
            poison,
            thread: Mutex::new(Some(thread)),
            log_bytes,
            pool,
        })
    }

    pub(crate) fn poison(&self) -> &Poison {
        &self.poison
    }

    /// The highest revision known durable.
    pub(crate) fn durable_revision(&self) -> u64 {
        self.durable_revision.load(Ordering::Acquire)
    }

    /// Encoded log bytes appended since the count was last taken.
    pub(crate) fn log_bytes(&self) -> &AtomicU64 {
        &self.log_bytes
    }

    /// Takes the records the engine has waiting and queues them for the next round. Call under
    /// the store lock, so records are queued in revision order. Returns the last revision
    /// queued and how many records were.
    pub(crate) fn append_from(
        &self,
        engine: &mut statemesh_core::Engine,
    ) -> Result<Option<(u64, usize)>> {
        let Some(log) = self.pool.take(engine) else {
            return Ok(None);
        };
        let (last, count) = (log.last_revision().unwrap_or(0), log.len());
        self.send(Job::Append(log))?;
        Ok(Some((last, count)))
    }

    fn send(&self, job: Job) -> Result<()> {
        self.poison.check()?;
        match self.jobs.lock().as_ref() {
            Some(tx) => tx.send(job).map_err(|_| Error::Closed),
            None => Err(Error::Closed),
        }
    }

    /// Waits until `revision` is durable.
    pub(crate) async fn wait_durable(&self, revision: u64) -> Result<()> {
        if self.durable_revision() >= revision {
            return Ok(());
        }
        let mut rx = self.durable.clone();
        let poison = &self.poison;
        let reached = rx
            .wait_for(|d| *d >= revision || poison.set.load(Ordering::Acquire))
            .await;
        self.poison.check()?;
        reached.map(|_| ()).map_err(|_| Error::Closed)
    }

    /// Writes a snapshot covering `revision` through the storage, after every record queued
    /// before it, then the index images taken with it (best effort: a failure there is logged
    /// and poisons nothing; the next open rebuilds the indexes concerned).
    pub(crate) async fn checkpoint(
        &self,
        revision: u64,
        bytes: Vec<u8>,
        images: Vec<IndexImage>,
    ) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Checkpoint {
            revision,
            bytes,
            images,
            reply,
        })?;
        rx.await
            .map_err(|_| Error::Closed)?
            .map_err(Error::Poisoned)
    }

    /// Makes everything queued so far durable, whatever the sync policy.
    pub(crate) async fn sync(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Sync(reply))?;
        rx.await
            .map_err(|_| Error::Closed)?
            .map_err(Error::Poisoned)
    }

    /// Stops taking work, lets the thread finish what is queued (with a final sync) and joins it.
    /// The storage (and its directory lock) is released when this returns.
    pub(crate) fn shutdown(&self) {
        drop(self.jobs.lock().take());
        if let Some(thread) = self.thread.lock().take() {
            // A panicked committer already poisoned nothing more we could report here.
            let _ = thread.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    storage: Box<dyn Storage>,
    jobs: mpsc::Receiver<Job>,
    durable: watch::Sender<u64>,
    durable_revision: Arc<AtomicU64>,
    poison: Arc<Poison>,
    sync_every: Option<Duration>,
    gather: Option<Duration>,
    on_durable: OnDurable,
    log_bytes: Arc<AtomicU64>,
    pool: Arc<LogPool>,
    /// The logs of the round being appended.
    round_logs: Vec<EncodedLog>,
}

impl Worker {
    fn run(mut self) {
        let mut round = VecDeque::new();
        loop {
            let first = match self.sync_every {
                Some(every) => match self.jobs.recv_timeout(every) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        // A failure poisons the store; every later call reports it.
                        let _ = self.sync();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match self.jobs.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            if let (Some(gather), Job::Append(_)) = (self.gather, &first) {
                // Senders do not wake a sleeping thread: the writes of the next millisecond
                // cost them a queue push each, and this thread one round.
                std::thread::sleep(gather);
            }
            round.push_back(first);
            while round.len() < MAX_ROUND {
                match self.jobs.try_recv() {
                    Ok(job) => round.push_back(job),
                    Err(_) => break,
                }
            }
            while let Some(job) = round.pop_front() {
                match job {
                    Job::Append(log) => {
                        self.round_logs.push(log);
                        while let Some(Job::Append(_)) = round.front() {
                            if let Some(Job::Append(more)) = round.pop_front() {
                                self.round_logs.push(more);
                            }
                        }
                        self.append_round();
                    }
                    Job::Checkpoint {
                        revision,
                        bytes,
                        images,
                        reply,
                    } => {
                        let r = self.guarded(|s| {
                            futures_executor::block_on(s.write_snapshot(revision, &bytes))
                        });
                        if r.is_ok() && !images.is_empty() {
                            let written = futures_executor::block_on(
                                self.storage.write_index_images(revision, &images),
                            );
                            if let Err(e) = written {
                                tracing::warn!(
                                    "index images at revision {revision} not stored: {e}"
                                );
                            }
                        }
                        let _ = reply.send(r);
                    }
                    Job::Sync(reply) => {
                        let _ = reply.send(self.sync());
                    }
                }
            }
        }
        // Every sender is gone: the store closed or was dropped. Leave nothing unsynced.
        let _ = self.sync();
    }

    /// Appends the round's records, straight from the writers' logs, and hands the logs back.
    fn append_round(&mut self) {
        // Out of `self` for the call, so `guarded` can borrow `self`; taking a `Vec` is free.
        let mut logs = std::mem::take(&mut self.round_logs);
        if let Some(last) = logs.iter().rev().find_map(EncodedLog::last_revision) {
            let bytes: usize = logs.iter().map(EncodedLog::byte_len).sum();
            self.log_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            if self
                .guarded(|s| futures_executor::block_on(s.append_logs(&logs)))
                .is_ok()
            {
                self.durable_revision.store(last, Ordering::Release);
                self.durable.send_replace(last);
                (self.on_durable)(last);
            }
        }
        for log in logs.drain(..) {
            self.pool.give_back(log);
        }
        self.round_logs = logs;
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.guarded(|s| futures_executor::block_on(s.sync()))
    }

    /// Runs a storage call unless poisoned; a failure poisons and wakes every waiter.
    fn guarded(
        &mut self,
        call: impl FnOnce(&mut dyn Storage) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        if self.poison.set.load(Ordering::Acquire) {
            return Err(StorageError::Poisoned);
        }
        call(self.storage.as_mut()).inspect_err(|e| {
            self.poison.poison(e.clone());
            self.durable.send_modify(|_| {});
        })
    }
}
