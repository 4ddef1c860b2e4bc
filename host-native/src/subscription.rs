//! Change-event subscriptions on the native store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use statemesh_core::{ChangeEvent, KeyPattern};
use tokio::sync::broadcast;

use crate::error::SubscriptionError;

/// A live feed of every change committed after it was created (or of the changes to keys that
/// match its pattern): puts, patches, deletes, metadata changes, expiries and evictions, in
/// revision order; one write's changes (a transaction's too) share a revision and arrive
/// together. In a CP store an event arrives only once its revision is durable.
///
/// Each subscriber has a bounded buffer ([`crate::StoreBuilder::event_capacity`] events of
/// the whole feed, before pattern filtering); one that falls behind gets
/// [`SubscriptionError::Lagged`] and then continues with the oldest event still buffered. To
/// fill the gap, resume with [`crate::Store::stream_changes`] from the last revision seen.
/// Dropping the subscription (or [`Subscription::unsubscribe`]) ends it.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<ChangeEvent>>,
    subscribers: Arc<AtomicUsize>,
    pattern: Option<KeyPattern>,
    /// Events of revisions up to here were already delivered another way (history replay).
    cut: u64,
}

impl Subscription {
    pub(crate) fn new(
        rx: broadcast::Receiver<Arc<ChangeEvent>>,
        subscribers: Arc<AtomicUsize>,
        pattern: Option<KeyPattern>,
        cut: u64,
    ) -> Self {
        subscribers.fetch_add(1, Ordering::SeqCst);
        Subscription {
            rx,
            subscribers,
            pattern,
            cut,
        }
    }

    fn wanted(&self, event: &ChangeEvent) -> bool {
        event.revision > self.cut && self.pattern.as_ref().is_none_or(|p| p.matches(&event.key))
    }

    /// The next event.
    pub async fn recv(&mut self) -> Result<ChangeEvent, SubscriptionError> {
        loop {
            let event = self.rx.recv().await.map_err(|e| match e {
                broadcast::error::RecvError::Lagged(missed) => SubscriptionError::Lagged { missed },
                broadcast::error::RecvError::Closed => SubscriptionError::Closed,
            })?;
            if self.wanted(&event) {
                return Ok(Arc::unwrap_or_clone(event));
            }
        }
    }

    /// The next event if one is already buffered.
    pub fn try_recv(&mut self) -> Option<Result<ChangeEvent, SubscriptionError>> {
        loop {
            match self.rx.try_recv() {
                Ok(event) if self.wanted(&event) => return Some(Ok(Arc::unwrap_or_clone(event))),
                Ok(_) => continue,
                Err(broadcast::error::TryRecvError::Empty) => return None,
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    return Some(Err(SubscriptionError::Lagged { missed }));
                }
                Err(broadcast::error::TryRecvError::Closed) => {
                    return Some(Err(SubscriptionError::Closed));
                }
            }
        }
    }

    /// Skips events up to `revision` too (a stream resuming after it has seen them).
    pub(crate) fn raise_cut(&mut self, revision: u64) {
        self.cut = self.cut.max(revision);
    }

    /// Ends the subscription (the same as dropping it).
    pub fn unsubscribe(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A handler subscription from [`crate::Store::subscribe_with`] (or
/// [`crate::Client::subscribe_with`]): the handler runs on a tokio task until
/// [`HandlerSubscription::unsubscribe`] (or drop), or until the store (the client's
/// connection) closes.
#[derive(Debug)]
pub struct HandlerSubscription {
    task: tokio::task::AbortHandle,
}

impl HandlerSubscription {
    pub(crate) fn spawn(
        mut subscription: Subscription,
        mut handler: impl FnMut(Result<ChangeEvent, SubscriptionError>) + Send + 'static,
    ) -> HandlerSubscription {
        let task = tokio::spawn(async move {
            loop {
                let next = subscription.recv().await;
                let closed = matches!(next, Err(SubscriptionError::Closed));
                handler(next);
                if closed {
                    return;
                }
            }
        });
        HandlerSubscription {
            task: task.abort_handle(),
        }
    }

    /// A handler already running on `task` ([`crate::Client::subscribe_with`]'s).
    pub(crate) fn from_task(task: tokio::task::AbortHandle) -> HandlerSubscription {
        HandlerSubscription { task }
    }

    /// Stops calling the handler.
    pub fn unsubscribe(self) {}
}

impl Drop for HandlerSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}
