//! Byte layouts: file names, segment headers, frames and snapshot files. Index-image files hold
//! core's index image set as it is (`statemesh_core::search::encode_image_set`).
//!
//! Every integer is little-endian. Checksums are XXH3-64. Nothing here panics on any input:
//! all reads from file contents go through `get` and checked arithmetic.

use xxhash_rust::xxh3::Xxh3Default;

/// First 8 bytes of every WAL segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SMESHWAL";
/// First 8 bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SMESHSNP";
/// First 8 bytes of every index-image file. Its bytes are core's index image set
/// ([`statemesh_core::search::encode_image_set`]), which the IndexedDB adapter stores too.
pub const IMAGES_MAGIC: [u8; 8] = statemesh_core::search::IMAGE_SET_MAGIC;
/// Format version written into snapshot headers, and the segment version of a frame per record.
pub const FORMAT_VERSION: u8 = 1;
/// Segment format version this build writes: one frame per append, holding every record of
/// it ([`GROUP_HEADER_LEN`]). Segments of [`FORMAT_VERSION`] 1 (a frame per record) are read.
pub const SEGMENT_VERSION: u8 = 2;
/// Checksum algorithm byte in segment headers: XXH3-64 of `revision || payload`.
pub const CHECKSUM_XXH3_64: u8 = 1;
/// Bytes in a segment header: magic (8), version (1), checksum algorithm (1), reserved zeros (6).
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Bytes in a version-1 frame header: payload length u32 (4), revision u64 (8), checksum u64 (8).
pub const FRAME_HEADER_LEN: usize = 20;
/// Bytes in a version-2 frame header: body length u32 (4), first revision u64 (8), record
/// count u32 (4), checksum u64 (8). The body is the record index (a varint revision step and a
/// varint length per record) and then the records' bytes back to back.
pub const GROUP_HEADER_LEN: usize = 24;
/// Most body bytes a version-2 frame is given while more records wait: an append larger than
/// this is written as several frames, so recovery never needs one frame of gigabytes.
pub const GROUP_BODY_TARGET: usize = 64 << 20;
/// Bytes in a snapshot header: magic (8), version (1), reserved (7), revision u64 (8),
/// payload length u64 (8), checksum u64 (8).
pub const SNAPSHOT_HEADER_LEN: usize = 40;

/// A later frame is only looked for at revisions at most this far past the last good one. It
/// bounds the work of telling a torn tail from mid-segment damage on adversarial bytes.
const MAX_REVISION_STEP: u64 = 1 << 32;

pub(crate) const WAL_PREFIX: &str = "wal-";
pub(crate) const WAL_SUFFIX: &str = ".log";
pub(crate) const SNAPSHOT_PREFIX: &str = "snapshot-";
pub(crate) const SNAPSHOT_SUFFIX: &str = ".snap";
pub(crate) const IMAGES_PREFIX: &str = "index-";
pub(crate) const IMAGES_SUFFIX: &str = ".img";
pub(crate) const TMP_SUFFIX: &str = ".tmp";
pub(crate) const LOCK_FILE: &str = "LOCK";

/// `wal-<first revision, 20 digits>.log`
pub(crate) fn segment_name(first_revision: u64) -> String {
    format!("{WAL_PREFIX}{first_revision:020}{WAL_SUFFIX}")
}

/// `snapshot-<revision, 20 digits>.snap`
pub(crate) fn snapshot_name(revision: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{revision:020}{SNAPSHOT_SUFFIX}")
}

/// `index-<revision, 20 digits>.img`
pub(crate) fn images_name(revision: u64) -> String {
    format!("{IMAGES_PREFIX}{revision:020}{IMAGES_SUFFIX}")
}

/// The revision in an index-image file's name, if `name` is one's.
pub(crate) fn parse_images_name(name: &str) -> Option<u64> {
    parse_numbered(name, IMAGES_PREFIX, IMAGES_SUFFIX)
}

