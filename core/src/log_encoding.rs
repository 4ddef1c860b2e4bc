//! The log record encoder of the write path: the bytes postcard writes for a
//! [`LogRecord`](crate::LogRecord), written field by field.
//!
//! The engine encodes each single-key op (every put, delete, expiry, eviction and metadata
//! change) from the key and entry it is installing, into the record's bytes, as the write
//! happens: no [`LogOp`] is built, cloned, handed to another thread or dropped for them. That
//! per-write structure, and the cache misses of reading and freeing it on the committer's
//! core, cost the Redis port's pipelined writes more than the encoding does
//! (docs/resp-performance.md).
//! postcard's own serializer hands every varint to its output as a slice of a scratch buffer,
//! a `memcpy` call per field, so the common ops are written here with plain stores into space
//! reserved once. The rare ops (patches, two-phase commit markers) go through postcard itself:
//! postcard's encoding of a struct is the concatenation of its fields' encodings, so an op
//! serialized alone is byte for byte the op inside its record, and a record is its head
//! followed by its ops.
//!
//! The layout this must match is postcard's, for the serde derives of [`LogRecord`],
//! [`LogOp`] and [`Entry`]: unsigned integers as LEB128 varints, an enum as its variant index
//! (varint) then its fields, `Option` as one byte 0 or 1 then the value, strings and byte
//! strings as a varint length then the bytes, a sequence as a varint length then the items.
//! A property test holds the two encoders to the same bytes for every op kind.

use compact_str::CompactString;

use crate::entry::Entry;
use crate::log::LogOp;
use crate::time::Timestamp;

