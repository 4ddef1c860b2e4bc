//! The native store: a core engine behind a lock, fed with real time, with an expiry timer and
//! a change-event broadcast.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::RwLock;
use statemesh_core::{
    ChangeEvent, Cursor, Engine, EngineError, Metadata, PutOptions, Record, ScanPage, Timestamp,
    Ttl, Value, WriteResult,
};
use tokio::sync::{Notify, broadcast};

use crate::builder::StoreBuilder;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::scan_stream::ScanStream;
use crate::subscription::Subscription;

/// An embedded statemesh store. Cheap to clone: clones share one store.
///
/// Reads run in parallel under a shared lock; writes take the lock exclusively for the time it
/// takes to change memory. Every write returns a [`WriteResult`] whose `latency` is the time
/// the call took, measured here.
///
/// This store is held in memory; durable storage arrives with the file adapter.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    state: RwLock<State>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timer: Arc<Notify>,
    subscribers: Arc<AtomicUsize>,
    closed: AtomicBool,
}

/// What the store's lock guards: the engine, and the event sender that `close` drops so that
/// subscribers see the feed end.
#[derive(Debug)]
struct State {
    engine: Engine,
    events: Option<broadcast::Sender<ChangeEvent>>,
}

impl Inner {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.state.read().engine.poll_timeout()
    }

    pub(crate) fn expire_due(&self) {
        let mut state = self.state.write();
        let before = state.engine.poll_timeout();
        state.engine.handle_timeout(self.clock.now());
        self.after_write(&mut state, before);
    }

    /// Drains what a write produced: events to subscribers, a new deadline to the timer.
    fn after_write(&self, state: &mut State, deadline_before: Option<Timestamp>) {
        let engine = &mut state.engine;
        if engine.captures_events() {
            while let Some(event) = engine.poll_event() {
                if let Some(events) = &state.events {
                    // An error only means every subscriber has gone; the event reaches no one.
                    let _ = events.send(event);
                }
            }
            if self.subscribers.load(Ordering::SeqCst) == 0 {
                engine.set_capture_events(false);
            }
        }
        if engine.poll_timeout() != deadline_before {
            self.timer.notify_one();
        }
    }
}

impl Store {
    /// Configure a store.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// An empty in-memory store with default settings.
    pub async fn in_memory() -> Result<Store> {
        StoreBuilder::default().open_in_memory().await
    }

    pub(crate) fn from_parts(builder: StoreBuilder, snapshot: Option<&[u8]>) -> Result<Store> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut engine = match snapshot {
            Some(bytes) => Engine::restore(builder.engine, bytes)?,
            None => Engine::new(builder.engine)?,
        };
        // Nothing to make durable in memory; events are captured only while someone listens.
        engine.set_capture_log(false);
        engine.set_capture_events(false);
        let (events, _) = broadcast::channel(builder.event_capacity);
        let inner = Arc::new(Inner {
            state: RwLock::new(State {
                engine,
                events: Some(events),
            }),
            clock: builder.clock,
            timer: Arc::new(Notify::new()),
            subscribers: Arc::new(AtomicUsize::new(0)),
            closed: AtomicBool::new(false),
        });
        runtime.spawn(crate::timer::run(Arc::downgrade(&inner)));
        Ok(Store { inner })
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn read<R>(&self, op: impl FnOnce(&Engine, Timestamp) -> Result<R, EngineError>) -> Result<R> {
        self.check_open()?;
        let now = self.inner.clock.now();
        Ok(op(&self.inner.state.read().engine, now)?)
    }

    fn write<R>(
        &self,
        op: impl FnOnce(&mut Engine, Timestamp) -> Result<R, EngineError>,
    ) -> Result<R> {
        self.check_open()?;
        let mut state = self.inner.state.write();
        let before = state.engine.poll_timeout();
        let result = op(&mut state.engine, self.inner.clock.now());
        self.inner.after_write(&mut state, before);
        Ok(result?)
    }

    fn timed_write(
        &self,
        op: impl FnOnce(&mut Engine, Timestamp) -> Result<WriteResult, EngineError>,
    ) -> Result<WriteResult> {
        let start = Instant::now();
        let mut result = self.write(op)?;
        result.latency = start.elapsed();
        Ok(result)
    }

    // ---- reads ----

