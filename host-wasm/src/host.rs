//! The single-threaded wasm host: one core engine, the storage it persists to, the change feed
//! and the expiry timer, shared by a `Store` and the objects it hands out.
//!
//! It follows core's host contract on one JS thread. A write changes the engine at once and
//! queues its log record; whoever finds storage idle flushes everything queued in one `append`
//! (so writes issued together share one durable write) and wakes the writers it covered. In CP
//! mode a write resolves only after that; its change events are held until then too, so a
//! subscriber never sees a change a crash could take back. A storage failure poisons the store.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use statemesh_core::{
    ChangeEvent, EncodedLog, Engine, EngineError, LogBytes, Storage, StorageError, Timestamp,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::error::{HostError, Result};
use crate::feed::Feed;
use crate::types::Durability;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
}

/// A warning on the JS console (nothing when there is none).
pub(crate) fn warn(message: &str) {
    let console = js_sys::Reflect::get(&js_sys::global(), &"console".into());
    if let Ok(console) = console
        && let Ok(f) = js_sys::Reflect::get(&console, &"warn".into())
        && let Some(f) = f.dyn_ref::<js_sys::Function>()
    {
        let _ = f.call1(&console, &message.into());
    }
}

/// The host's clock: wall time in milliseconds, as TTLs are wall-clock deadlines.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_millis(js_sys::Date::now() as u64)
}

pub(crate) type Shared = Rc<RefCell<State>>;

pub(crate) struct State {
    pub(crate) engine: Engine,
    pub(crate) closed: bool,
    pub(crate) feed: Feed,
    pub(crate) persist: Option<Persist>,
    /// Index images from the open that no declaration has taken yet (a declaration after the
    /// open may still use one while the engine is at the image's revision).
    pub(crate) offered_images: bool,
    /// Why the image offered to an index was not used, by index name.
    pub(crate) image_rejections: std::collections::BTreeMap<String, String>,
    timer: Option<Timer>,
    /// Set by `Host::new`, so the timer can reach the state without keeping it alive.
    this: Weak<RefCell<State>>,
}

/// The durable side of a store.
pub(crate) struct Persist {
    /// `None` while a flush has it out.
    storage: Option<Box<dyn Storage>>,
    pub(crate) mode: Durability,
    /// Encoded records not handed to storage yet, in revision order.
    queued: Vec<LogBytes>,
    /// The engine's records as last taken; its buffers go back to the engine at the next take.
    taken: EncodedLog,
    /// Change events waiting for their revision to be durable (CP).
    held: VecDeque<ChangeEvent>,
    pub(crate) durable: u64,
    waiters: Vec<(u64, oneshot::Sender<()>)>,
    poisoned: Option<StorageError>,
    since_checkpoint: u64,
    checkpoint_every: u64,
    pub(crate) repairs: Vec<String>,
}

struct Timer {
    handle: JsValue,
    at: Timestamp,
    _closure: Closure<dyn FnMut()>,
}

impl Persist {
    pub(crate) fn new(
        storage: Box<dyn Storage>,
        mode: Durability,
        durable: u64,
        checkpoint_every: u64,
        repairs: Vec<String>,
    ) -> Persist {
        Persist {
            storage: Some(storage),
            mode,
            queued: Vec::new(),
            taken: EncodedLog::new(),
            held: VecDeque::new(),
            durable,
            waiters: Vec::new(),
            poisoned: None,
            since_checkpoint: 0,
            checkpoint_every: checkpoint_every.max(1),
            repairs,
        }
    }
}

/// Builds the shared state and starts its timer.
pub(crate) fn new_shared(mut engine: Engine, feed: Feed, persist: Option<Persist>) -> Shared {
    engine.set_capture_log(persist.is_some());
    engine.set_capture_events(false);
    let shared = Rc::new_cyclic(|this| {
        RefCell::new(State {
            engine,
            closed: false,
            feed,
            persist,
            offered_images: false,
            image_rejections: std::collections::BTreeMap::new(),
            timer: None,
            this: this.clone(),
        })
    });
    shared.borrow_mut().reschedule();
    shared
}

