//! Where change events leave the store. An in-memory or AP store delivers each event as its
//! write commits; a CP store holds events back until their revision is durable, so no
//! subscriber ever acts on a change that a crash could still take back.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use statemesh_core::ChangeEvent;
use tokio::sync::broadcast;

#[derive(Debug)]
pub(crate) struct Feed {
    state: Mutex<FeedState>,
    /// Hold events until durable (CP stores on storage).
    hold: bool,
}

#[derive(Debug)]
struct FeedState {
    /// Dropped by `close`, which ends every subscription once it is drained.
    /// Events are shared: a receiver clones an `Arc`, and copies only the events it keeps.
    sender: Option<broadcast::Sender<Arc<ChangeEvent>>>,
    /// Events of revisions not yet durable, in revision order (CP only).
    pending: VecDeque<ChangeEvent>,
    durable: u64,
}

impl Feed {
    pub(crate) fn new(capacity: usize, hold: bool, durable: u64) -> Feed {
        let (sender, _) = broadcast::channel(capacity);
        Feed {
            state: Mutex::new(FeedState {
                sender: Some(sender),
                pending: VecDeque::new(),
                durable,
            }),
            hold,
        }
    }

    /// A receiver of every event published from now on, and the cut: the last revision whose
    /// events it will not receive. `engine_revision` is the engine's revision, read under the
    /// store's write lock (so no write publishes meanwhile). A CP feed has not delivered events
    /// past its durable revision yet, so the receiver still gets those: the cut is `durable`.
    pub(crate) fn subscribe(
        &self,
        engine_revision: u64,
    ) -> Option<(broadcast::Receiver<Arc<ChangeEvent>>, u64)> {
        let state = self.state.lock();
        let rx = state.sender.as_ref().map(broadcast::Sender::subscribe)?;
        let cut = if self.hold {
            state.durable.min(engine_revision)
        } else {
            engine_revision
        };
        Some((rx, cut))
    }

    /// Events of a write that just committed, in order. Call before its records go to storage,
    /// so that `durable` for their revision always finds them queued.
    pub(crate) fn publish(&self, events: impl Iterator<Item = ChangeEvent>) {
        let mut state = self.state.lock();
        if self.hold {
            state.pending.extend(events);
            state.deliver();
        } else if let Some(sender) = &state.sender {
            for event in events {
                // An error only means every subscriber has gone; the event reaches no one.
                let _ = sender.send(Arc::new(event));
            }
        }
    }

    /// Revisions up to `revision` are durable: deliver their events.
    pub(crate) fn durable(&self, revision: u64) {
        let mut state = self.state.lock();
        state.durable = state.durable.max(revision);
        state.deliver();
    }

    /// Ends the feed: subscribers see it close after the events already delivered.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.sender = None;
        state.pending.clear();
    }
}

impl FeedState {
    fn deliver(&mut self) {
        while self
            .pending
            .front()
            .is_some_and(|e| e.revision <= self.durable)
        {
            if let (Some(event), Some(sender)) = (self.pending.pop_front(), &self.sender) {
                let _ = sender.send(Arc::new(event));
            }
        }
    }
}