    /// The value of `key` (`namespace:path`), or `None` when it does not exist or has expired.
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.read(|e, now| e.get(now, key))
    }

    /// The value and its version, for a later [`Store::put_if_version`].
    pub async fn get_with_version(&self, key: &str) -> Result<Option<(Value, u64)>> {
        self.read(|e, now| e.get_with_version(now, key))
    }

    /// The value with its system and user metadata.
    pub async fn get_record(&self, key: &str) -> Result<Option<Record>> {
        self.read(|e, now| e.get_record(now, key))
    }

    /// The metadata of `key` without its value.
    pub async fn get_metadata(&self, key: &str) -> Result<Option<Metadata>> {
        self.read(|e, now| e.get_metadata(now, key))
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.read(|e, now| e.exists(now, key))
    }

    /// How long `key` has left; `None` when it does not exist.
    pub async fn get_ttl(&self, key: &str) -> Result<Option<Ttl>> {
        self.read(|e, now| e.get_ttl(now, key))
    }

    /// Values of several keys, in the order asked.
    pub async fn multi_get<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Value>>> {
        self.read(|e, now| e.multi_get(now, keys))
    }

    /// Keys matching a pattern such as `app:config.*` or `*:user.**`.
    pub async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        self.read(|e, now| e.keys(now, pattern))
    }

    /// Keys and values matching a pattern.
    pub async fn get_pattern(&self, pattern: &str) -> Result<Vec<(String, Value)>> {
        self.read(|e, now| e.get_pattern(now, pattern))
    }

    /// One page of keys under `prefix` (`namespace:path-prefix`); pass `page.next` back for the
    /// next page.
    pub async fn scan(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<ScanPage> {
        self.scan_page(prefix, limit, cursor)
    }

    pub(crate) fn scan_page(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<ScanPage> {
        self.read(|e, now| e.scan(now, prefix, limit, cursor))
    }

    /// Every key under `prefix`, as a stream of pages of up to `batch` items.
    pub fn scan_stream(&self, prefix: &str, batch: usize) -> ScanStream {
        ScanStream::new(self.clone(), prefix.to_owned(), batch)
    }

    // ---- writes ----

    /// Creates or replaces `key`. Clears any TTL (see [`PutOptions::keep_ttl`]).
    pub async fn put(&self, key: &str, value: impl Into<Value>) -> Result<WriteResult> {
        let value = value.into();
        self.timed_write(|e, now| e.put(now, key, &value))
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
    }

    /// Deletes `key`; `affected` is 0 when it did not exist.
    pub async fn delete(&self, key: &str) -> Result<WriteResult> {
        self.timed_write(|e, now| e.delete(now, key))
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
    }

    /// Adds `delta` to an integer (a missing key counts as 0); returns the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<(i64, WriteResult)> {
        let start = Instant::now();
        let (value, mut result) = self.write(|e, now| e.increment(now, key, delta))?;
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
        let (len, mut result) = self.write(|e, now| e.append(now, key, &suffix))?;
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
    }

    /// Puts every pair in one atomic revision.
    pub async fn multi_put<K: AsRef<str>>(&self, items: &[(K, Value)]) -> Result<WriteResult> {
        self.timed_write(|e, now| e.multi_put(now, items))
    }

    /// Deletes every listed key in one revision.
    pub async fn multi_delete<K: AsRef<str>>(&self, keys: &[K]) -> Result<WriteResult> {
        self.timed_write(|e, now| e.multi_delete(now, keys))
    }

    /// Deletes every key matching `pattern` in one revision.
    pub async fn delete_pattern(&self, pattern: &str) -> Result<WriteResult> {
        self.timed_write(|e, now| e.delete_pattern(now, pattern))
    }

    // ---- TTL ----

    /// Makes `key` expire after `ttl_ms` milliseconds.
    pub async fn set_ttl(&self, key: &str, ttl_ms: u64) -> Result<WriteResult> {
        self.timed_write(|e, now| e.set_ttl(now, key, ttl_ms))
    }

    /// Pushes the expiry of `key` later by `by_ms`.
    pub async fn extend_ttl(&self, key: &str, by_ms: u64) -> Result<WriteResult> {
        self.timed_write(|e, now| e.extend_ttl(now, key, by_ms))
    }

    /// Removes the TTL of `key`.
    pub async fn remove_ttl(&self, key: &str) -> Result<WriteResult> {
        self.timed_write(|e, now| e.remove_ttl(now, key))
    }

    /// Removes expired keys now (the timer does this on its own); returns how many.
    pub async fn cleanup_expired(&self) -> Result<u64> {
        self.write(|e, now| Ok(e.cleanup_expired(now)))
    }

    // ---- feed, state, lifecycle ----

    /// Every change committed from now on; see [`Subscription`].
    pub fn subscribe(&self) -> Result<Subscription> {
        self.check_open()?;
        let mut state = self.inner.state.write();
        let rx = state.events.as_ref().ok_or(Error::Closed)?.subscribe();
        state.engine.set_capture_events(true);
        Ok(Subscription::new(rx, self.inner.subscribers.clone()))
    }

    /// The revision of the last committed write.
    pub fn revision(&self) -> u64 {
        self.inner.state.read().engine.revision()
    }

    /// Keys held (expired keys not yet swept included).
    pub fn len(&self) -> usize {
        self.inner.state.read().engine.len()
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
        let mut state = self.inner.state.write();
        self.inner.closed.store(true, Ordering::Release);
        state.events = None;
        drop(state);
        self.inner.timer.notify_one();
    }
}