impl State {
    /// Fails when the store is closed or poisoned.
    pub(crate) fn check(&self) -> Result<()> {
        if self.closed {
            return Err(HostError::Closed);
        }
        match self.persist.as_ref().and_then(|p| p.poisoned.clone()) {
            Some(cause) => Err(HostError::Poisoned(cause)),
            None => Ok(()),
        }
    }

    /// Drains what a write produced: events to subscribers (or held until durable), log records
    /// to the queue. Returns the last revision queued.
    pub(crate) fn after_write(&mut self) -> Result<Option<u64>> {
        let mut last = None;
        if let Some(p) = self.persist.as_mut()
            && self.engine.has_log()
        {
            self.engine.take_log(&mut p.taken);
            for record in p.taken.to_log_bytes() {
                last = Some(record.revision);
                p.queued.push(record);
                p.since_checkpoint += 1;
            }
        }
        if self.engine.captures_events() {
            let hold = self
                .persist
                .as_ref()
                .is_some_and(|p| p.mode == Durability::Cp);
            while let Some(event) = self.engine.poll_event() {
                match self.persist.as_mut() {
                    Some(p) if hold => p.held.push_back(event),
                    _ => self.feed.publish(&event),
                }
            }
            if !self.feed.has_subscribers()
                && self.persist.as_ref().is_none_or(|p| p.held.is_empty())
            {
                self.engine.set_capture_events(false);
            }
        }
        self.reschedule();
        Ok(last)
    }

    /// Records why offered images were refused by the declarations since the last call.
    pub(crate) fn note_image_rejections(&mut self) {
        for (name, why) in self.engine.take_image_rejections() {
            self.image_rejections.insert(name, why.to_string());
        }
    }

    /// Forgets the images offered at open: once the state moves past their revision, no
    /// declaration could use them.
    fn drop_offered_images(&mut self) {
        if self.offered_images {
            self.offered_images = false;
            self.engine.clear_offered_images();
        }
    }

    /// Applies `op` to the engine and queues what it produced.
    pub(crate) fn apply<R>(
        &mut self,
        op: impl FnOnce(&mut Engine, Timestamp) -> Result<R, EngineError>,
    ) -> Result<(R, Option<u64>)> {
        self.check()?;
        self.drop_offered_images();
        let result = op(&mut self.engine, now());
        let queued = self.after_write()?;
        Ok((result?, queued))
    }

    /// Points the timer at the engine's next deadline (expiry or transaction timeout).
    fn reschedule(&mut self) {
        let next = if self.closed {
            None
        } else {
            self.engine.poll_timeout()
        };
        if self.timer.as_ref().map(|t| t.at) == next {
            self.keep_alive();
            return;
        }
        if let Some(old) = self.timer.take() {
            clear_timeout(&old.handle);
        }
        let Some(at) = next else { return };
        let this = self.this.clone();
        let closure = Closure::<dyn FnMut()>::new(move || {
            if let Some(shared) = this.upgrade() {
                on_timer(&shared);
            }
        });
        let delay = now().millis_until(at) as f64;
        let handle = set_timeout(closure.as_ref().unchecked_ref(), delay);
        self.timer = Some(Timer {
            handle,
            at,
            _closure: closure,
        });
        self.keep_alive();
    }

    /// In Node a pending timer keeps the process alive. The expiry timer should only while
    /// someone listens for the events it produces; otherwise an idle store would hold a script
    /// open until its last TTL ran out.
    pub(crate) fn keep_alive(&self) {
        if let Some(t) = &self.timer {
            let method = if self.feed.has_subscribers() {
                "ref"
            } else {
                "unref"
            };
            if let Ok(f) = js_sys::Reflect::get(&t.handle, &JsValue::from_str(method))
                && let Some(f) = f.dyn_ref::<js_sys::Function>()
            {
                let _ = f.call0(&t.handle);
            }
        }
    }

    pub(crate) fn close(&mut self) {
        self.closed = true;
        if let Some(t) = self.timer.take() {
            clear_timeout(&t.handle);
        }
        if let Some(p) = self.persist.as_mut() {
            // Events of writes that never became durable are not delivered.
            p.held.clear();
            for (_, w) in p.waiters.drain(..) {
                let _ = w.send(());
            }
        }
        self.feed.close();
    }
}