fn parse_numbered(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The first revision in a segment's name, if `name` is a segment's.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    parse_numbered(name, WAL_PREFIX, WAL_SUFFIX)
}

/// The revision in a snapshot's name, if `name` is a snapshot's.
pub(crate) fn parse_snapshot_name(name: &str) -> Option<u64> {
    parse_numbered(name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX)
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = data.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// XXH3-64 of `revision (u64 LE) || payload`: the frame checksum.
pub(crate) fn frame_checksum(revision: u64, payload: &[u8]) -> u64 {
    // The hash of revision and payload together. A small frame is hashed in one call from a
    // copy: the streaming hasher's setup cost more than hashing a small record.
    const SMALL: usize = 248;
    if payload.len() <= SMALL {
        let mut joined = [0u8; 8 + SMALL];
        joined[..8].copy_from_slice(&revision.to_le_bytes());
        let end = 8 + payload.len();
        joined[8..end].copy_from_slice(payload);
        return xxhash_rust::xxh3::xxh3_64(&joined[..end]);
    }
    let mut h = Xxh3Default::new();
    h.update(&revision.to_le_bytes());
    h.update(payload);
    h.digest()
}

pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8] = SEGMENT_VERSION;
    h[9] = CHECKSUM_XXH3_64;
    h
}

/// Appends one version-1 frame to `out` (a frame per record). This build writes version 2;
/// tests write version 1 to check it is still read. `payload.len()` must fit a `u32`.
#[cfg(test)]
pub(crate) fn encode_frame(out: &mut Vec<u8>, revision: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&frame_checksum(revision, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends a version-2 index entry: the revision step and the record length, as varints. Both
/// take one byte for a pipelined write's record (a step of 1, under 128 bytes): that case is
/// one two-byte append.
#[inline]
pub(crate) fn push_index_entry(out: &mut Vec<u8>, step: u64, len: u64) {
    if (step | len) < 0x80 {
        out.extend_from_slice(&[step as u8, len as u8]);
    } else {
        push_varint(out, step);
        push_varint(out, len);
    }
}

/// Appends LEB128 `value` (7 bits a byte, low group first, top bit set on all but the last).
pub(crate) fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Bytes [`push_varint`] writes for `value`.
#[cfg(test)]
fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The LEB128 varint at `at`: its value and the offset after it. `None` if it is cut short, is
/// longer than ten bytes or overflows a `u64`.
fn read_varint(data: &[u8], mut at: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(at)?;
        at += 1;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Some((value, at));
        }
    }
    None
}

/// A version-2 frame's header for a body of `body_len` bytes whose index is `index`, holding
/// `count` records from `first`; the checksum field is left zero for [`seal_group`].
pub(crate) fn group_header(body_len: u32, first: u64, count: u32) -> [u8; GROUP_HEADER_LEN] {
    let mut h = [0u8; GROUP_HEADER_LEN];
    h[..4].copy_from_slice(&body_len.to_le_bytes());
    h[4..12].copy_from_slice(&first.to_le_bytes());
    h[12..16].copy_from_slice(&count.to_le_bytes());
    h
}

/// Writes the checksum into `header` ([`group_header`]'s): XXH3-64 of the header's first 16
/// bytes, the index, then the records' bytes (`records`, in order, however they are split).
pub(crate) fn seal_group<'a>(
    header: &mut [u8; GROUP_HEADER_LEN],
    index: &[u8],
    records: impl IntoIterator<Item = &'a [u8]>,
) {
    let mut h = Xxh3Default::new();
    h.update(&header[..16]);
    h.update(index);
    for part in records {
        h.update(part);
    }
    header[16..].copy_from_slice(&h.digest().to_le_bytes());
}

/// What a segment header says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// A segment of this format version (1 or [`SEGMENT_VERSION`]).
    Ok(u8),
    /// Fewer bytes than a header: a segment torn while it was created.
    Short,
    /// The magic bytes are wrong.
    BadMagic,
    /// A version or checksum algorithm this build cannot read.
    Unsupported(String),
}

