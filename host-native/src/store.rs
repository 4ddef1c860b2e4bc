//! The native store: a core engine behind a lock, fed with real time, with an expiry timer and
//! a change-event broadcast.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::RwLock;
use statemesh_core::{
    Cursor, Engine, EngineError, KeyPattern, Metadata, PutOptions, Record, ScanPage, Storage,
    StoredValue, Timestamp, Ttl, Value, WriteResult,
};
use tokio::sync::Notify;

use crate::builder::{Durability, StoreBuilder};
use crate::clock::Clock;
use crate::committer::{Committer, Queued};
use crate::error::{Error, Result};
use crate::feed::Feed;
use crate::scan_stream::ScanStream;
use crate::subscription::Subscription;

/// An embedded statemesh store. Cheap to clone: clones share one store.
///
/// Reads run in parallel under a shared lock; writes take the lock exclusively for the time it
/// takes to change memory. Every write returns a [`WriteResult`] whose `latency` is the time
/// the call took, measured here.
///
/// A store is in memory only, or backed by a storage adapter in one of two modes (see
/// [`Durability`]): CP acknowledges a write only once it is durable and never lets a read see a
/// write that could still be lost; AP acknowledges at once and persists in the background.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    state: RwLock<State>,
    feed: Arc<Feed>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timer: Arc<Notify>,
    subscribers: Arc<AtomicUsize>,
    closed: AtomicBool,
    persist: Option<Persist>,
    /// What storage repaired while this store was opened (e.g. a torn log tail it truncated).
    repairs: Vec<String>,
    /// Fires whenever a prepared transaction is committed or cancelled: `prepare` with
    /// `WaitPolicy::Wait` waits on it.
    pub(crate) resolved: Notify,
    /// How the store builds vector indexes declared after the open.
    pub(crate) vectors: crate::search::VectorChoice,
    /// How long building the builder's indexes took at open.
    pub(crate) index_build_time: std::time::Duration,
}

/// The durable side of a store.
#[derive(Debug)]
pub(crate) struct Persist {
    committer: Committer,
    mode: Durability,
    /// Log records queued since the last checkpoint; a checkpoint starts past `checkpoint_every`.
    since_checkpoint: AtomicU64,
    checkpoint_every: u64,
    /// A checkpoint also starts once the committer has appended this many log bytes since the
    /// last one.
    checkpoint_bytes: u64,
    checkpointing: AtomicBool,
    /// The storage keeps index images: checkpoints take them.
    images: bool,
}

/// What the store's lock guards.
#[derive(Debug)]
struct State {
    engine: Engine,
}

impl Inner {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs `op` on the engine under the lock, for calls that log nothing (a transaction's
    /// rollback when its handle is dropped). Wakes the timer when the next deadline moved.
    pub(crate) fn with_engine<R>(&self, op: impl FnOnce(&mut Engine, Timestamp) -> R) -> R {
        let mut state = self.state.write();
        let before = state.engine.poll_timeout();
        let result = op(&mut state.engine, self.clock.now());
        if state.engine.poll_timeout() != before {
            self.timer.notify_one();
        }
        result
    }

    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.state.read().engine.poll_timeout()
    }

    pub(crate) fn expire_due(&self) {
        let mut state = self.state.write();
        if self.poisoned().is_err() {
            return;
        }
        let before = state.engine.poll_timeout();
        state.engine.handle_timeout(self.clock.now());
        // Nobody waits for expiry records; a failure to queue them poisons the store.
        let _ = self.after_write(&mut state, before);
    }

    fn poisoned(&self) -> Result<()> {
        match &self.persist {
            Some(p) => p.committer.poison().check(),
            None => Ok(()),
        }
    }

    /// Drains what a write produced: log records to the committer's outbox (in revision order,
    /// since this runs under the lock), events to subscribers, a new deadline to the timer.
    /// Returns what was handed to the committer.
    fn after_write(
        &self,
        state: &mut State,
        deadline_before: Option<Timestamp>,
    ) -> Result<Option<Queued>> {
        // Events first: a CP feed must hold them before their records can become durable.
        if state.engine.captures_events() {
            self.feed
                .publish(std::iter::from_fn(|| state.engine.poll_event()));
            if self.subscribers.load(Ordering::SeqCst) == 0 {
                state.engine.set_capture_events(false);
            }
        }
        let queued = match &self.persist {
            Some(persist) => {
                let queued = persist.committer.append_from(&mut state.engine)?;
                if let Some(q) = queued {
                    persist
                        .since_checkpoint
                        .fetch_add(q.records as u64, Ordering::Relaxed);
                }
                queued
            }
            None => None,
        };
        if state.engine.poll_timeout() != deadline_before {
            self.timer.notify_one();
        }
        Ok(queued)
    }
}

