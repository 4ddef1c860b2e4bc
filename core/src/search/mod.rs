//! Secondary indexes over the keyspace: full-text (tantivy, BM25), exact values and vectors.
//!
//! Indexes are *declared* per key pattern ([`TextIndexDef`], [`ValueIndexDef`],
//! [`VectorIndexDef`]) and are derived state: the engine feeds them every change to a matching
//! key (put, patch, delete, expiry, eviction, transaction, replay), and builds a newly declared
//! index from the keys already held. They are not part of snapshots or log records; a host
//! declares them again after opening a store. A host with durable storage can persist an
//! *index image* of each index beside every snapshot ([`crate::Engine::index_images`]) and offer
//! them back after restoring that snapshot ([`crate::Engine::offer_index_images`]): a
//! declaration then loads its image instead of re-reading the keyspace, and the log replay that
//! follows updates it as usual. An image that does not match (see [`ImageError`]) is ignored
//! and the index is rebuilt.
//!
//! Searches are reads (`&Engine`): they never return a key that is deleted, or expired at the
//! read's `now`, whether or not the expiry sweep has removed it yet.

mod extract;
mod image;
mod image_set;
mod indexes;
mod names;
mod text;
mod text_dir;
mod value_index;
mod vector;

pub(crate) use extract::{Scalar, vector_bytes};
pub use image::{IMAGE_FORMAT_V1, ImageError, IndexImage};
pub use image_set::{
    IMAGE_SET_FORMAT_V1, IMAGE_SET_HEADER_LEN, IMAGE_SET_MAGIC, ImageSetError, decode_image_set,
    encode_image_set,
};
pub use indexes::{IndexOrigin, IndexStats, Indexes};
pub use names::{LANGUAGES, language_from_name, language_name, metric_from_name, metric_name};
pub use tantivy::tokenizer::Language;
pub use vector::{
    ExactVectorIndex, Metric, Neighbor, VectorDump, VectorIndex, VectorSpec, dot, l2_squared,
    neighbor_order, normalize,
};

/// A full-text index: which keys, which parts of their values, and how text is analysed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TextIndexDef {
    /// The index's name, used by searches.
    pub name: String,
    /// Keys indexed: a `namespace:path` pattern, e.g. `chat:conv.*.msg.*`.
    pub pattern: String,
    /// JSON fields indexed, as dotted paths (`title`, `meta.summary`). Empty: the whole value,
    /// which must then be a string (other kinds are skipped).
    pub fields: Vec<String>,
    /// Stemming and stop words; `None` only splits, lower-cases and drops tokens over 40 bytes.
    pub language: Option<Language>,
}

impl TextIndexDef {
    /// An index of the whole string value of keys matching `pattern`, analysed for English.
    pub fn new(name: impl Into<String>, pattern: impl Into<String>) -> TextIndexDef {
        TextIndexDef {
            name: name.into(),
            pattern: pattern.into(),
            fields: Vec::new(),
            language: Some(Language::English),
        }
    }

    /// Adds a JSON field (dotted path) to index instead of the whole value.
    pub fn field(mut self, path: impl Into<String>) -> TextIndexDef {
        self.fields.push(path.into());
        self
    }

    /// Sets the language (`None`: no stemming, no stop words).
    pub fn language(mut self, language: Option<Language>) -> TextIndexDef {
        self.language = language;
        self
    }
}

/// An exact-value index: keys by the value of a JSON field, or by their whole value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValueIndexDef {
    pub name: String,
    pub pattern: String,
    /// JSON fields indexed, as dotted paths. Empty: the whole value (strings, numbers, booleans
    /// and JSON scalars; other kinds are skipped).
    pub fields: Vec<String>,
}

impl ValueIndexDef {
    /// An index of the whole value of keys matching `pattern`.
    pub fn new(name: impl Into<String>, pattern: impl Into<String>) -> ValueIndexDef {
        ValueIndexDef {
            name: name.into(),
            pattern: pattern.into(),
            fields: Vec::new(),
        }
    }

    /// Adds a JSON field (dotted path) to index instead of the whole value.
    pub fn field(mut self, path: impl Into<String>) -> ValueIndexDef {
        self.fields.push(path.into());
        self
    }
}

/// A vector index: where each key's vector is, its dimension and the distance used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VectorIndexDef {
    pub name: String,
    pub pattern: String,
    /// The JSON field (dotted path) holding the vector as an array of numbers. `None`: the whole
    /// value is the vector, either a JSON array or bytes of little-endian `f32`s (what
    /// `add_vector` writes).
    pub field: Option<String>,
    pub spec: VectorSpec,
}

impl VectorIndexDef {
    /// An index of vectors stored as whole values of keys matching `pattern`.
    pub fn new(
        name: impl Into<String>,
        pattern: impl Into<String>,
        dimension: usize,
        metric: Metric,
    ) -> VectorIndexDef {
        VectorIndexDef {
            name: name.into(),
            pattern: pattern.into(),
            field: None,
            spec: VectorSpec { dimension, metric },
        }
    }

    /// Takes the vector from this JSON field (dotted path) of each value instead.
    pub fn field(mut self, path: impl Into<String>) -> VectorIndexDef {
        self.field = Some(path.into());
        self
    }
}

/// One text search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct TextHit {
    /// The key, in its written form `namespace:path`.
    pub key: String,
    /// BM25 score; higher is better.
    pub score: f32,
}

/// One vector search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub key: String,
    /// Distance under the index's metric; lower is nearer.
    pub distance: f32,
}

/// Limits of search calls.
pub const MAX_SEARCH_LIMIT: usize = 10_000;
/// Largest vector dimension an index accepts.
pub const MAX_DIMENSION: usize = 65_536;

/// Why a declaration or a search was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    #[error("no {kind} index named {name:?} is declared")]
    UnknownIndex { kind: &'static str, name: String },
    #[error("an index named {name:?} is already declared")]
    DuplicateIndex { name: String },
    #[error("invalid index declaration {name:?}: {reason}")]
    InvalidDeclaration { name: String, reason: String },
    #[error("malformed query {query:?}: {message}")]
    MalformedQuery { query: String, message: String },
    #[error("vector has dimension {actual}; index {index:?} expects {expected}")]
    DimensionMismatch {
        index: String,
        expected: usize,
        actual: usize,
    },
    #[error("invalid vector for index {index:?}: {reason}")]
    InvalidVector { index: String, reason: String },
    #[error("search limit must be between 1 and {max}, got {limit}")]
    InvalidLimit { limit: usize, max: usize },
    #[error("{key} does not match the pattern {pattern:?} of index {index:?}")]
    KeyOutsideIndex {
        key: String,
        index: String,
        pattern: String,
    },
    #[error("text index {index:?} failed: {message}")]
    Index { index: String, message: String },
}
