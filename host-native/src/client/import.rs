//! [`Client::import`]: a bulk load sent as a sequence of `multi_put` requests.

use statemesh_core::Value;

use super::conn::Args;
use super::{Client, decode};
use crate::error::{Error, Result};
use crate::server::jsonl::wire::WireValue;

/// Bytes of a `multi_put` request line besides its items: `{"id":N,"op":"multi_put","items":`
/// and `}\n`, with room to spare.
const ENVELOPE_BYTES: usize = 128;

impl Client {
    /// Loads many keys as [`crate::Store::import`] does: `multi_put`s of `batch` items each
    /// (one revision per batch; `batch` is clamped to 1 ..= the server's `max_batch`), with the
    /// number of keys written. Not atomic as a whole: each batch is all or nothing, and an
    /// invalid item stops the import with its error while the batches before it stay.
    ///
    /// Differences forced by the network:
    /// - Batches go one at a time, each waiting for its answer: a batch sent before the one
    ///   ahead of it was answered would be applied even if that one failed. So an import costs
    ///   a round trip per batch (in CP mode, a durable write per batch).
    /// - A batch is also cut where its request would outgrow the server's
    ///   `--max-request-bytes` (a longer line closes the connection); the rest goes in the next
    ///   one. Large values can therefore take more revisions than on the store.
    /// - One item too large for a request on its own fails with code `TOO_LARGE` before it is
    ///   sent; the batches before it stay.
    /// - If the connection breaks, the batch in flight may or may not have been applied
    ///   ([`Error::Connection`]), and the import stops there: it is never resent. Find where
    ///   to resume by reading the keys back.
    pub async fn import<K: AsRef<str>>(
        &self,
        items: impl IntoIterator<Item = (K, Value)>,
        batch: usize,
    ) -> Result<u64> {
        let stats = self.stats().await?;
        let max_batch = usize::try_from(stats.max_batch).unwrap_or(usize::MAX);
        let batch = batch.clamp(1, max_batch.max(1));
        let room = usize::try_from(stats.max_request_bytes)
            .unwrap_or(usize::MAX)
            .saturating_sub(ENVELOPE_BYTES);
        let mut items = items.into_iter();
        // An item that did not fit in the previous request: it opens the next.
        let mut carried: Option<Vec<u8>> = None;
        let mut written = 0u64;
        loop {
            let mut body = vec![b'['];
            let mut count = 0;
            while count < batch {
                let item = match carried.take() {
                    Some(item) => item,
                    None => match items.next() {
                        Some((key, value)) => encode_item(key.as_ref(), &value)?,
                        None => break,
                    },
                };
                // A comma before it and the closing bracket after it.
                if body.len() + item.len() + 2 > room {
                    if count == 0 {
                        return Err(too_large(item.len(), room));
                    }
                    carried = Some(item);
                    break;
                }
                if count > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&item);
                count += 1;
            }
            if count == 0 {
                return Ok(written);
            }
            body.push(b']');
            let reply = self
                .call("multi_put", Args::new().with_raw("items", &body))
                .await?;
            written += decode::write_result(&reply)?.affected;
        }
    }
}

/// One `[key, value]` pair in its wire form.
fn encode_item(key: &str, value: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(&(key, WireValue(value)))
        .map_err(|e| Error::Protocol(format!("cannot send {key}: {e}")))
}

fn too_large(item: usize, room: usize) -> Error {
    Error::Remote {
        code: "TOO_LARGE".into(),
        message: format!(
            "an import item of {item} bytes does not fit in a request the server reads \
             ({room} bytes for items)"
        ),
    }
}