pub(crate) fn check_segment_header(data: &[u8]) -> HeaderCheck {
    let Some(header) = data.get(..SEGMENT_HEADER_LEN) else {
        return HeaderCheck::Short;
    };
    if header[..8] != SEGMENT_MAGIC {
        return HeaderCheck::BadMagic;
    }
    let version = header[8];
    if version != FORMAT_VERSION && version != SEGMENT_VERSION {
        return HeaderCheck::Unsupported(format!("segment format version {version}"));
    }
    if header[9] != CHECKSUM_XXH3_64 {
        return HeaderCheck::Unsupported(format!("checksum algorithm {}", header[9]));
    }
    if header[10..].iter().any(|&b| b != 0) {
        return HeaderCheck::Unsupported("non-zero reserved header bytes".into());
    }
    HeaderCheck::Ok(version)
}

/// One frame read from a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub(crate) revision: u64,
    pub(crate) payload: &'a [u8],
    /// Offset of the byte after this frame.
    pub(crate) end: usize,
}

/// The header and body of the frame at `at`, whose header of `header_len` bytes starts with
/// the body's length (u32), as both frame versions' do. `Err` when either is cut short.
fn frame_parts(data: &[u8], at: usize, header_len: usize) -> Result<(&[u8], &[u8]), String> {
    let available = data.len().saturating_sub(at);
    let (Some(header), Some(len)) = (data.get(at..at + header_len), read_u32(data, at)) else {
        return Err(format!(
            "short frame header ({available} of {header_len} bytes)"
        ));
    };
    let start = at + header_len;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let Some(body) = start.checked_add(len).and_then(|end| data.get(start..end)) else {
        return Err(format!(
            "short frame body ({} of {len} bytes)",
            data.len().saturating_sub(start)
        ));
    };
    Ok((header, body))
}

/// Parses the version-1 frame at `at`. `Err` says why the bytes there are not a whole valid
/// frame.
pub(crate) fn parse_frame(data: &[u8], at: usize) -> Result<Frame<'_>, String> {
    let (header, payload) = frame_parts(data, at, FRAME_HEADER_LEN)?;
    let (Some(revision), Some(checksum)) = (read_u64(header, 4), read_u64(header, 12)) else {
        return Err("short frame header".into());
    };
    if frame_checksum(revision, payload) != checksum {
        return Err(format!("checksum mismatch in frame of revision {revision}"));
    }
    Ok(Frame {
        revision,
        payload,
        end: at + FRAME_HEADER_LEN + payload.len(),
    })
}

/// A version-2 frame read from a segment: its records, checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Group<'a> {
    pub(crate) first: u64,
    pub(crate) last: u64,
    index: &'a [u8],
    records: &'a [u8],
    /// Offset of the byte after this frame.
    pub(crate) end: usize,
}

impl<'a> Group<'a> {
    /// Each record's revision and bytes, in order.
    pub(crate) fn records(&self) -> GroupRecords<'a> {
        GroupRecords {
            index: self.index,
            records: self.records,
            at: 0,
            revision: self.first,
        }
    }
}

/// The records of a [`Group`]; its index was checked when the frame was parsed.
#[derive(Debug, Clone)]
pub(crate) struct GroupRecords<'a> {
    index: &'a [u8],
    records: &'a [u8],
    at: usize,
    revision: u64,
}

impl<'a> Iterator for GroupRecords<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<(u64, &'a [u8])> {
        let (step, at) = read_varint(self.index, self.at)?;
        let (len, at) = read_varint(self.index, at)?;
        self.at = at;
        self.revision = self.revision.checked_add(step)?;
        let len = usize::try_from(len).ok()?;
        let (record, rest) = self.records.split_at_checked(len)?;
        self.records = rest;
        Some((self.revision, record))
    }
}

