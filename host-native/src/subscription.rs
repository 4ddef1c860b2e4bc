//! Change-event subscriptions on the native store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use statemesh_core::ChangeEvent;
use tokio::sync::broadcast;

use crate::error::SubscriptionError;

/// A live feed of every change committed after it was created: puts, deletes, metadata changes,
/// expiries and evictions, in revision order. In a CP store an event arrives only once its
/// revision is durable. Each subscriber has a bounded buffer
/// ([`crate::StoreBuilder::event_capacity`]); one that falls behind gets
/// [`SubscriptionError::Lagged`] and then continues with the oldest event still buffered.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<ChangeEvent>,
    subscribers: Arc<AtomicUsize>,
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<ChangeEvent>, subscribers: Arc<AtomicUsize>) -> Self {
        subscribers.fetch_add(1, Ordering::SeqCst);
        Subscription { rx, subscribers }
    }

    /// The next event.
    pub async fn recv(&mut self) -> Result<ChangeEvent, SubscriptionError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(missed) => SubscriptionError::Lagged { missed },
            broadcast::error::RecvError::Closed => SubscriptionError::Closed,
        })
    }

    /// The next event if one is already buffered.
    pub fn try_recv(&mut self) -> Option<Result<ChangeEvent, SubscriptionError>> {
        match self.rx.try_recv() {
            Ok(ev) => Some(Ok(ev)),
            Err(broadcast::error::TryRecvError::Empty) => None,
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                Some(Err(SubscriptionError::Lagged { missed }))
            }
            Err(broadcast::error::TryRecvError::Closed) => Some(Err(SubscriptionError::Closed)),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}