impl Store {
    /// Configure a store.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// Opens (or creates) a durable CP store in `dir` with the file adapter and default settings.
    pub async fn open(dir: impl AsRef<std::path::Path>) -> Result<Store> {
        StoreBuilder::default().open(dir).await
    }

    /// An empty in-memory store with default settings.
    pub async fn in_memory() -> Result<Store> {
        StoreBuilder::default().open_in_memory().await
    }

    pub(crate) fn from_parts(builder: StoreBuilder, snapshot: Option<&[u8]>) -> Result<Store> {
        let mut engine = match snapshot {
            Some(bytes) => Engine::restore(builder.engine.clone(), bytes)?,
            None => Engine::new(builder.engine.clone())?,
        };
        crate::codecs::install(&builder, &mut engine)?;
        let index_build_time = crate::search::install(&builder, &mut engine, Vec::new())?;
        let feed = Arc::new(Feed::new(builder.event_capacity, false, 0));
        Store::start(builder, engine, None, feed, Vec::new(), index_build_time)
    }

    /// Opens a store on a storage adapter: loads its snapshot and log, replays, and starts the
    /// committer.
    pub(crate) async fn open_storage(
        builder: StoreBuilder,
        mut storage: Box<dyn Storage>,
    ) -> Result<Store> {
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let recovered = storage.load().await.map_err(Error::Storage)?;
        let images = if recovered.snapshot.is_some() && storage.supports_index_images() {
            match storage.load_index_images().await {
                Ok(images) => images,
                Err(e) => {
                    tracing::warn!("index images unreadable, indexes will be rebuilt: {e}");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let images_supported = storage.supports_index_images();
        let (engine, index_build_time) = recover(&builder, &recovered, images)?;
        let hold = builder.durability == Durability::Cp;
        let feed = Arc::new(Feed::new(builder.event_capacity, hold, engine.revision()));
        let on_durable = {
            let feed = feed.clone();
            Box::new(move |revision| feed.durable(revision))
        };
        let gather = (!hold).then_some(crate::committer::AP_GATHER);
        let committer = Committer::start(
            storage,
            engine.revision(),
            builder.sync_every,
            gather,
            builder.max_backlog_bytes,
            on_durable,
        )?;
        Store::start(
            builder,
            engine,
            Some((committer, images_supported)),
            feed,
            recovered.repairs,
            index_build_time,
        )
    }

    /// Starts a store on an engine whose codecs and indexes are installed; `committer` comes
    /// with whether its storage keeps index images.
    fn start(
        builder: StoreBuilder,
        mut engine: Engine,
        committer: Option<(Committer, bool)>,
        feed: Arc<Feed>,
        repairs: Vec<String>,
        index_build_time: std::time::Duration,
    ) -> Result<Store> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        // Log records are captured only when there is storage to receive them; events only while
        // someone listens.
        engine.set_capture_log(committer.is_some());
        engine.set_capture_events(false);
        let persist = committer.map(|(committer, images)| Persist {
            committer,
            mode: builder.durability,
            since_checkpoint: AtomicU64::new(0),
            checkpoint_every: builder.checkpoint_every,
            checkpoint_bytes: builder.checkpoint_bytes,
            checkpointing: AtomicBool::new(false),
            images,
        });
        let inner = Arc::new(Inner {
            state: RwLock::new(State { engine }),
            feed,
            clock: builder.clock,
            timer: Arc::new(Notify::new()),
            subscribers: Arc::new(AtomicUsize::new(0)),
            closed: AtomicBool::new(false),
            persist,
            repairs,
            resolved: Notify::new(),
            vectors: builder.vectors,
            index_build_time,
        });
        runtime.spawn(crate::timer::run(Arc::downgrade(&inner)));
        Ok(Store { inner })
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.is_closed() {
            return Err(Error::Closed);
        }
        self.inner.poisoned()
    }

    /// The durable side, when reads and writes must wait for durability (CP).
    pub(crate) fn cp(&self) -> Option<&Persist> {
        self.inner
            .persist
            .as_ref()
            .filter(|p| p.mode == Durability::Cp)
    }

    /// A read of one key. In CP mode it never returns state a crash could still take back: when
    /// the key's last write (or, for an absent key, the last removal) is not durable yet, it
    /// waits for that revision and reads again.
    ///
    /// The clock is handed to the engine unread: it reads it only for a key with a TTL.
    async fn read_key<R>(
        &self,
        key: &str,
        op: impl Fn(&Engine, &(dyn Fn() -> Timestamp + Sync)) -> Result<R, EngineError>,
    ) -> Result<R> {
        let clock = self.inner.clock.as_ref();
        let now = || clock.now();
        let now: &(dyn Fn() -> Timestamp + Sync) = &now;
        loop {
            let wait = {
                self.check_open()?;
                let state = self.inner.state.read();
                let Some(persist) = self.cp() else {
                    return Ok(op(&state.engine, now)?);
                };
                let durable = persist.committer.durable_revision();
                if state.engine.revision() <= durable {
                    return Ok(op(&state.engine, now)?);
                }
                let needed = match state.engine.entry(now, key)? {
                    Some(entry) => entry.mod_revision,
                    None => state.engine.last_removal_revision(),
                };
                if needed <= durable {
                    return Ok(op(&state.engine, now)?);
                }
                needed
            };
            self.wait_durable(wait).await?;
        }
    }

    /// A read of many keys. In CP mode it waits until every write applied so far is durable.
    pub(crate) async fn read_all<R>(
        &self,
        op: impl Fn(&Engine, Timestamp) -> Result<R, EngineError>,
    ) -> Result<R> {
        loop {
            let wait = {
                self.check_open()?;
                let state = self.inner.state.read();
                let now = self.inner.clock.now();
                match self.cp() {
                    Some(p) if state.engine.revision() > p.committer.durable_revision() => {
                        state.engine.revision()
                    }
                    _ => return Ok(op(&state.engine, now)?),
                }
            };
            self.wait_durable(wait).await?;
        }
    }

    pub(crate) async fn wait_durable(&self, revision: u64) -> Result<()> {
        match &self.inner.persist {
            Some(p) => p.committer.wait_durable(revision).await,
            None => Ok(()),
        }
    }

    /// Applies a write under the lock and queues its records; in CP mode waits until durable.
    pub(crate) async fn write<R>(
        &self,
        op: impl FnOnce(&mut Engine, Timestamp) -> Result<R, EngineError>,
    ) -> Result<R> {
        let (result, queued) = self.apply(op)?;
        if let Some(q) = queued {
            if self.cp().is_some() || q.backlogged {
                self.wait_durable(q.last).await?;
            }
            self.maybe_checkpoint();
        }
        Ok(result)
    }

    /// Applies a write under the lock and queues its records, without waiting for them; returns
    /// the result and what was handed to the committer.
    fn apply<R>(
        &self,
        op: impl FnOnce(&mut Engine, Timestamp) -> Result<R, EngineError>,
    ) -> Result<(R, Option<Queued>)> {
        self.check_open()?;
        let mut state = self.inner.state.write();
        let before = state.engine.poll_timeout();
        let result = op(&mut state.engine, self.inner.clock.now());
        let queued = self.inner.after_write(&mut state, before)?;
        Ok((result?, queued))
    }

    /// Loads many keys fast: `multi_put`s of `batch` items each (one revision per batch),
    /// pipelined, so the committer writes and syncs one batch while the next is applied.
    /// Returns once every batch is durable (CP) or queued (AP), with the number of keys
    /// written. Not atomic as a whole: after a crash a prefix of the batches is there, each
    /// batch all or nothing. Readers in a CP store still see a key only once its batch is
    /// durable. An invalid item stops the import with its error; the batches before it stay.
    pub async fn import<K: AsRef<str>>(
        &self,
        items: impl IntoIterator<Item = (K, Value)>,
        batch: usize,
    ) -> Result<u64> {
        let batch = batch.clamp(1, self.read_engine(|e| e.config().max_batch)?);
        let mut items = items.into_iter();
        let mut chunk: Vec<(K, Value)> = Vec::with_capacity(batch);
        let (mut written, mut last) = (0u64, None);
        let mut sized = false;
        loop {
            chunk.clear();
            chunk.extend(items.by_ref().take(batch));
            if chunk.is_empty() {
                break;
            }
            let coming = chunk.len() + items.size_hint().0;
            let (result, queued) = self.apply(|e, now| {
                // Size the first key's namespace once for everything the iterator says is
                // coming, instead of growing it batch by batch.
                if !std::mem::replace(&mut sized, true) && coming > batch {
                    e.reserve_for_key(chunk[0].0.as_ref(), coming);
                }
                e.multi_put(now, &chunk)
            })?;
            written += result.affected;
            if let Some(q) = queued {
                last = Some(q.last);
                if q.backlogged {
                    // The disk is behind: wait for it rather than pile up more.
                    self.wait_durable(q.last).await?;
                }
            }
            // Each batch holds the lock for a while: let other tasks on this worker run.
            tokio::task::yield_now().await;
        }
        if let Some(revision) = last {
            if self.cp().is_some() {
                self.wait_durable(revision).await?;
            }
            self.maybe_checkpoint();
        }
        Ok(written)
    }

    pub(crate) async fn timed_write(
        &self,
        op: impl FnOnce(&mut Engine, Timestamp) -> Result<WriteResult, EngineError>,
    ) -> Result<WriteResult> {
        let start = Instant::now();
        let mut result = self.write(op).await?;
        result.latency = start.elapsed();
        Ok(result)
    }

    /// Starts a background checkpoint once enough log has piled up since the last one.
    fn maybe_checkpoint(&self) {
        let Some(p) = &self.inner.persist else { return };
        let due = p.since_checkpoint.load(Ordering::Relaxed) >= p.checkpoint_every
            || p.committer.log_bytes().load(Ordering::Relaxed) >= p.checkpoint_bytes;
        if !due || p.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            // A failure poisons the store; callers see it on their next call.
            let _ = store.checkpoint().await;
            if let Some(p) = &store.inner.persist {
                p.checkpointing.store(false, Ordering::Release);
            }
        });
    }