/// postcard's variant indexes of [`LogOp`], in declaration order.
const PUT: u32 = 0;
const DELETE: u32 = 1;
const EVICT: u32 = 2;
const EXPIRE: u32 = 3;
const METADATA: u32 = 8;
const UPDATE: u32 = 9;

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

    /// LEB128 without a loop: the 7-bit groups are spread over a word's bytes with shifts,
    /// the continuation bits for the value's length come from a table indexed by its leading
    /// zeros, and the word is written with one store. A byte per iteration cost about 6
    /// instructions and a mispredicted exit per varint, computing the length and the mask
    /// about 25 more; a record holds about ten varints (its checksum alone takes ten bytes).
    #[inline(always)]
    fn varint(&mut self, value: u64) {
        if value < 0x80 {
            self.byte(value as u8);
            return;
        }
        let (len, continuation) = VARINT_SHAPES[value.leading_zeros() as usize];
        let word = spread_groups(value) | continuation;
        if let Some(dst) = self.buf.get_mut(self.pos..self.pos + 8) {
            dst.copy_from_slice(&word.to_le_bytes());
        }
        if len > 8 {
            // The top 8 bits: the ninth byte, and for a value of 63 or 64 bits a tenth.
            let high = (value >> 56) as u8;
            let tail = if len == 9 {
                [high, 0]
            } else {
                [high | 0x80, 1]
            };
            if let Some(dst) = self.buf.get_mut(self.pos + 8..self.pos + 10) {
                dst.copy_from_slice(&tail);
            }
        }
        self.pos += len;
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

    #[inline]
    fn expiry(&mut self, expires_at: Option<Timestamp>) {
        match expires_at {
            Some(at) => {
                self.byte(1);
                self.varint(at.0);
            }
            None => self.byte(0),
        }
    }

    fn entry(&mut self, entry: &Entry) {
        self.bytes(entry.value.as_bytes());
        self.varint(entry.checksum);
        self.varint(entry.created_at.0);
        self.varint(entry.updated_at.0);
        self.expiry(entry.expires_at);
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

/// The top bit of every byte of a word.
const CONTINUATION: u64 = 0x8080_8080_8080_8080;

/// For a value with `i` leading zero bits (at least 0x80, so `i` < 57): how many bytes its
/// varint takes, and the continuation bits of the first eight of them (every byte before the
/// last; a value of 9 or 10 bytes has all eight set).
const VARINT_SHAPES: [(usize, u64); 65] = {
    let mut shapes = [(1, 0); 65];
    let mut zeros: usize = 0;
    while zeros < 65 {
        let bits: usize = if zeros >= 64 { 1 } else { 64 - zeros };
        let len = bits.div_ceil(7);
        let continuation = if len > 8 {
            CONTINUATION
        } else if len == 1 {
            0
        } else {
            CONTINUATION >> (8 * (9 - len))
        };
        shapes[zeros] = (len, continuation);
        zeros += 1;
    }
    shapes
};

/// Bytes postcard's varint of `value` takes (1 to 10).
#[inline]
fn varint_len(value: u64) -> usize {
    VARINT_SHAPES[(value | 1).leading_zeros() as usize].0
}

/// The low 56 bits of `value` as eight 7-bit groups, one per byte, low group first: halves of
/// 28 bits into 32-bit lanes, quarters of 14 into 16-bit lanes, then groups of 7 into bytes.
#[inline]
fn spread_groups(value: u64) -> u64 {
    let halves = (value & 0x0fff_ffff) | ((value & 0x00ff_ffff_f000_0000) << 4);
    let quarters = (halves & 0x0000_3fff_0000_3fff) | ((halves & 0x0fff_c000_0fff_c000) << 2);
    (quarters & 0x007f_007f_007f_007f) | ((quarters & 0x3f80_3f80_3f80_3f80) << 1)
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

/// Most bytes a record's head takes (revision, time, op count).
const HEAD_BOUND: usize = 3 * VARINT_MAX;

fn entry_bound(entry: &Entry) -> usize {
    // Value (length + bytes), six integers, two option tags, the metadata.
    VARINT_MAX
        + entry.value.as_bytes().len()
        + 7 * VARINT_MAX
        + 2
        + VARINT_MAX
        + entry.user_meta.as_ref().map_or(0, |m| m.len())
}

/// The single-key ops, which the write path encodes from the key and entry it is installing
/// (no [`LogOp`] is built for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyedOp {
    Put,
    Delete,
    Evict,
    Expire,
    Metadata,
    /// The entry's value, checksum and expiry only; the rest follows from the key's previous
    /// entry ([`LogOp::Update`]).
    Update,
}

impl KeyedOp {
    fn variant(self) -> u32 {
        match self {
            KeyedOp::Put => PUT,
            KeyedOp::Delete => DELETE,
            KeyedOp::Evict => EVICT,
            KeyedOp::Expire => EXPIRE,
            KeyedOp::Metadata => METADATA,
            KeyedOp::Update => UPDATE,
        }
    }
}

/// A record's head fields before its op count: the format byte, the revision and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) format: u8,
    pub(crate) revision: u64,
    pub(crate) at: u64,
}

impl Head {
    /// Bytes the head takes with a one-byte op count (counts up to 127).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        1 + varint_len(self.revision) + varint_len(self.at) + 1
    }

    /// Writes the head with its op count (one byte up to 127, as [`Head::len`] counts it).
    #[inline(always)]
    fn write(&self, w: &mut Writer<'_>, count: u64) {
        w.byte(self.format);
        w.varint(self.revision);
        w.varint(self.at);
        w.varint(count);
    }
}

/// Most bytes a head with a one-byte op count takes.
const OPEN_HEAD_BOUND: usize = 1 + 2 * VARINT_MAX + 1;

/// Appends one single-key op as postcard encodes its [`LogOp`] variant: the variant index,
/// the namespace, the path and, for puts and metadata changes, the entry. With a `head`, the
/// op is its record's first and the record's head comes first, with an op count of one
/// ([`close_head`] corrects it): the common record, one write's one op, is written whole in
/// one step, straight into the log.
#[inline]
pub(crate) fn push_keyed_op(
    out: &mut Vec<u8>,
    head: Option<Head>,
    op: KeyedOp,
    namespace: &str,
    path: &str,
    entry: Option<&Entry>,
) {
    let entry_room = match entry {
        // Value (length + bytes), checksum, expiry tag and time.
        Some(entry) if op == KeyedOp::Update => 3 * VARINT_MAX + 1 + entry.value.as_bytes().len(),
        Some(entry) => entry_bound(entry),
        None => 0,
    };
    let head_room = if head.is_some() { OPEN_HEAD_BOUND } else { 0 };
    let bound = head_room + 3 * VARINT_MAX + namespace.len() + path.len() + entry_room;
    append(out, bound, |w| {
        if let Some(head) = head {
            head.write(w, 1);
        }
        w.varint(op.variant().into());
        w.bytes(namespace.as_bytes());
        w.bytes(path.as_bytes());
        match entry {
            Some(entry) if op == KeyedOp::Update => {
                w.bytes(entry.value.as_bytes());
                w.varint(entry.checksum);
                w.expiry(entry.expires_at);
            }
            Some(entry) => w.entry(entry),
            None => {}
        }
    });
}

