//! The byte layout of a stored set of index images: one IndexedDB value (a `Uint8Array`) per
//! set, under the key of its snapshot's revision. The layout is the file adapter's index-image
//! file (docs/storage.md): a 40-byte header, then the payload.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SMESHIDX` |
//! | 8 | 1 | format version, `1` |
//! | 9 | 7 | reserved, zero |
//! | 16 | 8 | revision of the snapshot the images belong to, u64 LE |
//! | 24 | 8 | payload length, u64 LE (must equal the bytes present) |
//! | 32 | 8 | XXH3-64 of bytes 0..32 ‖ payload |
//! | 40 | length | `count` u32, then per image: name length u32, name (UTF-8), image length u64, image |
//!
//! Decoding checks everything and never panics: any mismatch is an [`ImagesError`].

use statemesh_core::IndexImage;
use xxhash_rust::xxh3::xxh3_64;

/// Magic bytes at the start of a stored image set.
pub const MAGIC: &[u8; 8] = b"SMESHIDX";
/// Format version of a stored image set.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER: usize = 40;

/// Why a stored image set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImagesError {
    #[error("image set of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("image set has the wrong magic bytes")]
    Magic,
    #[error("image set format version {0} is not known")]
    Version(u8),
    #[error("image set is of revision {found}, expected {expected}")]
    Revision { expected: u64, found: u64 },
    #[error("image set says {declared} payload bytes, holds {present}")]
    Length { declared: u64, present: u64 },
    #[error("image set checksum mismatch")]
    Checksum,
    #[error("image set payload does not decode: {0}")]
    Payload(&'static str),
}

/// Encodes `images` taken at `revision`.
pub fn encode(revision: u64, images: &[IndexImage]) -> Vec<u8> {
    let payload_len = 4 + images
        .iter()
        .map(|i| 4 + i.name.len() + 8 + i.bytes.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(HEADER + payload_len);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&[0; 7]);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(payload_len as u64).to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(images.len() as u32).to_le_bytes());
    for image in images {
        out.extend_from_slice(&(image.name.len() as u32).to_le_bytes());
        out.extend_from_slice(image.name.as_bytes());
        out.extend_from_slice(&(image.bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&image.bytes);
    }
    let sum = checksum(&out);
    out[32..40].copy_from_slice(&sum.to_le_bytes());
    out
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut covered = Vec::with_capacity(bytes.len().saturating_sub(8));
    covered.extend_from_slice(&bytes[..32]);
    covered.extend_from_slice(&bytes[HEADER..]);
    xxh3_64(&covered)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Decodes a stored image set, which must be of `revision`.
pub fn decode(revision: u64, bytes: &[u8]) -> Result<Vec<IndexImage>, ImagesError> {
    if bytes.len() < HEADER {
        return Err(ImagesError::Short(bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err(ImagesError::Magic);
    }
    if bytes[8] != VERSION {
        return Err(ImagesError::Version(bytes[8]));
    }
    let found = u64_at(bytes, 16).ok_or(ImagesError::Short(bytes.len()))?;
    let declared = u64_at(bytes, 24).ok_or(ImagesError::Short(bytes.len()))?;
    let stored = u64_at(bytes, 32).ok_or(ImagesError::Short(bytes.len()))?;
    let present = (bytes.len() - HEADER) as u64;
    if declared != present {
        return Err(ImagesError::Length { declared, present });
    }
    if checksum(bytes) != stored {
        return Err(ImagesError::Checksum);
    }
    if found != revision {
        return Err(ImagesError::Revision {
            expected: revision,
            found,
        });
    }
    let payload = &bytes[HEADER..];
    let count = u32_at(payload, 0).ok_or(ImagesError::Payload("no image count"))?;
    let mut at = 4usize;
    // Every image takes at least 12 bytes: the count cannot ask for more room than is there.
    let mut images = Vec::with_capacity((count as usize).min(payload.len() / 12));
    for _ in 0..count {
        let name_len = u32_at(payload, at).ok_or(ImagesError::Payload("name length"))? as usize;
        at += 4;
        let name = at
            .checked_add(name_len)
            .and_then(|end| payload.get(at..end))
            .ok_or(ImagesError::Payload("name"))?;
        let name = std::str::from_utf8(name).map_err(|_| ImagesError::Payload("name not UTF-8"))?;
        at += name_len;
        let len = u64_at(payload, at).ok_or(ImagesError::Payload("image length"))?;
        at += 8;
        let image = usize::try_from(len)
            .ok()
            .and_then(|len| at.checked_add(len))
            .and_then(|end| payload.get(at..end))
            .ok_or(ImagesError::Payload("image bytes"))?;
        at += image.len();
        images.push(IndexImage {
            name: name.to_owned(),
            bytes: image.to_vec(),
        });
    }
    if at != payload.len() {
        return Err(ImagesError::Payload("bytes after the last image"));
    }
    Ok(images)
}