    /// Writes a snapshot of the current state to storage and lets it drop the log the snapshot
    /// covers, so recovery replays less. Runs on its own every
    /// [`StoreBuilder::checkpoint_every`] records; a no-op for in-memory stores.
    pub async fn checkpoint(&self) -> Result<()> {
        self.check_open()?;
        let Some(p) = &self.inner.persist else {
            return Ok(());
        };
        let (revision, bytes, images, pending) = {
            let state = self.inner.state.read();
            let pending = (
                p.since_checkpoint.swap(0, Ordering::Relaxed),
                p.committer.log_bytes().swap(0, Ordering::Relaxed),
            );
            // Images are taken under the same lock as the snapshot, so they describe exactly
            // its state. They are a cache: failing to take them fails nothing.
            let images = if p.images {
                state.engine.index_images().unwrap_or_else(|e| {
                    tracing::warn!(
                        "index images not taken at revision {}: {e}",
                        state.engine.revision()
                    );
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            (
                state.engine.revision(),
                state.engine.snapshot()?,
                images,
                pending,
            )
        };
        let result = p.committer.checkpoint(revision, bytes, images).await;
        if result.is_err() {
            p.since_checkpoint.fetch_add(pending.0, Ordering::Relaxed);
            p.committer
                .log_bytes()
                .fetch_add(pending.1, Ordering::Relaxed);
        }
        result
    }

    /// Makes every acknowledged write durable now (for AP mode and relaxed sync policies; CP
    /// writes are durable when they return).
    pub async fn flush(&self) -> Result<()> {
        self.check_open()?;
        match &self.inner.persist {
            Some(p) => p.committer.sync().await,
            None => Ok(()),
        }
    }

    // ---- reads ----

    /// The value of `key` (`namespace:path`), or `None` when it does not exist or has expired.
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.read_key(key, |e, now| e.get(now, key)).await
    }

    /// The value and its version, for a later [`Store::put_if_version`].
    pub async fn get_with_version(&self, key: &str) -> Result<Option<(Value, u64)>> {
        self.read_key(key, |e, now| e.get_with_version(now, key))
            .await
    }

    /// The value with its system and user metadata.
    pub async fn get_record(&self, key: &str) -> Result<Option<Record>> {
        self.read_key(key, |e, now| e.get_record(now, key)).await
    }

    /// The metadata of `key` without its value.
    pub async fn get_metadata(&self, key: &str) -> Result<Option<Metadata>> {
        self.read_key(key, |e, now| e.get_metadata(now, key)).await
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.read_key(key, |e, now| e.exists(now, key)).await
    }

    /// How long `key` has left; `None` when it does not exist.
    pub async fn get_ttl(&self, key: &str) -> Result<Option<Ttl>> {
        self.read_key(key, |e, now| e.get_ttl(now, key)).await
    }

    /// Values of several keys, in the order asked.
    pub async fn multi_get<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Value>>> {
        self.read_all(|e, now| e.multi_get(now, keys)).await
    }

    /// Keys matching a pattern such as `app:config.*` or `*:user.**`.
    pub async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        self.read_all(|e, now| e.keys(now, pattern)).await
    }

    /// Keys and values matching a pattern.
    pub async fn get_pattern(&self, pattern: &str) -> Result<Vec<(String, Value)>> {
        self.read_all(|e, now| e.get_pattern(now, pattern)).await
    }

    /// The stored form of the value of `key`, shared without copying or decoding (read its
    /// bytes with `payload()`, decode with `decode()`): the fastest read.
    pub async fn get_stored(&self, key: &str) -> Result<Option<StoredValue>> {
        self.read_key(key, |e, now| e.get_stored(now, key)).await
    }

    /// One page of keys under `prefix` (`namespace:path-prefix`); pass `page.next` back for the
    /// next page.
    pub async fn scan(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<ScanPage> {
        self.read_all(|e, now| e.scan(now, prefix, limit, cursor))
            .await
    }

    /// Every key under `prefix`, as a stream of pages of up to `batch` items.
    pub fn scan_stream(&self, prefix: &str, batch: usize) -> ScanStream {
        ScanStream::new(self.clone(), prefix.to_owned(), batch)
    }

    // ---- writes ----

    /// Creates or replaces `key`. Clears any TTL (see [`PutOptions::keep_ttl`]).
    pub async fn put(&self, key: &str, value: impl Into<Value>) -> Result<WriteResult> {
        let value = value.into();
        self.timed_write(|e, now| e.put(now, key, &value)).await
    }

    /// Creates or replaces `key`, expiring it after `ttl_ms` milliseconds.
    pub async fn put_with_ttl(
        &self,
        key: &str,
        value: impl Into<Value>,
        ttl_ms: u64,
    ) -> Result<WriteResult> {
        let value = value.into();
        self.timed_write(|e, now| e.put_with_ttl(now, key, &value, ttl_ms))
            .await
    }

    /// Writes only if `key` is at version `expected` (0 = must not exist).
    pub async fn put_if_version(
        &self,
        key: &str,
        value: impl Into<Value>,
        expected: u64,
    ) -> Result<WriteResult> {
        let value = value.into();
        self.timed_write(|e, now| e.put_if_version(now, key, &value, expected))
            .await
    }

    /// A put with every option: TTL, keep TTL, expected version, user metadata.
    pub async fn put_with(
        &self,
        key: &str,
        value: impl Into<Value>,
        opts: &PutOptions,
    ) -> Result<WriteResult> {
        let value = value.into();
        self.timed_write(|e, now| e.put_with(now, key, &value, opts))
            .await
    }

    /// Deletes `key`; `affected` is 0 when it did not exist.
    pub async fn delete(&self, key: &str) -> Result<WriteResult> {
        self.timed_write(|e, now| e.delete(now, key)).await
    }

    /// Replaces the value only if it equals `expected` (`None`: only if absent). Keeps the TTL.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Value>,
        new: impl Into<Value>,
    ) -> Result<WriteResult> {
        let new = new.into();
        self.timed_write(|e, now| e.compare_and_swap(now, key, expected, &new))
            .await
    }

    /// Adds `delta` to an integer (a missing key counts as 0); returns the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<(i64, WriteResult)> {
        let start = Instant::now();
        let (value, mut result) = self.write(|e, now| e.increment(now, key, delta)).await?;
        result.latency = start.elapsed();
        Ok((value, result))
    }