/// Appends a record's head with an op count of zero, for a record whose first op is not a
/// single-key one (or that has none); [`close_head`] corrects the count.
pub(crate) fn push_open_head(out: &mut Vec<u8>, head: Head) {
    push_head(out, head, 0);
}

/// Sets the op count of the record that starts at `start` in `out` and runs to its end: the
/// head was written with a one-byte count, which a count over 127 outgrows (the record's ops
/// then move up to make room; such records are rare and large).
pub(crate) fn close_head(out: &mut Vec<u8>, start: usize, head: Head, count: usize) {
    let at = start + head.len() - 1;
    if let Ok(byte) = u8::try_from(count)
        && byte < 0x80
    {
        if let Some(slot) = out.get_mut(at) {
            *slot = byte;
        }
        return;
    }
    let mut varint = Vec::with_capacity(VARINT_MAX);
    append(&mut varint, VARINT_MAX, |w| w.varint(count as u64));
    let end = (at + 1).min(out.len());
    out.splice(at.min(end)..end, varint);
}

/// The parts of an op with a fast path; `None` for the ops postcard encodes.
fn keyed_parts(op: &LogOp) -> Option<(KeyedOp, &CompactString, &CompactString, Option<&Entry>)> {
    Some(match op {
        LogOp::Put {
            namespace,
            path,
            entry,
        } => (KeyedOp::Put, namespace, path, Some(entry)),
        LogOp::Metadata {
            namespace,
            path,
            entry,
        } => (KeyedOp::Metadata, namespace, path, Some(entry)),
        LogOp::Delete { namespace, path } => (KeyedOp::Delete, namespace, path, None),
        LogOp::Evict { namespace, path } => (KeyedOp::Evict, namespace, path, None),
        LogOp::Expire { namespace, path } => (KeyedOp::Expire, namespace, path, None),
        _ => return None,
    })
}

/// Appends any op: a single-key one by [`push_keyed_op`], the others (patches, two-phase
/// commit markers) by postcard.
pub(crate) fn push_op(out: &mut Vec<u8>, op: &LogOp) -> postcard::Result<()> {
    match keyed_parts(op) {
        Some((kind, namespace, path, entry)) => {
            push_keyed_op(out, None, kind, namespace, path, entry);
            Ok(())
        }
        None => postcard::serialize_with_flavor(op, AppendTo(out)),
    }
}

/// Appends a record's head: the format byte, then postcard's encoding of the revision, the
/// time and the length of the op list. The ops' encodings follow it.
fn push_head(out: &mut Vec<u8>, head: Head, ops: usize) {
    append(out, 1 + HEAD_BOUND, |w| head.write(w, ops as u64));
}

/// Appends a whole record: its head, then its ops.
pub(crate) fn push_record(
    out: &mut Vec<u8>,
    format: u8,
    revision: u64,
    at: u64,
    ops: &[LogOp],
) -> postcard::Result<()> {
    let head = Head {
        format,
        revision,
        at,
    };
    push_head(out, head, ops.len());
    for op in ops {
        push_op(out, op)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        append(&mut out, VARINT_MAX, |w| w.varint(value));
        out
    }

    /// Every length, each length's first and last value, and values around them.
    #[test]
    fn varints_are_postcards_at_every_length() {
        let mut values = vec![0, 1, u64::MAX, u64::MAX - 1, 1 << 63];
        for bits in (7..64).step_by(7) {
            let edge = 1u64 << bits;
            values.extend([edge - 2, edge - 1, edge, edge + 1, edge | (edge >> 1)]);
        }
        for value in values {
            let expected = postcard::to_allocvec(&value).expect("postcard");
            assert_eq!(varint_bytes(value), expected, "{value:#x}");
        }
    }

    proptest::proptest! {
        #[test]
        fn varints_of_any_value_are_postcards(value: u64, shift in 0u32..64) {
            let value = value >> shift;
            let expected = postcard::to_allocvec(&value).expect("postcard");
            proptest::prop_assert_eq!(varint_bytes(value), expected);
        }
    }
}
