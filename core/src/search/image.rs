//! Index images: one declared index's contents as bytes, so that a host can persist them beside
//! a snapshot and load them at the next open instead of rebuilding the index from the keyspace.
//!
//! Layout of an image (every image, whatever the index kind):
//!
//! | part | what |
//! |---|---|
//! | 1 byte | format version, [`IMAGE_FORMAT_V1`] |
//! | postcard [`Header`] | kind, revision, declaration, body length, XXH3-64 of the body |
//! | body | kind-specific: a postcard part, then raw bytes it gives the lengths of |
//!
//! An image is *accepted* only when its version is known, its checksum matches, its revision is
//! the engine's at the moment the index is declared (the restored snapshot's), its declaration
//! bytes equal those of the index being declared and its body decodes completely. Anything
//! else is an [`ImageError`]: the index is rebuilt from the keyspace, as without an image.
//! Nothing in here panics on any input.

use serde::{Deserialize, Serialize};

use super::{TextIndexDef, ValueIndexDef, VectorIndexDef, language_name, metric_name};

/// Format byte of an index image.
pub const IMAGE_FORMAT_V1: u8 = 1;

/// One index's image, as the engine produces it at a checkpoint and takes it back at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexImage {
    /// The index's name.
    pub name: String,
    /// The image (see the module documentation for the layout).
    pub bytes: Vec<u8>,
}

/// Why an offered image was not used (the index was rebuilt instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    #[error("empty image")]
    Empty,
    #[error("unknown image format version {0}")]
    UnknownVersion(u8),
    #[error("image body checksum mismatch (torn or damaged image)")]
    Checksum,
    #[error("image of revision {image} but the restored state is at revision {state}")]
    Stale { image: u64, state: u64 },
    #[error("the index declaration changed since the image was taken")]
    DeclarationChanged,
    #[error("image is of a {found} index, the declaration is a {expected} index")]
    KindMismatch {
        expected: &'static str,
        found: &'static str,
    },
    #[error("image does not decode: {0}")]
    Decode(String),
}

/// Which kind of index an image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    Text,
    Value,
    Vector,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Value => "value",
            Kind::Vector => "vector",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Header {
    kind: Kind,
    /// The engine's revision when the image was taken.
    revision: u64,
    /// postcard of the declaration (see [`declaration_bytes`]).
    declaration: Vec<u8>,
    body_len: u64,
    /// XXH3-64 of the body.
    checksum: u64,
}

/// Everything of a declaration that decides an index's contents, as bytes to compare.
#[derive(Serialize)]
enum DeclarationKey<'a> {
    Text {
        name: &'a str,
        pattern: &'a str,
        fields: &'a [String],
        language: Option<&'static str>,
    },
    Value {
        name: &'a str,
        pattern: &'a str,
        fields: &'a [String],
    },
    Vector {
        name: &'a str,
        pattern: &'a str,
        field: Option<&'a str>,
        dimension: u64,
        metric: &'static str,
    },
}

fn encode_key(key: &DeclarationKey<'_>) -> Vec<u8> {
    // Encoding strings and integers into a Vec cannot fail; an empty key would only make every
    // image mismatch (a rebuild), never a wrong result.
    postcard::to_allocvec(key).unwrap_or_default()
}

pub(crate) fn text_declaration(def: &TextIndexDef) -> Vec<u8> {
    encode_key(&DeclarationKey::Text {
        name: &def.name,
        pattern: &def.pattern,
        fields: &def.fields,
        language: def.language.map(language_name),
    })
}

pub(crate) fn value_declaration(def: &ValueIndexDef) -> Vec<u8> {
    encode_key(&DeclarationKey::Value {
        name: &def.name,
        pattern: &def.pattern,
        fields: &def.fields,
    })
}

pub(crate) fn vector_declaration(def: &VectorIndexDef) -> Vec<u8> {
    encode_key(&DeclarationKey::Vector {
        name: &def.name,
        pattern: &def.pattern,
        field: def.field.as_deref(),
        dimension: def.spec.dimension as u64,
        metric: metric_name(def.spec.metric),
    })
}

fn checksum(body: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(body)
}

/// An image of `kind` at `revision` for `declaration`, around `body`.
pub(crate) fn seal(kind: Kind, revision: u64, declaration: Vec<u8>, body: &[u8]) -> Vec<u8> {
    let header = Header {
        kind,
        revision,
        declaration,
        body_len: body.len() as u64,
        checksum: checksum(body),
    };
    let mut out = vec![IMAGE_FORMAT_V1];
    // A Vec sink cannot fail.
    out = postcard::to_extend(&header, out).unwrap_or_else(|_| vec![IMAGE_FORMAT_V1]);
    out.extend_from_slice(body);
    out
}

/// The body of `image`, when it is a sound image of `kind` at `revision` for `declaration`.
pub(crate) fn open<'a>(
    image: &'a [u8],
    kind: Kind,
    revision: u64,
    declaration: &[u8],
) -> Result<&'a [u8], ImageError> {
    let (&version, rest) = image.split_first().ok_or(ImageError::Empty)?;
    if version != IMAGE_FORMAT_V1 {
        return Err(ImageError::UnknownVersion(version));
    }
    let (header, body) = postcard::take_from_bytes::<Header>(rest).map_err(decode)?;
    if header.body_len != body.len() as u64 {
        return Err(ImageError::Decode(format!(
            "body of {} bytes, header says {}",
            body.len(),
            header.body_len
        )));
    }
    if checksum(body) != header.checksum {
        return Err(ImageError::Checksum);
    }
    if header.kind != kind {
        return Err(ImageError::KindMismatch {
            expected: kind.name(),
            found: header.kind.name(),
        });
    }
    if header.revision != revision {
        return Err(ImageError::Stale {
            image: header.revision,
            state: revision,
        });
    }
    if header.declaration != declaration {
        return Err(ImageError::DeclarationChanged);
    }
    Ok(body)
}

pub(crate) fn decode(e: impl std::fmt::Display) -> ImageError {
    ImageError::Decode(e.to_string())
}

/// Splits `lens` consecutive byte strings off the front of `raw`, which they must fill exactly.
pub(crate) fn split_blobs<'a>(raw: &'a [u8], lens: &[u64]) -> Result<Vec<&'a [u8]>, ImageError> {
    let mut out = Vec::with_capacity(lens.len());
    let mut rest = raw;
    for &len in lens {
        let len = usize::try_from(len).map_err(decode)?;
        if len > rest.len() {
            return Err(ImageError::Decode("a blob runs past the end".into()));
        }
        let (blob, tail) = rest.split_at(len);
        out.push(blob);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(ImageError::Decode(format!(
            "{} trailing bytes after the blobs",
            rest.len()
        )));
    }
    Ok(out)
}

/// Little-endian bytes of `floats`.
pub(crate) fn f32_bytes(floats: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(floats.len() * 4);
    for x in floats {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Floats back from little-endian bytes.
pub(crate) fn f32s(bytes: &[u8]) -> Result<Vec<f32>, ImageError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(ImageError::Decode(
            "vector bytes not a multiple of 4".into(),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
