//! An index image set: the images taken at one snapshot's revision, framed and checksummed as
//! one byte string for a storage adapter to keep beside that snapshot. The file adapter writes it
//! as `index-<rev>.img` and the IndexedDB adapter as one value in its `images` store; both keep
//! these exact bytes, so the layout is defined once, here. It is documented in docs/storage.md
//! ("Index-image set") and pinned by `core/tests/fixtures/index-image-set-v1.hex`.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SMESHIDX` |
//! | 8 | 1 | format version, [`IMAGE_SET_FORMAT_V1`] |
//! | 9 | 7 | reserved, zero |
//! | 16 | 8 | revision of the snapshot the images belong to, u64 LE |
//! | 24 | 8 | payload length, u64 LE (must equal the bytes present) |
//! | 32 | 8 | XXH3-64 of bytes 0..32 ‖ payload |
//! | 40 | length | `count` u32, then per image: name length u32, name (UTF-8), image length u64, image |
//!
//! Decoding checks everything and never panics: any mismatch is an [`ImageSetError`], so an
//! adapter never hands core a set that is not exactly the one written for its revision. The
//! images inside stay opaque here; core checks each one again when it is offered
//! ([`super::ImageError`]).

use xxhash_rust::xxh3::Xxh3Default;

use super::IndexImage;

/// First 8 bytes of an index image set.
pub const IMAGE_SET_MAGIC: [u8; 8] = *b"SMESHIDX";
/// Format version byte of an index image set.
pub const IMAGE_SET_FORMAT_V1: u8 = 1;
/// Bytes in an index image set's header, before the payload.
pub const IMAGE_SET_HEADER_LEN: usize = 40;

/// Bytes of the header covered by the checksum: everything before the checksum itself.
const CHECKED_HEADER_LEN: usize = 32;
/// The smallest encoded image: a name length (4) and an image length (8), both empty.
const MIN_IMAGE_LEN: usize = 12;

/// Why stored bytes are not a sound index image set of the expected revision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageSetError {
    #[error(
        "index image set of {len} bytes is shorter than its {IMAGE_SET_HEADER_LEN}-byte header"
    )]
    Short { len: usize },
    #[error("index image set has the wrong magic bytes")]
    Magic,
    #[error("unknown index image set format version {0}")]
    UnknownVersion(u8),
    #[error("index image set says {declared} payload bytes, holds {present}")]
    Length { declared: u64, present: u64 },
    #[error("index image set checksum mismatch")]
    Checksum,
    #[error("index image set holds revision {found}, expected {expected}")]
    Revision { expected: u64, found: u64 },
    /// The payload passed its checksum but does not decode (a writer bug, not damage).
    #[error("index image set payload at byte {offset}: {reason}")]
    Payload { offset: u64, reason: &'static str },
}

impl ImageSetError {
    /// Where in the stored bytes the problem was found, for an adapter's
    /// [`crate::StorageError::Corrupt`].
    pub fn offset(&self) -> u64 {
        match self {
            ImageSetError::Short { .. } | ImageSetError::Magic => 0,
            ImageSetError::UnknownVersion(_) => 8,
            ImageSetError::Revision { .. } => 16,
            ImageSetError::Length { .. } => 24,
            ImageSetError::Checksum => 32,
            ImageSetError::Payload { offset, .. } => *offset,
        }
    }
}

/// The stored bytes of `images` taken at `revision`.
pub fn encode_image_set(revision: u64, images: &[IndexImage]) -> Vec<u8> {
    let payload_len = 4 + images
        .iter()
        .map(|i| MIN_IMAGE_LEN + i.name.len() + i.bytes.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(IMAGE_SET_HEADER_LEN + payload_len);
    out.extend_from_slice(&IMAGE_SET_MAGIC);
    out.push(IMAGE_SET_FORMAT_V1);
    out.extend_from_slice(&[0; 7]);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(payload_len as u64).to_le_bytes());
    // The checksum goes here once the payload is in place.
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(images.len() as u32).to_le_bytes());
    for image in images {
        out.extend_from_slice(&(image.name.len() as u32).to_le_bytes());
        out.extend_from_slice(image.name.as_bytes());
        out.extend_from_slice(&(image.bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&image.bytes);
    }
    let sum = checksum(&out[..CHECKED_HEADER_LEN], &out[IMAGE_SET_HEADER_LEN..]);
    out[CHECKED_HEADER_LEN..IMAGE_SET_HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
    out
}

/// The images of a stored set, which must be of `expected_revision` (the revision of the
/// snapshot the adapter loaded). Checks, in order: header length, magic, version, payload
/// length, checksum, revision, then that the payload decodes to the last byte.
pub fn decode_image_set(
    bytes: &[u8],
    expected_revision: u64,
) -> Result<Vec<IndexImage>, ImageSetError> {
    let short = || ImageSetError::Short { len: bytes.len() };
    let (header, payload) = (
        bytes.get(..IMAGE_SET_HEADER_LEN).ok_or_else(short)?,
        bytes.get(IMAGE_SET_HEADER_LEN..).ok_or_else(short)?,
    );
    if header[..8] != IMAGE_SET_MAGIC {
        return Err(ImageSetError::Magic);
    }
    if header[8] != IMAGE_SET_FORMAT_V1 {
        return Err(ImageSetError::UnknownVersion(header[8]));
    }
    let (Some(found), Some(declared), Some(stored)) =
        (u64_at(header, 16), u64_at(header, 24), u64_at(header, 32))
    else {
        return Err(short());
    };
    let present = payload.len() as u64;
    if declared != present {
        return Err(ImageSetError::Length { declared, present });
    }
    if checksum(&header[..CHECKED_HEADER_LEN], payload) != stored {
        return Err(ImageSetError::Checksum);
    }
    if found != expected_revision {
        return Err(ImageSetError::Revision {
            expected: expected_revision,
            found,
        });
    }
    decode_payload(payload)
}

fn decode_payload(payload: &[u8]) -> Result<Vec<IndexImage>, ImageSetError> {
    let bad = |at: usize, reason: &'static str| ImageSetError::Payload {
        offset: (IMAGE_SET_HEADER_LEN + at) as u64,
        reason,
    };
    let count = u32_at(payload, 0).ok_or_else(|| bad(0, "short image count"))?;
    let mut at = 4usize;
    // A count cannot reserve more images than the bytes present could hold.
    let mut images = Vec::with_capacity((count as usize).min(payload.len() / MIN_IMAGE_LEN));
    for _ in 0..count {
        let name_len = u32_at(payload, at).ok_or_else(|| bad(at, "short name length"))?;
        let name_start = at + 4;
        let name = usize::try_from(name_len)
            .ok()
            .and_then(|len| name_start.checked_add(len))
            .and_then(|end| payload.get(name_start..end))
            .ok_or_else(|| bad(at, "name runs past the end"))?;
        let name = std::str::from_utf8(name).map_err(|_| bad(at, "name is not UTF-8"))?;
        let len_at = name_start + name.len();
        let len = u64_at(payload, len_at).ok_or_else(|| bad(len_at, "short image length"))?;
        let start = len_at + 8;
        let image = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .and_then(|end| payload.get(start..end))
            .ok_or_else(|| bad(len_at, "image runs past the end"))?;
        images.push(IndexImage {
            name: name.to_owned(),
            bytes: image.to_vec(),
        });
        at = start + image.len();
    }
    if at != payload.len() {
        return Err(bad(at, "trailing bytes after the images"));
    }
    Ok(images)
}