/// Parses the version-2 frame at `at`. `Err` says why the bytes there are not a whole valid
/// frame. The index must account for every body byte: the first record's step is 0 (its
/// revision is the header's), every later step at least 1, and the lengths fill the body.
pub(crate) fn parse_group(data: &[u8], at: usize) -> Result<Group<'_>, String> {
    let (header, body) = frame_parts(data, at, GROUP_HEADER_LEN)?;
    let (Some(first), Some(count), Some(checksum)) = (
        read_u64(header, 4),
        read_u32(header, 12),
        read_u64(header, 16),
    ) else {
        return Err("short frame header".into());
    };
    let mut h = Xxh3Default::new();
    h.update(&header[..16]);
    h.update(body);
    if h.digest() != checksum {
        return Err(format!("checksum mismatch in frame from revision {first}"));
    }
    // The checksum matched, so a bad index is a writer's bug or a forged frame: still refused.
    let bad = |what: &str| Err(format!("frame from revision {first}: {what}"));
    if count == 0 {
        return bad("no records");
    }
    let mut pos = 0;
    let mut revision = first;
    let mut bytes = 0usize;
    for i in 0..count {
        let Some((step, next)) = read_varint(body, pos) else {
            return bad("index cut short");
        };
        let Some((record_len, next)) = read_varint(body, next) else {
            return bad("index cut short");
        };
        pos = next;
        if (i == 0) != (step == 0) {
            return bad("revisions in the index do not increase");
        }
        let Some(r) = revision.checked_add(step) else {
            return bad("revision overflows");
        };
        revision = r;
        let Some(total) = usize::try_from(record_len)
            .ok()
            .and_then(|l| bytes.checked_add(l))
        else {
            return bad("record lengths overflow");
        };
        bytes = total;
    }
    let (index, records) = body.split_at(pos);
    if records.len() != bytes {
        return bad("record lengths do not fill the frame");
    }
    Ok(Group {
        first,
        last: revision,
        index,
        records,
        end: at + GROUP_HEADER_LEN + body.len(),
    })
}