fn on_timer(shared: &Shared) {
    let queued = {
        let mut state = shared.borrow_mut();
        state.timer = None;
        if state.check().is_err() {
            return;
        }
        state.drop_offered_images();
        state.engine.handle_timeout(now());
        // Nobody waits for expiry records; a failure to encode them poisons nothing here and
        // surfaces on the next write.
        state.after_write().ok().flatten()
    };
    if queued.is_some() {
        let shared = shared.clone();
        wasm_bindgen_futures::spawn_local(async move {
            // A failure poisons the store; the next call reports it.
            let _ = flush(&shared).await;
        });
    }
}

/// Waits until `revision` is durable, flushing the queue if nobody else is.
pub(crate) async fn wait_durable(shared: &Shared, revision: u64) -> Result<()> {
    loop {
        let waiter = {
            let mut state = shared.borrow_mut();
            state.check()?;
            let Some(p) = state.persist.as_mut() else {
                return Ok(());
            };
            if p.durable >= revision {
                return Ok(());
            }
            if p.storage.is_some() {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                p.waiters.push((revision, tx));
                Some(rx)
            }
        };
        match waiter {
            // A flush is running: it takes our records too, or the one after it will.
            Some(rx) => {
                let _ = rx.await;
            }
            None => flush(shared).await?,
        }
    }
}

/// Hands everything queued to storage, round after round, until the queue is empty. Records
/// queued while a round is in flight go in the next round (group commit).
pub(crate) async fn flush(shared: &Shared) -> Result<()> {
    loop {
        let (mut storage, batch) = {
            let mut state = shared.borrow_mut();
            state.check()?;
            let Some(p) = state.persist.as_mut() else {
                return Ok(());
            };
            if p.queued.is_empty() {
                return Ok(());
            }
            let Some(storage) = p.storage.take() else {
                // Another flush is running and will take the queue.
                return Ok(());
            };
            (storage, std::mem::take(&mut p.queued))
        };
        let result = storage.append(&batch).await;
        let mut state = shared.borrow_mut();
        let state = &mut *state;
        let Some(p) = state.persist.as_mut() else {
            return Ok(());
        };
        p.storage = Some(storage);
        match result {
            Ok(()) => {
                let last = batch.last().map_or(p.durable, |r| r.revision);
                p.durable = p.durable.max(last);
                while p.held.front().is_some_and(|e| e.revision <= last) {
                    if let Some(event) = p.held.pop_front() {
                        state.feed.publish(&event);
                    }
                }
                let durable = p.durable;
                for (_, w) in p.waiters.extract_if(.., |(r, _)| *r <= durable) {
                    let _ = w.send(());
                }
            }
            Err(e) => {
                p.poisoned = Some(e.clone());
                p.held.clear();
                for (_, w) in p.waiters.drain(..) {
                    let _ = w.send(());
                }
                return Err(HostError::Poisoned(e));
            }
        }
    }
}

/// After a write: in CP mode wait until it is durable; in AP mode flush in the background.
/// Then start a checkpoint when enough log has piled up.
pub(crate) async fn settle(shared: &Shared, queued: Option<u64>) -> Result<()> {
    let Some(revision) = queued else {
        return Ok(());
    };
    let (mode, due) = {
        let mut state = shared.borrow_mut();
        match state.persist.as_mut() {
            Some(p) => {
                let due = p.since_checkpoint >= p.checkpoint_every;
                if due {
                    // Counted from now, so the writes during this checkpoint start no other.
                    p.since_checkpoint = 0;
                }
                (p.mode, due)
            }
            None => return Ok(()),
        }
    };
    match mode {
        Durability::Cp => wait_durable(shared, revision).await?,
        Durability::Ap => {
            let shared = shared.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let _ = flush(&shared).await;
            });
        }
    }
    if due {
        match mode {
            Durability::Cp => checkpoint(shared).await?,
            Durability::Ap => {
                let shared = shared.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let _ = checkpoint(&shared).await;
                });
            }
        }
    }
    Ok(())
}