/// XXH3-64 of the header's first 32 bytes and the payload, streamed so the payload (megabytes
/// for a text index) is not copied to be hashed.
fn checksum(header: &[u8], payload: &[u8]) -> u64 {
    let mut h = Xxh3Default::new();
    h.update(header);
    h.update(payload);
    h.digest()
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn images(tag: u8) -> Vec<IndexImage> {
        vec![
            IndexImage {
                name: "text".into(),
                bytes: (0..700u32).map(|i| (i % 251) as u8 ^ tag).collect(),
            },
            IndexImage {
                name: "vectör".into(),
                bytes: vec![tag; 40],
            },
            IndexImage {
                name: String::new(),
                bytes: Vec::new(),
            },
        ]
    }

    #[test]
    fn roundtrip_and_empty_set() {
        let bytes = encode_image_set(9, &images(5));
        assert_eq!(decode_image_set(&bytes, 9).unwrap(), images(5));
        let empty = encode_image_set(1, &[]);
        assert_eq!(empty.len(), IMAGE_SET_HEADER_LEN + 4);
        assert_eq!(decode_image_set(&empty, 1).unwrap(), Vec::new());
    }

    #[test]
    fn header_checks_say_what_is_wrong() {
        let good = encode_image_set(9, &images(1));
        assert_eq!(
            decode_image_set(&good, 8),
            Err(ImageSetError::Revision {
                expected: 8,
                found: 9
            })
        );
        assert_eq!(
            decode_image_set(&good[..39], 9),
            Err(ImageSetError::Short { len: 39 })
        );
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert_eq!(decode_image_set(&bad, 9), Err(ImageSetError::Magic));
        let mut bad = good.clone();
        bad[8] = 2;
        assert_eq!(
            decode_image_set(&bad, 9),
            Err(ImageSetError::UnknownVersion(2))
        );
        let mut bad = good.clone();
        bad[12] = 1;
        assert_eq!(decode_image_set(&bad, 9), Err(ImageSetError::Checksum));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            decode_image_set(&longer, 9),
            Err(ImageSetError::Length { .. })
        ));
    }

    #[test]
    fn a_payload_that_does_not_decode_is_refused_with_its_offset() {
        // Re-seal a payload with trailing bytes: the checksum passes, the payload does not.
        let mut bytes = encode_image_set(3, &[]);
        bytes.push(7);
        let len = (bytes.len() - IMAGE_SET_HEADER_LEN) as u64;
        bytes[24..32].copy_from_slice(&len.to_le_bytes());
        let sum = checksum(&bytes[..32], &bytes[40..]);
        bytes[32..40].copy_from_slice(&sum.to_le_bytes());
        let err = decode_image_set(&bytes, 3).unwrap_err();
        assert_eq!(
            err,
            ImageSetError::Payload {
                offset: 44,
                reason: "trailing bytes after the images"
            }
        );
        assert_eq!(err.offset(), 44);
    }

    #[test]
    fn damaged_bytes_never_decode_wrong_and_never_panic() {
        let good = encode_image_set(9, &images(5));
        for len in 0..good.len() {
            assert!(decode_image_set(&good[..len], 9).is_err(), "cut at {len}");
        }
        for at in 0..good.len() {
            for bit in [0x01, 0x80] {
                let mut bad = good.clone();
                bad[at] ^= bit;
                assert!(decode_image_set(&bad, 9).is_err(), "flip at {at}");
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..2000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let mut bytes = good[..(seed as usize % 80).min(good.len())].to_vec();
            bytes.extend((0..n % 50).map(|i| (seed >> (i % 56)) as u8));
            let _ = decode_image_set(&bytes, 9);
        }
    }
}
