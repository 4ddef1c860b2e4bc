//! The change feed: subscribers with bounded queues, and the `Subscription` async iterator.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use statemesh_core::{ChangeEvent, KeyPattern};
use wasm_bindgen::prelude::*;

use crate::error::HostError;
use crate::types;

/// Every live subscriber of one store.
pub(crate) struct Feed {
    subscribers: Vec<Weak<RefCell<Queue>>>,
    capacity: usize,
}

/// One subscriber's side: what it has not read yet.
pub(crate) struct Queue {
    pattern: Option<KeyPattern>,
    events: VecDeque<ChangeEvent>,
    capacity: usize,
    /// Events dropped since the subscriber last read, because its queue was full.
    missed: u64,
    /// Events up to this revision were committed before the subscription began.
    cut: u64,
    closed: bool,
    waker: Option<oneshot::Sender<()>>,
}

impl Feed {
    pub(crate) fn new(capacity: usize) -> Feed {
        Feed {
            subscribers: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    /// Whether anyone still listens (a closed or collected subscription does not).
    pub(crate) fn has_subscribers(&self) -> bool {
        self.subscribers
            .iter()
            .any(|w| w.upgrade().is_some_and(|q| !q.borrow().closed))
    }

    /// A new subscriber, starting with `backlog` (history already read for it).
    pub(crate) fn subscribe(
        &mut self,
        pattern: Option<KeyPattern>,
        backlog: Vec<ChangeEvent>,
        cut: u64,
    ) -> Rc<RefCell<Queue>> {
        let queue = Rc::new(RefCell::new(Queue {
            pattern,
            // The backlog is delivered whole: it was asked for explicitly.
            capacity: self.capacity.max(backlog.len()),
            events: backlog.into(),
            missed: 0,
            cut,
            closed: false,
            waker: None,
        }));
        self.subscribers.push(Rc::downgrade(&queue));
        queue
    }

    pub(crate) fn publish(&mut self, event: &ChangeEvent) {
        self.subscribers.retain(|w| w.strong_count() > 0);
        for sub in &self.subscribers {
            if let Some(sub) = sub.upgrade() {
                sub.borrow_mut().push(event);
            }
        }
    }

    pub(crate) fn close(&mut self) {
        for sub in self.subscribers.drain(..) {
            if let Some(sub) = sub.upgrade() {
                let mut q = sub.borrow_mut();
                q.closed = true;
                q.wake();
            }
        }
    }
}

impl Queue {
    fn push(&mut self, event: &ChangeEvent) {
        if self.closed
            || event.revision <= self.cut
            || !self.pattern.as_ref().is_none_or(|p| p.matches(&event.key))
        {
            return;
        }
        if self.events.len() >= self.capacity {
            self.missed += 1;
        } else {
            self.events.push_back(event.clone());
        }
        self.wake();
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            let _ = w.send(());
        }
    }
}

/// Live change events, as an async iterator: `for await (const event of store.subscribe(p))`.
/// A subscriber that falls more than its buffer behind gets one `LAGGED` error (with `missed`)
/// and can go on reading. `close()` (or leaving the loop) ends it.
#[wasm_bindgen]
pub struct Subscription {
    queue: Rc<RefCell<Queue>>,
}

impl Subscription {
    pub(crate) fn new(queue: Rc<RefCell<Queue>>) -> Subscription {
        Subscription { queue }
    }
}

fn done(value: JsValue, finished: bool) -> JsValue {
    let obj = js_sys::Object::new();
    crate::convert::set(&obj, "value", &value);
    crate::convert::set(&obj, "done", &JsValue::from_bool(finished));
    obj.into()
}

#[wasm_bindgen]
impl Subscription {
    /// The next event (the async-iterator protocol).
    #[wasm_bindgen(unchecked_return_type = "Promise<IteratorResult<ChangeEvent, undefined>>")]
    pub fn next(&self) -> js_sys::Promise {
        let queue = self.queue.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            loop {
                let wait = {
                    let mut q = queue.borrow_mut();
                    if q.missed > 0 {
                        let missed = std::mem::take(&mut q.missed);
                        return Err(HostError::Lagged { missed }.into());
                    }
                    if let Some(event) = q.events.pop_front() {
                        return Ok(done(types::ChangeEvent::js(&event)?, false));
                    }
                    if q.closed {
                        return Ok(done(JsValue::UNDEFINED, true));
                    }
                    let (tx, rx) = oneshot::channel();
                    q.waker = Some(tx);
                    rx
                };
                let _ = wait.await;
            }
        })
    }

    /// Ends the subscription (called by `for await` when the loop exits early).
    #[wasm_bindgen(
        js_name = "return",
        unchecked_return_type = "Promise<IteratorResult<ChangeEvent, undefined>>"
    )]
    pub fn return_(&self) -> js_sys::Promise {
        self.close();
        js_sys::Promise::resolve(&done(JsValue::UNDEFINED, true))
    }

    /// Stops delivery; a pending `next()` resolves as done.
    pub fn close(&self) {
        let mut q = self.queue.borrow_mut();
        q.closed = true;
        q.events.clear();
        q.wake();
    }

    /// Events waiting to be read.
    #[wasm_bindgen(getter)]
    pub fn pending(&self) -> usize {
        self.queue.borrow().events.len()
    }
}

#[wasm_bindgen(typescript_custom_section)]
const SUBSCRIPTION_TS: &'static str = r#"
export interface Subscription {
  [Symbol.asyncIterator](): AsyncIterator<ChangeEvent, undefined>;
}
"#;
