//! The committer: one thread that owns the storage adapter and makes log records durable.
//!
//! Writers apply their change to the engine under the store lock and, still under it, move
//! its encoded records to the end of the outbox, so records sit there in revision order. The
//! committer takes the whole outbox at each round (swapping in an empty log of its own, so
//! the two buffers go round without allocating) and appends it in one call: concurrent
//! writers share one fsync (group commit). It then publishes the durable revision; CP writers
//! wait for it before they return. A writer wakes the committer only when no round is already
//! coming, so a busy store costs the committer one wake-up per round, not one message per
//! write; an AP committer, once woken, keeps a steady pace of rounds until one finds nothing,
//! and its writers send nothing meanwhile. A storage failure poisons the store: the committer
//! refuses all later work and every waiter and later call sees [`Error::Poisoned`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use statemesh_core::{EncodedLog, Engine, IndexImage, Storage, StorageError};
use tokio::sync::{oneshot, watch};

use crate::error::{Error, Result};

/// Most queued jobs taken in one round, so one huge backlog cannot starve replies.
const MAX_ROUND: usize = 4096;
/// Most jobs (wake-ups, checkpoints, syncs) waiting for the committer. A writer sends at most
/// one wake-up per round, so the bound is reached only by callers of `checkpoint` and `flush`.
const MAX_QUEUED: usize = 1024;

/// Encoded bytes the outbox may hold before writers wait for the disk, unless the builder says
/// otherwise ([`crate::StoreBuilder::max_backlog_bytes`]).
pub(crate) const DEFAULT_MAX_BACKLOG_BYTES: usize = 64 << 20;

/// Most bytes of buffer the committer keeps between rounds; a round grown past it by a burst
/// gives its buffers back to the allocator.
const MAX_SPARE_BYTES: usize = 4 << 20;

/// How long an AP committer lets writes gather before it appends them. Nobody waits for an AP
/// write's durability, so appending at once buys nothing, while one write and fsync per few
/// records cost the disk and a CPU the writers need: at tens of thousands of writes a second,
/// a millisecond turns one append per handful of writes into one per hundred.
pub(crate) const AP_GATHER: Duration = Duration::from_millis(1);

/// Called with each newly durable revision, on the committer thread.
pub(crate) type OnDurable = Box<dyn Fn(u64) + Send>;

enum Job {
    /// Records wait in the outbox.
    Wake,
    Checkpoint {
        revision: u64,
        bytes: Vec<u8>,
        images: Vec<IndexImage>,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    Sync(oneshot::Sender<Result<(), StorageError>>),
}

/// Records written and not yet taken by the committer, in revision order.
#[derive(Debug, Default)]
struct Outbox {
    log: Mutex<EncodedLog>,
    /// A round will take the outbox: a wake-up is on its way or the committer is about to take
    /// it. Writers that find it set send nothing. The committer clears it just before it takes
    /// the outbox, under the outbox lock's ordering, so a writer whose records miss that take
    /// sees it clear and wakes the committer again.
    round_coming: AtomicBool,
}

impl Outbox {
    /// Lets writers wake the committer again, after a round found the outbox empty. False
    /// when records arrived meanwhile: their writers saw a round coming and sent nothing, so
    /// they are the committer's to take, and the flag stays set for the round that will.
    fn quiet(&self) -> bool {
        self.round_coming.store(false, Ordering::SeqCst);
        // Under the lock: a writer whose records this misses appended after the clear, so it
        // sees the flag clear and sends a wake-up.
        if self.log.lock().is_empty() {
            return true;
        }
        self.round_coming.store(true, Ordering::SeqCst);
        false
    }
}

/// What a write handed to the committer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queued {
    /// The revision of its last record.
    pub(crate) last: u64,
    /// How many records it handed over.
    pub(crate) records: usize,
    /// True when the outbox holds more than the backlog limit: the writer should wait until
    /// `last` is durable.
    pub(crate) backlogged: bool,
}

