//! Log records: what the host must make durable for every committed write.
//!
//! Encoded form: one format byte ([`LOG_FORMAT_V1`]) followed by the postcard encoding of a
//! [`LogRecord`]. Framing (lengths, checksums, segments) belongs to the storage adapter.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::engine::LoggedPatch;
use crate::entry::Entry;
use crate::error::FormatError;
use crate::log_encoding::{AppendTo, Head, push_record};
use crate::storage::LogBytes;
use crate::time::Timestamp;
use crate::txn::{PreparedTxn, TxnId};
use crate::value::StoredValue;

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
    /// As `Put`, for a single-key write that replaced an existing entry by the usual rule:
    /// replay takes `created_at`, `create_revision` and the user metadata from the key's entry
    /// before this op, the version from it plus one, `updated_at` and `mod_revision` from the
    /// record, and refuses the record unless `value` has `checksum`. A third to half of a
    /// small value's `Put` was those derivable fields. Logs written before this variant
    /// existed carry such writes as `Put`.
    Update {
        namespace: CompactString,
        path: CompactString,
        value: StoredValue,
        checksum: u64,
        expires_at: Option<Timestamp>,
    },
}

impl LogRecord {
    /// Appends the encoded record (format byte included) to `out`: postcard's bytes, written
    /// by the write path's own encoder (see `log_encoding`).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        push_record(out, LOG_FORMAT_V1, self.revision, self.at.0, &self.ops).map_err(|e| {
            FormatError::Decode {
                what: "log record",
                message: e.to_string(),
            }
        })
    }

    /// The encoded record as postcard's serializer writes it, the reference the write path's
    /// encoder is tested against.
    #[doc(hidden)]
    pub fn encode_with_postcard(&self) -> Result<Vec<u8>, FormatError> {
        let mut out = vec![LOG_FORMAT_V1];
        postcard::serialize_with_flavor(self, AppendTo(&mut out)).map_err(|e| {
            FormatError::Decode {
                what: "log record",
                message: e.to_string(),
            }
        })?;
        Ok(out)
    }

    /// The encoded record, format byte included.
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
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

/// Encoded log records back to back, each as [`LogRecord::encode`] writes it, with their
/// revisions: what the engine's write path produces ([`crate::Engine::take_log`]) and what a host
/// hands to storage. One buffer for many records, reused from batch to batch, so that logging a
/// write allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedLog {
    bytes: Vec<u8>,
    /// Each record's revision and the offset in `bytes` where it ends.
    ends: Vec<(u64, usize)>,
}

impl EncodedLog {
    /// An empty log.
    pub fn new() -> EncodedLog {
        EncodedLog::default()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when it holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Encoded bytes held, all records together.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes the buffers hold room for, so a host that keeps logs for reuse can bound them.
    pub fn capacity_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * std::mem::size_of::<(u64, usize)>()
    }

    /// Every record's bytes, back to back in order (see [`EncodedLog::ends`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Each record's revision and the offset in [`EncodedLog::as_bytes`] where it ends (where
    /// the next begins; the first begins at 0), so a writer can hand all records on at once.
    pub fn ends(&self) -> &[(u64, usize)] {
        &self.ends
    }

    /// The revision of the last record.
    pub fn last_revision(&self) -> Option<u64> {
        self.ends.last().map(|(revision, _)| *revision)
    }

    /// The records in order: each one's revision and encoded bytes.
    pub fn records(&self) -> impl ExactSizeIterator<Item = (u64, &[u8])> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(revision, end)| {
            let bytes = self.bytes.get(start..end).unwrap_or_default();
            start = end;
            (revision, bytes)
        })
    }

    /// The records copied out, one buffer each, as [`crate::Storage::append`] takes them.
    pub fn to_log_bytes(&self) -> impl ExactSizeIterator<Item = LogBytes> + '_ {
        self.records().map(|(revision, bytes)| LogBytes {
            revision,
            bytes: bytes.to_vec(),
        })
    }

    /// Record `index`: its revision and encoded bytes.
    pub fn get(&self, index: usize) -> Option<(u64, &[u8])> {
        let &(revision, end) = self.ends.get(index)?;
        let start = match index.checked_sub(1) {
            Some(prev) => self.ends.get(prev).map_or(0, |(_, e)| *e),
            None => 0,
        };
        Some((revision, self.bytes.get(start..end)?))
    }

    /// Appends `other`'s committed records after this log's.
    pub fn extend_from(&mut self, other: &EncodedLog) {
        let base = self.committed_len();
        self.bytes.truncate(base);
        self.bytes
            .extend_from_slice(other.bytes.get(..other.committed_len()).unwrap_or_default());
        self.ends.extend(
            other
                .ends
                .iter()
                .map(|&(revision, end)| (revision, base + end)),
        );
    }

    /// Empties it, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Where the committed records end: bytes past it belong to the record being written.
    #[inline]
    fn committed_len(&self) -> usize {
        self.ends.last().map_or(0, |&(_, end)| end)
    }

    /// The bytes a write appends its record to, after dropping what an unfinished record left
    /// (a write that logged ops and then failed). Returns the buffer and where the new record
    /// starts.
    #[inline]
    pub(crate) fn open_record(&mut self) -> (&mut Vec<u8>, usize) {
        self.discard_open();
        let start = self.bytes.len();
        (&mut self.bytes, start)
    }

    /// The bytes of the record being written, for changing its last op.
    pub(crate) fn open_bytes(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Drops the record being written, if any.
    #[inline]
    pub(crate) fn discard_open(&mut self) {
        let start = self.committed_len();
        self.bytes.truncate(start);
    }

    /// Commits the record written from `start` to the end of the buffer: `head` is what its
    /// head was written with, `count` its ops.
    #[inline]
    pub(crate) fn close_record(&mut self, start: usize, head: Head, count: usize) {
        debug_assert_eq!(start, self.committed_len(), "records interleaved");
        crate::log_encoding::close_head(&mut self.bytes, start, head, count);
        self.ends.push((head.revision, self.bytes.len()));
    }

    /// Drops the first `count` records.
    pub(crate) fn drop_front(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        if count >= self.ends.len() {
            self.clear();
            return;
        }
        let cut = self.ends.get(count - 1).map_or(0, |(_, e)| *e);
        self.bytes.drain(..cut);
        self.ends.drain(..count);
        for (_, end) in &mut self.ends {
            *end -= cut;
        }
    }
}
