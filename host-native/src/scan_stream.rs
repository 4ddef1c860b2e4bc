//! A scan that yields pages as a stream, taking the store's lock once per page, never holding
//! the whole result in memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use statemesh_core::{Cursor, Value};

use crate::error::Result;
use crate::store::Store;

/// Pages of `(key, value)` pairs under a prefix, in key order. Writes made while the stream is
/// consumed are seen when they land after the current position (the cursor is a key, not an
/// index), so no key that existed throughout is skipped or returned twice.
#[derive(Debug)]
pub struct ScanStream {
    store: Store,
    prefix: String,
    batch: usize,
    cursor: Option<Cursor>,
    done: bool,
}

impl ScanStream {
    pub(crate) fn new(store: Store, prefix: String, batch: usize) -> Self {
        ScanStream {
            store,
            prefix,
            batch,
            cursor: None,
            done: false,
        }
    }

    /// The next page, or `None` when the scan is complete.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<(String, Value)>>> {
        self.fetch()
    }

    fn fetch(&mut self) -> Option<Result<Vec<(String, Value)>>> {
        if self.done {
            return None;
        }
        match self
            .store
            .scan_page(&self.prefix, self.batch, self.cursor.as_ref())
        {
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
        }
    }
}

impl futures_core::Stream for ScanStream {
    type Item = Result<Vec<(String, Value)>>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // A page is read from memory under a short lock: it never needs to wait.
        Poll::Ready(self.get_mut().fetch())
    }
}
