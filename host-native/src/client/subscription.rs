//! Change-feed subscriptions over the network.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use serde_json::{Map, Value as Json};
use tokio::sync::mpsc;

use super::conn::{Connection, EventResult, SUBSCRIPTION_BUFFER, SubSink};
use super::{Client, args, decode};
use crate::error::{Error, Result};
use crate::{ChangeEvent, HandlerSubscription, Since, SubscriptionError};

/// Events pushed by the server for one subscription, as [`crate::Subscription`] /
/// [`crate::ChangeStream`]; also a `futures_core::Stream`. Dropping it unsubscribes.
///
/// If the application falls more than a few thousand events behind, the subscription is cut
/// off: `recv` returns the events already buffered, then `Lagged`. Resume with
/// [`Client::stream_changes`] from the last revision seen.
#[derive(Debug)]
pub struct RemoteSubscription {
    /// The connection the server keeps this subscription on: unsubscribing goes there, not
    /// to whatever connection the client has dialed since.
    conn: Arc<Connection>,
    sub: u64,
    rx: mpsc::Receiver<EventResult>,
    lagged: Arc<AtomicBool>,
    disconnected: Arc<AtomicBool>,
    ended: bool,
}

impl Client {
    /// Every change committed from now on (see [`crate::Store::subscribe`]).
    pub async fn subscribe(&self) -> Result<RemoteSubscription> {
        self.open_subscription(Map::new()).await
    }

    /// Changes to keys matching `pattern` from now on (see [`crate::Store::subscribe_pattern`]).
    pub async fn subscribe_pattern(&self, pattern: &str) -> Result<RemoteSubscription> {
        self.open_subscription(args([("pattern", pattern.into())]))
            .await
    }

    /// Calls `handler` with every change to keys matching `pattern` (every change when `None`)
    /// from now on, on a tokio task, until the returned handle is dropped or unsubscribed, as
    /// [`crate::Store::subscribe_with`].
    ///
    /// Differences forced by the network: it is `async` (the subscription is in place on the
    /// server when it returns, so no later write is missed), and the first error the handler
    /// gets is also its last: `Lagged` (the server or this client cut off a handler slower
    /// than the writes), `Disconnected` (the connection broke) or `Closed`. The store's handler
    /// goes on after `Lagged`; here, subscribe again with [`Client::stream_changes`] from the
    /// last revision seen.
    pub async fn subscribe_with(
        &self,
        pattern: Option<&str>,
        mut handler: impl FnMut(std::result::Result<ChangeEvent, SubscriptionError>) + Send + 'static,
    ) -> Result<HandlerSubscription> {
        let mut subscription = match pattern {
            Some(p) => self.subscribe_pattern(p).await?,
            None => self.subscribe().await?,
        };
        let task = tokio::spawn(async move {
            loop {
                let next = subscription.recv().await;
                let ended = next.is_err();
                handler(next);
                if ended {
                    return;
                }
            }
        });
        Ok(HandlerSubscription::from_task(task.abort_handle()))
    }

    /// Changes after `since` (history first, then live), as [`crate::Store::stream_changes`].
    /// `Since::Time` is not offered over the network.
    pub async fn stream_changes(
        &self,
        since: Since,
        pattern: Option<&str>,
    ) -> Result<RemoteSubscription> {
        let mut a = Map::new();
        match since {
            Since::Revision(r) => {
                a.insert("since".into(), Json::from(r));
            }
            Since::Now => {}
            Since::Time(_) => {
                return Err(Error::Remote {
                    code: "BAD_ARGUMENT".into(),
                    message: "Since::Time is not offered by the client; pass a revision".into(),
                });
            }
        }
        if let Some(p) = pattern {
            a.insert("pattern".into(), p.into());
        }
        self.open_subscription(a).await
    }

    /// Up to `limit` kept changes after `revision` (see [`crate::Store::changes_since`]).
    pub async fn changes_since(&self, revision: u64, limit: usize) -> Result<Vec<ChangeEvent>> {
        let r = self
            .call(
                "changes",
                args([("since", revision.into()), ("limit", limit.into())]),
            )
            .await?;
        decode::events(r)
    }

    async fn open_subscription(&self, a: Map<String, Json>) -> Result<RemoteSubscription> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let lagged = Arc::new(AtomicBool::new(false));
        let disconnected = Arc::new(AtomicBool::new(false));
        let sink = SubSink {
            tx,
            lagged: lagged.clone(),
            disconnected: disconnected.clone(),
        };
        let conn = self.link.connection().await?;
        let r = conn.subscribe(a.into(), sink).await?;
        Ok(RemoteSubscription {
            conn,
            sub: decode::u64_field(&r, "sub")?,
            rx,
            lagged,
            disconnected,
            ended: false,
        })
    }
}

impl RemoteSubscription {
    /// The next event.
    pub async fn recv(&mut self) -> std::result::Result<ChangeEvent, SubscriptionError> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<ChangeEvent, SubscriptionError>> {
        if self.ended {
            return Poll::Ready(Err(SubscriptionError::Closed));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                if event.is_err() {
                    self.ended = true;
                }
                Poll::Ready(event)
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Err(if self.lagged.load(Ordering::Acquire) {
                    SubscriptionError::Lagged { missed: 0 }
                } else if self.disconnected.load(Ordering::Acquire) {
                    SubscriptionError::Disconnected
                } else {
                    SubscriptionError::Closed
                }))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Events received and waiting for [`RemoteSubscription::recv`]. Past 4096 the
    /// subscription is cut off with `Lagged`: this says how close an application is to that.
    pub fn buffered(&self) -> usize {
        self.rx.len()
    }

    /// Ends the subscription (the same as dropping it).
    pub fn unsubscribe(self) {}
}

impl futures_core::Stream for RemoteSubscription {
    type Item = std::result::Result<ChangeEvent, SubscriptionError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        this.poll_event(cx).map(Some)
    }
}

impl Drop for RemoteSubscription {
    fn drop(&mut self) {
        self.conn.forget_subscription(self.sub);
        self.conn
            .send_and_forget("unsubscribe", args([("sub", self.sub.into())]).into());
    }
}