/// Writes a snapshot of the current state and lets storage drop the log it covers.
pub(crate) async fn checkpoint(shared: &Shared) -> Result<()> {
    loop {
        let revision = shared.borrow().engine.revision();
        wait_durable(shared, revision).await?;
        let taken = {
            let mut state = shared.borrow_mut();
            state.check()?;
            let revision = state.engine.revision();
            let snapshot = state.engine.snapshot()?;
            let wants_images = state
                .persist
                .as_ref()
                .and_then(|p| p.storage.as_ref())
                .is_some_and(|s| s.supports_index_images());
            // Taken with the snapshot, so they describe exactly the state it holds. A failure
            // only costs a rebuild at the next open.
            let images = if wants_images {
                state.engine.index_images().unwrap_or_else(|e| {
                    warn(&format!(
                        "statemesh: index images not taken at revision {revision}: {e}"
                    ));
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            let Some(p) = state.persist.as_mut() else {
                return Ok(());
            };
            if p.durable < revision {
                // A write slipped in after the wait: wait for it too.
                None
            } else {
                p.storage.take().map(|s| (s, revision, snapshot, images))
            }
        };
        let Some((mut storage, revision, snapshot, images)) = taken else {
            continue;
        };
        let result = storage.write_snapshot(revision, &snapshot).await;
        if result.is_ok() && !images.is_empty() {
            // Best effort, and never poisoning: the snapshot is durable; without its images the
            // next open rebuilds the indexes.
            if let Err(e) = storage.write_index_images(revision, &images).await {
                warn(&format!(
                    "statemesh: index images at revision {revision} not stored: {e}"
                ));
            }
        }
        give_back(shared, storage);
        return match result {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(p) = shared.borrow_mut().persist.as_mut() {
                    p.poisoned = Some(e.clone());
                }
                Err(HostError::Poisoned(e))
            }
        };
    }
}

/// Returns the storage after a checkpoint or sync had it out. Writers that queued records
/// meanwhile found it busy and wait for a flush: wake them to flush themselves, and flush the
/// records of AP writes, which nobody waits for.
fn give_back(shared: &Shared, storage: Box<dyn Storage>) {
    let pending = {
        let mut state = shared.borrow_mut();
        let Some(p) = state.persist.as_mut() else {
            return;
        };
        p.storage = Some(storage);
        for (_, w) in p.waiters.drain(..) {
            let _ = w.send(());
        }
        !p.queued.is_empty()
    };
    if pending {
        let shared = shared.clone();
        wasm_bindgen_futures::spawn_local(async move {
            // A failure poisons the store; the next call reports it.
            let _ = flush(&shared).await;
        });
    }
}

/// Makes every write so far durable (AP mode), then syncs storage.
pub(crate) async fn sync(shared: &Shared) -> Result<()> {
    let revision = shared.borrow().engine.revision();
    wait_durable(shared, revision).await?;
    loop {
        let taken = {
            let mut state = shared.borrow_mut();
            state.check()?;
            match state.persist.as_mut() {
                Some(p) => p.storage.take(),
                None => return Ok(()),
            }
        };
        let Some(mut storage) = taken else {
            // A flush is running; let it finish first.
            wait_durable(shared, revision).await?;
            continue;
        };
        let result = storage.sync().await;
        give_back(shared, storage);
        if let (Err(e), Some(p)) = (&result, shared.borrow_mut().persist.as_mut()) {
            p.poisoned = Some(e.clone());
        }
        return result.map_err(HostError::Poisoned);
    }
}

/// Waits (CP) until every write applied so far is durable, so a read never shows a write that a
/// crash could still take back.
pub(crate) async fn before_read(shared: &Shared) -> Result<()> {
    let pending = {
        let state = shared.borrow();
        state.check()?;
        match state.persist.as_ref() {
            Some(p) if p.mode == Durability::Cp && p.durable < state.engine.revision() => {
                Some(state.engine.revision())
            }
            _ => None,
        }
    };
    match pending {
        Some(revision) => wait_durable(shared, revision).await,
        None => Ok(()),
    }
}

/// Releases the storage after the last write is durable: its lock (a Node directory's, an
/// IndexedDB store's) goes with it.
pub(crate) async fn close(shared: &Shared) -> Result<()> {
    let flushed = if shared.borrow().check().is_ok() {
        sync(shared).await
    } else {
        Ok(())
    };
    let storage = {
        let mut state = shared.borrow_mut();
        state.close();
        state.persist.as_mut().and_then(|p| p.storage.take())
    };
    drop(storage);
    flushed
}