    /// Appends a string to a string or bytes to bytes; returns the new length in bytes.
    pub async fn append(
        &self,
        key: &str,
        suffix: impl Into<Value>,
    ) -> Result<(usize, WriteResult)> {
        let suffix = suffix.into();
        let start = Instant::now();
        let (len, mut result) = self.write(|e, now| e.append(now, key, &suffix)).await?;
        result.latency = start.elapsed();
        Ok((len, result))
    }

    /// Replaces the user metadata of `key`.
    pub async fn set_metadata(
        &self,
        key: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<WriteResult> {
        self.timed_write(|e, now| e.set_metadata(now, key, metadata))
            .await
    }

    /// Puts every pair in one atomic revision.
    pub async fn multi_put<K: AsRef<str>>(&self, items: &[(K, Value)]) -> Result<WriteResult> {
        self.timed_write(|e, now| e.multi_put(now, items)).await
    }

    /// Deletes every listed key in one revision.
    pub async fn multi_delete<K: AsRef<str>>(&self, keys: &[K]) -> Result<WriteResult> {
        self.timed_write(|e, now| e.multi_delete(now, keys)).await
    }

    /// Deletes every key matching `pattern` in one revision.
    pub async fn delete_pattern(&self, pattern: &str) -> Result<WriteResult> {
        self.timed_write(|e, now| e.delete_pattern(now, pattern))
            .await
    }

    // ---- TTL ----

    /// Makes `key` expire after `ttl_ms` milliseconds.
    pub async fn set_ttl(&self, key: &str, ttl_ms: u64) -> Result<WriteResult> {
        self.timed_write(|e, now| e.set_ttl(now, key, ttl_ms)).await
    }

    /// Pushes the expiry of `key` later by `by_ms`.
    pub async fn extend_ttl(&self, key: &str, by_ms: u64) -> Result<WriteResult> {
        self.timed_write(|e, now| e.extend_ttl(now, key, by_ms))
            .await
    }

    /// Removes the TTL of `key`.
    pub async fn remove_ttl(&self, key: &str) -> Result<WriteResult> {
        self.timed_write(|e, now| e.remove_ttl(now, key)).await
    }

    /// Removes expired keys now (the timer does this on its own); returns how many.
    pub async fn cleanup_expired(&self) -> Result<u64> {
        self.write(|e, now| Ok(e.cleanup_expired(now))).await
    }

    // ---- feed, state, lifecycle ----

    /// Every change committed from now on; see [`Subscription`].
    pub fn subscribe(&self) -> Result<Subscription> {
        self.live_feed(None).map(|(subscription, ..)| subscription)
    }

    /// Changes to keys matching `pattern` (`namespace:path-glob`, the namespace may be a glob
    /// too), committed from now on; see [`Subscription`].
    pub fn subscribe_pattern(&self, pattern: &str) -> Result<Subscription> {
        let pattern = self.inner.state.read().engine.key_pattern(pattern)?;
        self.live_feed(Some(pattern))
            .map(|(subscription, ..)| subscription)
    }

    /// Calls `handler` with every change to keys matching `pattern` (every change when `None`)
    /// from now on, on a tokio task, until the returned handle is dropped or unsubscribed. A
    /// handler that is slower than the writes gets `Err(Lagged)` and goes on.
    pub fn subscribe_with(
        &self,
        pattern: Option<&str>,
        handler: impl FnMut(std::result::Result<statemesh_core::ChangeEvent, crate::SubscriptionError>)
        + Send
        + 'static,
    ) -> Result<crate::subscription::HandlerSubscription> {
        let subscription = match pattern {
            Some(p) => self.subscribe_pattern(p)?,
            None => self.subscribe()?,
        };
        Ok(crate::subscription::HandlerSubscription::spawn(
            subscription,
            handler,
        ))
    }

    /// A subscription to everything published from now on, the cut (the last revision whose
    /// events it does not get: they are in the history) and the engine's revision then.
    pub(crate) fn live_feed(
        &self,
        pattern: Option<KeyPattern>,
    ) -> Result<(Subscription, u64, u64)> {
        self.check_open()?;
        let mut state = self.inner.state.write();
        let head = state.engine.revision();
        let (rx, cut) = self.inner.feed.subscribe(head).ok_or(Error::Closed)?;
        state.engine.set_capture_events(true);
        let subscription = Subscription::new(rx, self.inner.subscribers.clone(), pattern, cut);
        Ok((subscription, cut, head))
    }

    /// Runs `f` on the engine under the shared lock.
    pub(crate) fn read_engine<R>(&self, f: impl FnOnce(&Engine) -> R) -> Result<R> {
        self.check_open()?;
        Ok(f(&self.inner.state.read().engine))
    }

    /// The revision up to which reads may show history: everything in memory, or in CP mode
    /// only what is durable.
    pub(crate) fn visible_revision(&self, engine: &Engine) -> u64 {
        match self.cp() {
            Some(p) => p.committer.durable_revision().min(engine.revision()),
            None => engine.revision(),
        }
    }

    /// Waits until `revision` is durable (CP mode; at once otherwise).
    pub(crate) async fn wait_visible(&self, revision: u64) -> Result<()> {
        if self.cp().is_some() {
            self.wait_durable(revision).await?;
        }
        Ok(())
    }

    /// The current time by the store's clock.
    pub(crate) fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// What storage repaired when this store was opened, e.g. "truncated a torn frame at byte N
    /// of wal-….log" after a crash mid-write. Empty after a clean shutdown.
    pub fn recovery_repairs(&self) -> &[String] {
        &self.inner.repairs
    }

    /// The revision of the last committed write.
    pub fn revision(&self) -> u64 {
        self.inner.state.read().engine.revision()
    }

    /// Keys held (expired keys not yet swept included).
    pub fn len(&self) -> usize {
        self.inner.state.read().engine.len()
    }

    /// Namespaces that hold at least one key, in order.
    pub fn namespaces(&self) -> Vec<String> {
        let state = self.inner.state.read();
        state.engine.namespaces().map(str::to_owned).collect()
    }

    /// True when the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.inner.state.read().engine.is_empty()
    }