#[derive(Debug)]
pub(crate) struct Committer {
    jobs: Mutex<Option<mpsc::SyncSender<Job>>>,
    outbox: Arc<Outbox>,
    durable: watch::Receiver<u64>,
    durable_revision: Arc<AtomicU64>,
    poison: Arc<Poison>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Encoded log bytes appended since the store last took the count (checkpoint trigger).
    log_bytes: Arc<AtomicU64>,
    max_backlog_bytes: usize,
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
        max_backlog_bytes: usize,
        on_durable: OnDurable,
    ) -> Result<Committer> {
        let (tx, rx) = mpsc::sync_channel(MAX_QUEUED);
        let (durable_tx, durable_rx) = watch::channel(durable);
        let durable_revision = Arc::new(AtomicU64::new(durable));
        let poison = Arc::new(Poison::default());
        let log_bytes = Arc::new(AtomicU64::new(0));
        let outbox = Arc::new(Outbox::default());
        let worker = Worker {
            outbox: outbox.clone(),
            taken: EncodedLog::new(),
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
            outbox,
            durable: durable_rx,
            durable_revision,
            poison,
            thread: Mutex::new(Some(thread)),
            log_bytes,
            max_backlog_bytes,
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

    /// Moves the records the engine has waiting to the outbox and makes sure a round will take
    /// them. Call under the store lock, so records reach the outbox in revision order.
    pub(crate) fn append_from(&self, engine: &mut Engine) -> Result<Option<Queued>> {
        self.poison.check()?;
        if !engine.has_log() {
            return Ok(None);
        }
        let queued = {
            let mut log = self.outbox.log.lock();
            let before = log.len();
            engine.append_log_to(&mut log);
            Queued {
                last: log.last_revision().unwrap_or(0),
                records: log.len() - before,
                backlogged: log.byte_len() > self.max_backlog_bytes,
            }
        };
        // A load first: while a round is coming (most writes of a busy store) the flag's cache
        // line stays shared instead of moving to this core at every write.
        if !self.outbox.round_coming.load(Ordering::Acquire)
            && !self.outbox.round_coming.swap(true, Ordering::AcqRel)
        {
            self.wake()?;
        }
        Ok(Some(queued))
    }

    /// Tells the committer records wait. A full queue needs no wake-up: every round takes the
    /// outbox, and the queued jobs start one.
    fn wake(&self) -> Result<()> {
        match self.jobs.lock().as_ref().map(|tx| tx.try_send(Job::Wake)) {
            Some(Ok(())) | Some(Err(TrySendError::Full(_))) => Ok(()),
            Some(Err(TrySendError::Disconnected(_))) | None => Err(Error::Closed),
        }
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

    /// Writes a snapshot covering `revision` through the storage, after every record that
    /// reached the outbox before it, then the index images taken with it (best effort: a
    /// failure there is logged and poisons nothing; the next open rebuilds the indexes
    /// concerned).
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

    /// Makes everything in the outbox so far durable, whatever the sync policy.
    pub(crate) async fn sync(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Sync(reply))?;
        rx.await
            .map_err(|_| Error::Closed)?
            .map_err(Error::Poisoned)
    }

    /// Stops taking work, lets the thread finish what is queued and in the outbox (with a final
    /// sync) and joins it. The storage (and its directory lock) is released when this returns.
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
    outbox: Arc<Outbox>,
    /// The records of the round being appended; between rounds, an empty log whose buffers
    /// the next take swaps into the outbox.
    taken: EncodedLog,
    durable: watch::Sender<u64>,
    durable_revision: Arc<AtomicU64>,
    poison: Arc<Poison>,
    sync_every: Option<Duration>,
    gather: Option<Duration>,
    on_durable: OnDurable,
    log_bytes: Arc<AtomicU64>,
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
            if let (Some(gather), Job::Wake) = (self.gather, &first) {
                if !self.gather_rounds(gather, &mut round) {
                    break;
                }
                continue;
            }
            round.push_back(first);
            self.take_jobs(&mut round);
            self.append_outbox();
            self.run_jobs(&mut round);
        }
        // Every sender is gone: the store closed or was dropped. Leave nothing unsynced.
        self.append_outbox();
        let _ = self.sync();
    }

    /// AP rounds at a steady pace while writes keep coming: sleep `gather`, take the outbox,
    /// again. Writers send no wake-ups meanwhile (the round flag stays set), so a busy store
    /// costs this thread one timer wake-up per round and its writers no system call; a
    /// wake-up per round also meant a second switch onto the writers' CPU just to go to sleep.
    /// Returns after a round that found nothing to append (the store is quiet again), or
    /// `false` once every sender is gone.
    fn gather_rounds(&mut self, gather: Duration, round: &mut VecDeque<Job>) -> bool {
        loop {
            std::thread::sleep(gather);
            let open = self.take_jobs(round);
            let took = self.take_outbox();
            self.run_jobs(round);
            if !open {
                return false;
            }
            if !took && self.outbox.quiet() {
                return true;
            }
        }
    }

    /// Moves queued jobs into `round`, up to [`MAX_ROUND`]. False when every sender is gone
    /// and nothing is queued.
    fn take_jobs(&mut self, round: &mut VecDeque<Job>) -> bool {
        while round.len() < MAX_ROUND {
            match self.jobs.try_recv() {
                Ok(job) => round.push_back(job),
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    /// Runs the round's jobs. Every job of a round was sent after the records it concerns
    /// reached the outbox (a checkpoint's snapshot after its records, a sync after the writes
    /// it covers), and the outbox was taken first, so storage stays in revision order.
    fn run_jobs(&mut self, round: &mut VecDeque<Job>) {
        while let Some(job) = round.pop_front() {
            match job {
                Job::Wake => {}
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
                            tracing::warn!("index images at revision {revision} not stored: {e}");
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

    /// Clears the round flag, then takes the outbox: a writer whose records miss this take
    /// sees the flag clear and wakes the thread again.
    fn append_outbox(&mut self) {
        self.outbox.round_coming.store(false, Ordering::Release);
        self.take_outbox();
    }

    /// Takes everything in the outbox and appends it, straight from the writers' buffer.
    /// False when the outbox was empty.
    fn take_outbox(&mut self) -> bool {
        {
            let mut log = self.outbox.log.lock();
            if log.is_empty() {
                return false;
            }
            std::mem::swap(&mut *log, &mut self.taken);
        }
        if let Some(last) = self.taken.last_revision() {
            self.log_bytes
                .fetch_add(self.taken.byte_len() as u64, Ordering::Relaxed);
            let taken = std::mem::take(&mut self.taken);
            let appended = self.guarded(|s| {
                futures_executor::block_on(s.append_logs(std::slice::from_ref(&taken)))
            });
            self.taken = taken;
            if appended.is_ok() {
                self.durable_revision.store(last, Ordering::Release);
                self.durable.send_replace(last);
                (self.on_durable)(last);
            }
        }
        if self.taken.capacity_bytes() > MAX_SPARE_BYTES {
            self.taken = EncodedLog::new();
        } else {
            self.taken.clear();
        }
        true
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

#[cfg(test)]
mod tests {
    use statemesh_core::{EngineConfig, Timestamp, Value};

    use super::*;

    fn outbox_with_a_record() -> Outbox {
        let mut engine = Engine::new(EngineConfig::default()).expect("engine");
        engine
            .put(Timestamp(1), "a:k", &Value::Integer(1))
            .expect("put");
        let outbox = Outbox::default();
        engine.append_log_to(&mut outbox.log.lock());
        outbox
    }

    /// A writer that found a round coming sent no wake-up: a committer going quiet must not
    /// leave its records behind.
    #[test]
    fn going_quiet_keeps_the_round_for_records_that_arrived() {
        let outbox = outbox_with_a_record();
        outbox.round_coming.store(true, Ordering::SeqCst);
        assert!(!outbox.quiet());
        assert!(outbox.round_coming.load(Ordering::SeqCst));
        assert_eq!(outbox.log.lock().len(), 1);
    }

    #[test]
    fn going_quiet_with_nothing_waiting_lets_writers_wake_the_committer() {
        let outbox = Outbox::default();
        outbox.round_coming.store(true, Ordering::SeqCst);
        assert!(outbox.quiet());
        assert!(!outbox.round_coming.load(Ordering::SeqCst));
    }
}
