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
/// Format version written into segment and snapshot headers.
pub const FORMAT_VERSION: u8 = 1;
/// Checksum algorithm byte in segment headers: XXH3-64 of `revision || payload`.
pub const CHECKSUM_XXH3_64: u8 = 1;
/// Bytes in a segment header: magic (8), version (1), checksum algorithm (1), reserved zeros (6).
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Bytes in a frame header: payload length u32 (4), revision u64 (8), checksum u64 (8).
pub const FRAME_HEADER_LEN: usize = 20;
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
    h[8] = FORMAT_VERSION;
    h[9] = CHECKSUM_XXH3_64;
    h
}

/// Appends one frame to `out`. The caller has checked `payload.len() <= u32::MAX`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, revision: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&frame_checksum(revision, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Encoded size of a frame with a payload of `payload_len` bytes.
pub(crate) fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN.saturating_add(payload_len)
}

/// What a segment header says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Ok,
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
    if header[8] != FORMAT_VERSION {
        return HeaderCheck::Unsupported(format!("segment format version {}", header[8]));
    }
    if header[9] != CHECKSUM_XXH3_64 {
        return HeaderCheck::Unsupported(format!("checksum algorithm {}", header[9]));
    }
    if header[10..].iter().any(|&b| b != 0) {
        return HeaderCheck::Unsupported("non-zero reserved header bytes".into());
    }
    HeaderCheck::Ok
}

/// One frame read from a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub(crate) revision: u64,
    pub(crate) payload: &'a [u8],
    /// Offset of the byte after this frame.
    pub(crate) end: usize,
}

/// Parses the frame at `at`. `Err` says why the bytes there are not a whole valid frame.
pub(crate) fn parse_frame(data: &[u8], at: usize) -> Result<Frame<'_>, String> {
    let available = data.len().saturating_sub(at);
    if available < FRAME_HEADER_LEN {
        return Err(format!(
            "short frame header ({available} of {FRAME_HEADER_LEN} bytes)"
        ));
    }
    let (Some(len), Some(revision), Some(checksum)) = (
        read_u32(data, at),
        read_u64(data, at + 4),
        read_u64(data, at + 12),
    ) else {
        return Err("short frame header".into());
    };
    let start = at + FRAME_HEADER_LEN;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let Some(payload) = start.checked_add(len).and_then(|end| data.get(start..end)) else {
        return Err(format!(
            "short payload ({} of {len} bytes)",
            data.len().saturating_sub(start)
        ));
    };
    if frame_checksum(revision, payload) != checksum {
        return Err(format!("checksum mismatch in frame of revision {revision}"));
    }
    Ok(Frame {
        revision,
        payload,
        end: start + len,
    })
}

/// Whether a whole valid frame with a revision above `after` starts anywhere after `from`.
/// Used to tell a torn tail (nothing valid follows) from damage in the middle of a segment.
pub(crate) fn valid_frame_after(data: &[u8], from: usize, after: u64) -> Option<usize> {
    let last_start = data.len().checked_sub(FRAME_HEADER_LEN)?;
    let mut at = from.checked_add(1)?;
    while at <= last_start {
        // Cheap filters first: a plausible revision and a payload that fits.
        if let (Some(len), Some(revision)) = (read_u32(data, at), read_u64(data, at + 4))
            && revision > after
            && revision - after <= MAX_REVISION_STEP
            && (len as usize) <= data.len() - at - FRAME_HEADER_LEN
            && parse_frame(data, at).is_ok()
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
