//! The log record encoder of the write path: the bytes postcard writes for a [`LogRecord`],
//! written field by field.
//!
//! postcard's serializer hands every varint to its output as a slice of a scratch buffer, a
//! `memcpy` call per field; a record of a small SET has about fifteen fields, and those calls
//! were most of the native committer's time. Here the common ops (every single-key write)
//! are written with plain pushes into a buffer reserved once. The rare ops (patches, two-phase
//! commit markers) go through postcard itself: postcard's encoding of a struct is the
//! concatenation of its fields' encodings, so an op serialized alone is byte for byte the op
//! inside its record.
//!
//! The layout this must match is postcard's, for the serde derives of [`LogRecord`],
//! [`LogOp`] and [`Entry`]: unsigned integers as LEB128 varints, an enum as its variant index
//! (varint) then its fields, `Option` as one byte 0 or 1 then the value, strings and byte
//! strings as a varint length then the bytes, a sequence as a varint length then the items.
//! A property test holds the two encoders to the same bytes for every op kind.

use compact_str::CompactString;

use crate::entry::Entry;
use crate::log::LogOp;

/// postcard's variant indexes of [`LogOp`], in declaration order.
const PUT: u32 = 0;
const DELETE: u32 = 1;
const EVICT: u32 = 2;
const EXPIRE: u32 = 3;
const METADATA: u32 = 8;

/// Most bytes a varint takes.
const VARINT_MAX: usize = 10;

/// Writes into a slice sized in advance: a push per byte into the `Vec` itself re-reads its
/// length and capacity at every byte (the compiler cannot keep them in registers across the
/// stores), which cost as much as the memcpy calls it replaced.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    #[inline]
    fn byte(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = byte;
        }
        self.pos += 1;
    }

    #[inline]
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.byte((value as u8) | 0x80);
            value >>= 7;
        }
        self.byte(value as u8);
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        let end = self.pos + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }

    fn entry(&mut self, entry: &Entry) {
        self.bytes(entry.value.as_bytes());
        self.varint(entry.checksum);
        self.varint(entry.created_at.0);
        self.varint(entry.updated_at.0);
        match entry.expires_at {
            Some(at) => {
                self.byte(1);
                self.varint(at.0);
            }
            None => self.byte(0),
        }
        self.varint(entry.version);
        self.varint(entry.create_revision);
        self.varint(entry.mod_revision);
        match &entry.user_meta {
            Some(meta) => {
                self.byte(1);
                self.bytes(meta.as_bytes());
            }
            None => self.byte(0),
        }
    }
}

/// Appends what `write` writes, given an upper bound of its size. The bound is computed from
/// the same fields; were it ever short, the writer's bounds checks would drop bytes, so the
/// final length is checked too.
#[inline]
fn append(out: &mut Vec<u8>, bound: usize, write: impl FnOnce(&mut Writer<'_>)) {
    let start = out.len();
    out.resize(start + bound, 0);
    let mut writer = Writer {
        buf: out.get_mut(start..).unwrap_or_default(),
        pos: 0,
    };
    write(&mut writer);
    let written = writer.pos;
    debug_assert!(written <= bound, "log op bound {bound} < {written}");
    out.truncate(start + written.min(bound));
}

/// Most bytes a record's head takes.
const HEAD_BOUND: usize = 3 * VARINT_MAX;

fn key_bound(namespace: &CompactString, path: &CompactString) -> usize {
    2 * VARINT_MAX + namespace.len() + path.len()
}

fn entry_bound(entry: &Entry) -> usize {
    // Value (length + bytes), six integers, two option tags, the metadata.
    VARINT_MAX
        + entry.value.as_bytes().len()
        + 7 * VARINT_MAX
        + 2
        + VARINT_MAX
        + entry.user_meta.as_ref().map_or(0, |m| m.len())
}

/// The parts of an op with a fast path: its variant index, its key and, for the ops that
/// carry one, its entry. `None` for the ops postcard encodes.
fn fast_parts(op: &LogOp) -> Option<(u32, &CompactString, &CompactString, Option<&Entry>)> {
    Some(match op {
        LogOp::Put {
            namespace,
            path,
            entry,
        } => (PUT, namespace, path, Some(entry)),
        LogOp::Metadata {
            namespace,
            path,
            entry,
        } => (METADATA, namespace, path, Some(entry)),
        LogOp::Delete { namespace, path } => (DELETE, namespace, path, None),
        LogOp::Evict { namespace, path } => (EVICT, namespace, path, None),
        LogOp::Expire { namespace, path } => (EXPIRE, namespace, path, None),
        _ => return None,
    })
}

/// Most bytes `op` takes encoded; 64 for the ops postcard encodes (only reserved space).
fn op_bound(op: &LogOp) -> usize {
    match fast_parts(op) {
        Some((_, namespace, path, entry)) => {
            VARINT_MAX + key_bound(namespace, path) + entry.map_or(0, entry_bound)
        }
        None => 64,
    }
}

impl Writer<'_> {
    /// Writes `op` if it has a fast path; false (nothing written) if not.
    #[inline]
    fn op(&mut self, op: &LogOp) -> bool {
        let Some((variant, namespace, path, entry)) = fast_parts(op) else {
            return false;
        };
        self.varint(variant.into());
        self.bytes(namespace.as_bytes());
        self.bytes(path.as_bytes());
        if let Some(entry) = entry {
            self.entry(entry);
        }
        true
    }
}

/// Appends a whole record: its format byte, then postcard's encoding of its fields. A record
/// of single-key ops (nearly all of them) is written in one pass into space sized once; one
/// with a rare op is written op by op, the rare ones by postcard.
pub(crate) fn push_record(
    out: &mut Vec<u8>,
    format: u8,
    revision: u64,
    at: u64,
    ops: &[LogOp],
) -> postcard::Result<()> {
    if ops.iter().all(|op| fast_parts(op).is_some()) {
        let bound = 1 + HEAD_BOUND + ops.iter().map(op_bound).sum::<usize>();
        append(out, bound, |w| {
            w.byte(format);
            w.varint(revision);
            w.varint(at);
            w.varint(ops.len() as u64);
            for op in ops {
                w.op(op);
            }
        });
        return Ok(());
    }
    out.push(format);
    append(out, HEAD_BOUND, |w| {
        w.varint(revision);
        w.varint(at);
        w.varint(ops.len() as u64);
    });
    for op in ops {
        let mut written = false;
        append(out, op_bound(op), |w| written = w.op(op));
        if !written {
            postcard::serialize_with_flavor(op, AppendTo(out))?;
        }
    }
    Ok(())
}

/// A postcard flavor that appends to a `Vec` a slice at a time (postcard's `ExtendFlavor`
/// extends byte by byte). One call per slice: a byte-at-a-time loop for short slices was
/// slower (`log/encode_small_x2`: 407 ns against 215 ns, before this encoder existed).
pub(crate) struct AppendTo<'a>(pub(crate) &'a mut Vec<u8>);

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
