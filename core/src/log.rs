//! Log records: what the host must make durable for every committed write.
//!
//! Encoded form: one format byte ([`LOG_FORMAT_V1`]) followed by the postcard encoding of a
//! [`LogRecord`]. Framing (lengths, checksums, segments) belongs to the storage adapter.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::engine::LoggedPatch;
use crate::entry::Entry;
use crate::error::FormatError;
use crate::time::Timestamp;
use crate::txn::{PreparedTxn, TxnId};

/// Format byte of the current log record encoding.
pub const LOG_FORMAT_V1: u8 = 1;

/// One committed write: every key it changed, all at one store revision. Revisions of
/// consecutive records increase by exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub revision: u64,
    /// The engine's `now` when the write was committed.
    pub at: Timestamp,
    pub ops: Vec<LogOp>,
}

/// One key's change inside a [`LogRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogOp {
    /// The key now holds exactly this entry.
    Put {
        namespace: CompactString,
        path: CompactString,
        entry: Entry,
    },
    /// The key was deleted by a caller.
    Delete {
        namespace: CompactString,
        path: CompactString,
    },
    /// The key was evicted by the memory limits.
    Evict {
        namespace: CompactString,
        path: CompactString,
    },
    /// The key's TTL ran out.
    Expire {
        namespace: CompactString,
        path: CompactString,
    },
    /// The key's JSON value was patched: replay applies `patch` to the value the key holds and
    /// checks the result against `checksum`. Written instead of `Put` when the patch is the
    /// smaller of the two; the entry's other fields follow as for any update that keeps the TTL.
    Patch {
        namespace: CompactString,
        path: CompactString,
        patch: LoggedPatch,
        checksum: u64,
    },
    // New variants go at the end: postcard encodes the variant index, so records written before
    // a variant existed still decode.
    /// An interactive transaction was prepared (two-phase commit): it is pending, holding these
    /// writes and locking their keys until a record resolves it. The only op of its record.
    Prepare { txn: TxnId, prepared: PreparedTxn },
    /// The pending transaction committed: the record's other ops are its writes.
    CommitPrepared { txn: TxnId },
    /// The pending transaction was cancelled: its writes are dropped. The only op of its record.
    CancelPrepared { txn: TxnId },
    /// As `Put`, for a change of the key's TTL or user metadata only, so that replay can rebuild
    /// the change history with the right kind (`ChangeKind::Metadata`). Logs written before this
    /// variant existed carry such changes as `Put`, replayed as updates.
    Metadata {
        namespace: CompactString,
        path: CompactString,
        entry: Entry,
    },
}

/// A postcard flavor that appends to a `Vec` a slice at a time (postcard's `ExtendFlavor`
/// extends byte by byte, which was a tenth of the committer's time).
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl LogRecord {
    /// Appends the encoded record (format byte included) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        out.push(LOG_FORMAT_V1);
        postcard::serialize_with_flavor(self, AppendTo(out)).map_err(|e| FormatError::Decode {
            what: "log record",
            message: e.to_string(),
        })
    }

    /// The encoded record, format byte included.
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// About the encoded size, so the buffer is allocated once: the keys and values plus a
    /// generous allowance for the numbers around them.
    fn size_hint(&self) -> usize {
        let ops: usize = self
            .ops
            .iter()
            .map(|op| match op {
                LogOp::Put {
                    namespace,
                    path,
                    entry,
                }
                | LogOp::Metadata {
                    namespace,
                    path,
                    entry,
                } => {
                    namespace.len()
                        + path.len()
                        + entry.value.len()
                        + entry.user_meta.as_ref().map_or(0, |m| m.len())
                        + 64
                }
                LogOp::Delete { namespace, path }
                | LogOp::Evict { namespace, path }
                | LogOp::Expire { namespace, path } => namespace.len() + path.len() + 4,
                _ => 64,
            })
            .sum();
        ops + 24
    }

    /// How many ops an encoded record holds, read from its head without decoding the rest, so
    /// a host can size the keyspace before it replays a log. `None` when the head is not a
    /// record's.
    pub fn peek_op_count(bytes: &[u8]) -> Option<usize> {
        let (&version, body) = bytes.split_first()?;
        if version != LOG_FORMAT_V1 {
            return None;
        }
        // The head as postcard writes it: revision, at, then the ops' length prefix.
        let ((_revision, _at, count), _) =
            postcard::take_from_bytes::<(u64, Timestamp, usize)>(body).ok()?;
        Some(count)
    }

    /// Decodes one record; the input must hold exactly one.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let (&version, body) = bytes.split_first().ok_or(FormatError::Empty)?;
        if version != LOG_FORMAT_V1 {
            return Err(FormatError::UnknownVersion {
                what: "log record",
                version,
            });
        }
        let (record, rest) =
            postcard::take_from_bytes::<LogRecord>(body).map_err(|e| FormatError::Decode {
                what: "log record",
                message: e.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(FormatError::TrailingBytes {
                what: "log record",
                count: rest.len(),
            });
        }
        Ok(record)
    }
}