    /// The whole state as bytes; open it again with [`StoreBuilder::open_snapshot`].
    pub async fn snapshot(&self) -> Result<Vec<u8>> {
        self.check_open()?;
        Ok(self.inner.state.read().engine.snapshot()?)
    }

    /// Closes the store: later calls on any clone fail with [`Error::Closed`], the expiry timer
    /// stops, and subscribers see the feed end once they have drained it.
    pub async fn close(&self) {
        let state = self.inner.state.write();
        self.inner.closed.store(true, Ordering::Release);
        drop(state);
        self.inner.timer.notify_one();
        if let Some(p) = &self.inner.persist {
            // Finishes queued records with a final sync (delivering their held events) and
            // releases the storage and its directory lock.
            p.committer.shutdown();
        }
        self.inner.feed.close();
    }
}

/// Rebuilds the engine from what storage loaded, with the builder's codecs and indexes. Two
/// threads: this one restores the snapshot, installs the indexes (loading the images stored
/// with that snapshot where they match, building the others from it) and then replays the log
/// into engine and indexes alike, while a helper decodes log records ahead of it (decoding is
/// about a fifth of replay, and recovery is on the critical path of every open). Returns the
/// engine and the time spent on indexes before the replay plus their final flush.
fn recover(
    builder: &StoreBuilder,
    recovered: &statemesh_core::Recovered,
    images: Vec<statemesh_core::IndexImage>,
) -> Result<(Engine, std::time::Duration)> {
    let config = &builder.engine;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        scope.spawn(move || {
            for record in &recovered.records {
                let decoded = statemesh_core::LogRecord::decode(&record.bytes);
                let failed = decoded.is_err();
                if tx.send(decoded).is_err() || failed {
                    return;
                }
            }
        });
        let mut engine = match &recovered.snapshot {
            Some(bytes) => Engine::restore(config.clone(), bytes)?,
            None => Engine::new(config.clone())?,
        };
        crate::codecs::install(builder, &mut engine)?;
        let mut index_time = crate::search::install(builder, &mut engine, images)?;
        // Size the keyspace once for what the log writes, rather than growing it by doubling
        // (rehashing everything each time) as the replay goes; then give back what overwrites,
        // deletes and other namespaces left unused.
        let ops: usize = recovered
            .records
            .iter()
            .filter_map(|r| statemesh_core::LogRecord::peek_op_count(&r.bytes))
            .sum();
        engine.reserve(None, ops);
        for decoded in rx {
            engine.replay_owned(decoded?)?;
        }
        engine.shrink_to_fit();
        let start = Instant::now();
        // Text indexes build segments of what the replay wrote at their first search: now.
        engine.flush_search()?;
        index_time += start.elapsed();
        Ok((engine, index_time))
    })
}