/// Whether a whole valid frame of segment format `version` with a revision above `after`
/// starts anywhere after `from`. Used to tell a torn tail (nothing valid follows) from damage
/// in the middle of a segment.
pub(crate) fn valid_frame_after(
    data: &[u8],
    version: u8,
    from: usize,
    after: u64,
) -> Option<usize> {
    let header_len = if version == FORMAT_VERSION {
        FRAME_HEADER_LEN
    } else {
        GROUP_HEADER_LEN
    };
    let last_start = data.len().checked_sub(header_len)?;
    let mut at = from.checked_add(1)?;
    while at <= last_start {
        // Cheap filters first: a plausible revision and a payload that fits.
        if let (Some(len), Some(revision)) = (read_u32(data, at), read_u64(data, at + 4))
            && revision > after
            && revision - after <= MAX_REVISION_STEP
            && (len as usize) <= data.len() - at - header_len
            && if version == FORMAT_VERSION {
                parse_frame(data, at).is_ok()
            } else {
                parse_group(data, at).is_ok()
            }
        {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// A snapshot file's bytes for `revision` and `payload`.
pub(crate) fn encode_snapshot(revision: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + payload.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&[0u8; 7]);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let checksum = snapshot_checksum(&out[..32], payload);
    out.extend_from_slice(&checksum.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// XXH3-64 of the first 32 header bytes and the payload.
fn snapshot_checksum(header: &[u8], payload: &[u8]) -> u64 {
    let mut h = Xxh3Default::new();
    h.update(header);
    h.update(payload);
    h.digest()
}

/// Why a snapshot file is unreadable.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SnapshotError {
    Corrupt { offset: u64, reason: String },
    Unsupported(String),
}

/// The payload of a snapshot file, checked against its header and against `expected_revision`
/// (the revision in its name).
pub(crate) fn decode_snapshot(data: &[u8], expected_revision: u64) -> Result<&[u8], SnapshotError> {
    let corrupt = |offset: u64, reason: String| SnapshotError::Corrupt { offset, reason };
    let Some(header) = data.get(..SNAPSHOT_HEADER_LEN) else {
        return Err(corrupt(
            0,
            format!(
                "short snapshot header ({} of {SNAPSHOT_HEADER_LEN} bytes)",
                data.len()
            ),
        ));
    };
    if header[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "bad snapshot magic".into()));
    }
    if header[8] != FORMAT_VERSION {
        return Err(SnapshotError::Unsupported(format!(
            "snapshot format version {}",
            header[8]
        )));
    }
    let (Some(revision), Some(len), Some(checksum)) = (
        read_u64(header, 16),
        read_u64(header, 24),
        read_u64(header, 32),
    ) else {
        return Err(corrupt(0, "short snapshot header".into()));
    };
    let payload = &data[SNAPSHOT_HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(corrupt(
            24,
            format!(
                "snapshot length {len} but {} payload bytes present",
                payload.len()
            ),
        ));
    }
    if snapshot_checksum(&header[..32], payload) != checksum {
        return Err(corrupt(32, "snapshot checksum mismatch".into()));
    }
    if revision != expected_revision {
        return Err(corrupt(
            16,
            format!("snapshot holds revision {revision}, its name says {expected_revision}"),
        ));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_checksum_is_the_streaming_hash_of_revision_then_payload_at_every_size() {
        let payload: Vec<u8> = (0..600u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in 0..payload.len() {
            let revision = 0x0123_4567_89ab_cdef ^ len as u64;
            let mut h = Xxh3Default::new();
            h.update(&revision.to_le_bytes());
            h.update(&payload[..len]);
            assert_eq!(
                frame_checksum(revision, &payload[..len]),
                h.digest(),
                "len {len}"
            );
        }
    }

    #[test]
    fn varints_roundtrip_at_every_length_and_overlong_ones_are_refused() {
        for shift in 0..64 {
            for value in [1u64 << shift, (1u64 << shift) - 1, u64::MAX >> shift] {
                let mut out = Vec::new();
                push_varint(&mut out, value);
                assert_eq!(out.len(), varint_len(value), "{value}");
                assert_eq!(read_varint(&out, 0), Some((value, out.len())), "{value}");
                assert_eq!(read_varint(&out[..out.len() - 1], 0), None, "cut {value}");
            }
        }
        // Past 64 bits: a tenth byte above 1, or an eleventh byte.
        assert_eq!(
            read_varint(
                &[0xff; 9].iter().chain(&[2]).copied().collect::<Vec<_>>(),
                0
            ),
            None
        );
        assert_eq!(
            read_varint(
                &[0x80; 10].iter().chain(&[0]).copied().collect::<Vec<_>>(),
                0
            ),
            None
        );
    }

    #[test]
    fn names_roundtrip() {
        assert_eq!(segment_name(7), "wal-00000000000000000007.log");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_snapshot_name(&snapshot_name(42)), Some(42));
        assert_eq!(parse_segment_name("wal-7.log"), None);
        assert_eq!(parse_segment_name("wal-99999999999999999999.log"), None);
        assert_eq!(
            parse_snapshot_name("snapshot-00000000000000000001.snap.tmp"),
            None
        );
    }

    #[test]
    fn frame_roundtrip_and_damage() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 5, b"hello");
        let f = parse_frame(&buf, 0).unwrap();
        assert_eq!(
            (f.revision, f.payload, f.end),
            (5, &b"hello"[..], buf.len())
        );
        for cut in 0..buf.len() {
            assert!(parse_frame(&buf[..cut], 0).is_err());
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(parse_frame(&bad, 0).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn snapshot_roundtrip_and_damage() {
        let file = encode_snapshot(9, b"state");
        assert_eq!(decode_snapshot(&file, 9).unwrap(), b"state");
        assert!(decode_snapshot(&file, 8).is_err());
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert!(decode_snapshot(&bad, 9).is_err(), "flip at {i}");
        }
        for cut in 0..file.len() {
            assert!(decode_snapshot(&file[..cut], 9).is_err());
        }
    }
}
