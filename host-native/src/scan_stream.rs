//! A scan that yields pages as a stream, taking the store's lock once per page (or sending one
//! `scan` request per page, for a [`crate::Client`]), never holding the whole result in memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use statemesh_core::{Cursor, ScanPage, Value};

use crate::client::Client;
use crate::error::Result;
use crate::store::Store;

type PageFuture = Pin<Box<dyn Future<Output = Result<ScanPage>> + Send>>;
/// One page of `(key, value)` pairs.
type Page = Vec<(String, Value)>;
/// Fetches the page after a cursor: the stream is the same whether the pages come from an
/// embedded store or over the network.
type FetchPage = Arc<dyn Fn(Option<Cursor>) -> PageFuture + Send + Sync>;

/// Pages of `(key, value)` pairs under a prefix, in key order. Writes made while the stream is
/// consumed are seen when they land after the current position (the cursor is a key, not an
/// index), so no key that existed throughout is skipped or returned twice.
pub struct ScanStream {
    fetch: FetchPage,
    prefix: String,
    batch: usize,
    cursor: Option<Cursor>,
    done: bool,
    pending: Option<PageFuture>,
}

impl std::fmt::Debug for ScanStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanStream")
            .field("prefix", &self.prefix)
            .field("batch", &self.batch)
            .field("cursor", &self.cursor)
            .field("done", &self.done)
            .finish()
    }
}

impl ScanStream {
    pub(crate) fn new(store: Store, prefix: String, batch: usize) -> Self {
        let scanned = prefix.clone();
        let fetch: FetchPage = Arc::new(move |cursor: Option<Cursor>| {
            let (store, prefix) = (store.clone(), scanned.clone());
            Box::pin(async move { store.scan(&prefix, batch, cursor.as_ref()).await })
        });
        ScanStream::with_fetch(fetch, prefix, batch)
    }

    /// The same stream over a [`Client`]'s `scan` requests.
    pub(crate) fn remote(client: Client, prefix: String, batch: usize) -> Self {
        let scanned = prefix.clone();
        let fetch: FetchPage = Arc::new(move |cursor: Option<Cursor>| {
            let (client, prefix) = (client.clone(), scanned.clone());
            Box::pin(async move { client.scan(&prefix, batch, cursor.as_ref()).await })
        });
        ScanStream::with_fetch(fetch, prefix, batch)
    }

    fn with_fetch(fetch: FetchPage, prefix: String, batch: usize) -> Self {
        ScanStream {
            fetch,
            prefix,
            batch,
            cursor: None,
            done: false,
            pending: None,
        }
    }

    /// The next page, or `None` when the scan is complete.
    pub async fn next_batch(&mut self) -> Option<Result<Page>> {
        std::future::poll_fn(|cx| self.poll_page(cx)).await
    }

    fn poll_page(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Page>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let pending = self
            .pending
            .get_or_insert_with(|| (self.fetch)(self.cursor.clone()));
        let page = match pending.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(page) => page,
        };
        self.pending = None;
        Poll::Ready(match page {
            Ok(page) => {
                self.done = page.next.is_none();
                self.cursor = page.next;
                if page.items.is_empty() {
                    None
                } else {
                    Some(Ok(page.items))
                }
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        })
    }
}

impl futures_core::Stream for ScanStream {
    type Item = Result<Page>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_page(cx)
    }
}
