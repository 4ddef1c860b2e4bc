//! Typed values and their stored form.
//!
//! A stored value is one byte string: `[kind][format][payload]`. The kind byte says which
//! [`Value`] variant it is; the format byte says how the payload was encoded (raw bytes, JSON text,
//! MessagePack, postcard, or a plugin codec). Both bytes are part of the on-disk format: new kinds
//! and formats may be added, existing numbers never change meaning.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The JSON value type of [`Value::Json`] (serde_json's), re-exported for hosts.
pub use serde_json::Value as JsonValue;

/// Longest content type of a [`Value::Document`], in bytes.
pub const MAX_CONTENT_TYPE_LEN: usize = 255;
/// Longest codec name of a [`Value::Custom`], in bytes.
pub const MAX_CODEC_NAME_LEN: usize = 64;
const HEADER_LEN: usize = 2;

/// How a payload is encoded. Stored as one byte in front of every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
#[non_exhaustive]
pub enum Format {
    /// The payload is the value itself (UTF-8 text, little-endian numbers, opaque bytes).
    Raw = 0,
    /// JSON text.
    Json = 1,
    /// MessagePack (rmp-serde).
    MessagePack = 2,
    /// postcard: compact, not self-describing; decode it with the type that wrote it.
    Postcard = 3,
    /// Bytes owned by a codec plugin; the codec's name is in the payload.
    Plugin = 4,
}

impl Format {
    fn from_byte(b: u8) -> Result<Self, ValueError> {
        Ok(match b {
            0 => Format::Raw,
            1 => Format::Json,
            2 => Format::MessagePack,
            3 => Format::Postcard,
            4 => Format::Plugin,
            _ => return Err(ValueError::Corrupt("unknown format byte")),
        })
    }
}

/// Which [`Value`] variant a stored value holds. Stored as one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum ValueKind {
    String = 1,
    Integer = 2,
    Float = 3,
    Bool = 4,
    Json = 5,
    Bytes = 6,
    Document = 7,
    Serialized = 8,
    Custom = 9,
}

impl ValueKind {
    fn from_byte(b: u8) -> Result<Self, ValueError> {
        Ok(match b {
            1 => ValueKind::String,
            2 => ValueKind::Integer,
            3 => ValueKind::Float,
            4 => ValueKind::Bool,
            5 => ValueKind::Json,
            6 => ValueKind::Bytes,
            7 => ValueKind::Document,
            8 => ValueKind::Serialized,
            9 => ValueKind::Custom,
            _ => return Err(ValueError::Corrupt("unknown kind byte")),
        })
    }

    /// Every kind, in byte order.
    pub const ALL: [ValueKind; 9] = [
        ValueKind::String,
        ValueKind::Integer,
        ValueKind::Float,
        ValueKind::Bool,
        ValueKind::Json,
        ValueKind::Bytes,
        ValueKind::Document,
        ValueKind::Serialized,
        ValueKind::Custom,
    ];

    /// The kind whose [`ValueKind::name`] is `name`.
    pub fn from_name(name: &str) -> Option<ValueKind> {
        ValueKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// A short lower-case name, used in errors.
    pub const fn name(self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::Integer => "integer",
            ValueKind::Float => "float",
            ValueKind::Bool => "bool",
            ValueKind::Json => "json",
            ValueKind::Bytes => "bytes",
            ValueKind::Document => "document",
            ValueKind::Serialized => "serialized",
            ValueKind::Custom => "custom",
        }
    }
}

/// How [`Value::Json`] values are stored. Reads accept either, whatever the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum JsonEncoding {
    /// JSON text: readable in a hex dump, larger.
    #[default]
    Text,
    /// MessagePack: smaller and faster to decode.
    MessagePack,
}

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("value is {size} bytes encoded; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("content type must be 1 to 255 bytes of printable ASCII")]
    InvalidContentType,
    #[error("codec name must be 1 to 64 ASCII letters, digits, '_', '-' or '.'")]
    InvalidCodecName,
    #[error("cannot encode value as {format:?}: {message}")]
    Encode { format: Format, message: String },
    #[error("cannot decode {format:?} value: {message}")]
    Decode { format: Format, message: String },
    #[error("stored value is corrupt: {0}")]
    Corrupt(&'static str),
    #[error(
        "a {actual} value cannot be deserialized into a Rust type; only json and serialized values can"
    )]
    NotDeserializable { actual: &'static str },
}

/// A typed value, as callers put and get it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// UTF-8 text.
    String(String),
    /// A signed 64-bit integer; the only kind `increment` works on (besides decimal strings).
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    Bool(bool),
    /// A JSON document, stored as JSON text or MessagePack (see [`JsonEncoding`]).
    Json(serde_json::Value),
    /// Opaque bytes.
    Bytes(Vec<u8>),
    /// Document or image bytes with their content type, e.g. `image/png`.
    Document {
        content_type: String,
        data: Vec<u8>,
    },
    /// A Rust value serialized with serde in `format` (JSON, MessagePack or postcard); read it
    /// back with [`Value::deserialize`].
    Serialized {
        format: Format,
        data: Vec<u8>,
    },
    /// Bytes owned by the named codec plugin.
    Custom {
        codec: String,
        data: Vec<u8>,
    },
}

impl Value {
    /// Serializes `value` with serde in `format` (`Json`, `MessagePack` or `Postcard`).
    pub fn serialize<T: Serialize + ?Sized>(
        format: Format,
        value: &T,
    ) -> Result<Value, ValueError> {
        let encode_err = |message: String| ValueError::Encode { format, message };
        let data = match format {
            Format::Json => serde_json::to_vec(value).map_err(|e| encode_err(e.to_string()))?,
            Format::MessagePack => {
                rmp_serde::to_vec_named(value).map_err(|e| encode_err(e.to_string()))?
            }
            Format::Postcard => {
                postcard::to_allocvec(value).map_err(|e| encode_err(e.to_string()))?
            }
            Format::Raw | Format::Plugin => {
                return Err(encode_err(
                    "serde values use Json, MessagePack or Postcard".into(),
                ));
            }
        };
        Ok(Value::Serialized { format, data })
    }

    /// Deserializes a `Json` or `Serialized` value into `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        let decode_err = |format, message: String| ValueError::Decode { format, message };
        match self {
            Value::Json(json) => {
                T::deserialize(json).map_err(|e| decode_err(Format::Json, e.to_string()))
            }
            Value::Serialized { format, data } => match format {
                Format::Json => {
                    serde_json::from_slice(data).map_err(|e| decode_err(*format, e.to_string()))
                }
                Format::MessagePack => {
                    rmp_serde::from_slice(data).map_err(|e| decode_err(*format, e.to_string()))
                }
                Format::Postcard => {
                    postcard::from_bytes(data).map_err(|e| decode_err(*format, e.to_string()))
                }
                _ => Err(decode_err(*format, "not a serde format".into())),
            },
            other => Err(ValueError::NotDeserializable {
                actual: other.kind().name(),
            }),
        }
    }

    /// The kind of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::String(_) => ValueKind::String,
            Value::Integer(_) => ValueKind::Integer,
            Value::Float(_) => ValueKind::Float,
            Value::Bool(_) => ValueKind::Bool,
            Value::Json(_) => ValueKind::Json,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Document { .. } => ValueKind::Document,
            Value::Serialized { .. } => ValueKind::Serialized,
            Value::Custom { .. } => ValueKind::Custom,
        }
    }

    /// Text of a `String` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// An `Integer` value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// Bytes of a `Bytes`, `Document`, `Serialized` or `Custom` value, or the text of a `String`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(s) => Some(s.as_bytes()),
            Value::Bytes(b)
            | Value::Document { data: b, .. }
            | Value::Serialized { data: b, .. }
            | Value::Custom { data: b, .. } => Some(b),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Bytes(b.to_vec())
    }
}
impl From<serde_json::Value> for Value {
    fn from(j: serde_json::Value) -> Self {
        Value::Json(j)
    }
}

/// The checksum kept beside every stored value: XXH3-64 of its bytes.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Longest stored form (header included) kept inside a [`StoredValue`] instead of behind a
/// shared pointer: 22 bytes fill the 24 a `StoredValue` takes anyway beside its tag and length.
pub const INLINE_VALUE_LEN: usize = 22;

/// An integer's stored form: its header, then the number in 8 little-endian bytes.
const INTEGER_LEN: usize = HEADER_LEN + 8;
const INTEGER_HEADER: [u8; HEADER_LEN] = [ValueKind::Integer as u8, Format::Raw as u8];
// `StoredValue::from_integer` and the fast path of `StoredValue::integer` rely on it.
const _: () = assert!(INTEGER_LEN <= INLINE_VALUE_LEN);

/// A value in its stored form (`[kind][format][payload]`), shared without copying between the
/// keyspace, change events and log records.
///
/// Stored forms of up to [`INLINE_VALUE_LEN`] bytes (counters, flags, short strings) live inside
/// the `StoredValue` itself: no allocation to make one, and none to free. The history keeps every
/// value a change replaced for `history_limit` further writes; with a shared pointer, letting it
/// go then was an atomic decrement on memory last touched thousands of writes before, which the
/// CPU cannot overlap with anything (7% of the Redis port's pipelined INCR profile). Longer forms
/// are shared: a clone raises a reference count.
#[derive(Clone)]
pub struct StoredValue(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_VALUE_LEN],
    },
    Shared(Arc<[u8]>),
}

impl PartialEq for StoredValue {
    fn eq(&self, other: &StoredValue) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for StoredValue {}

impl std::hash::Hash for StoredValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredValue")
            .field("kind", &self.kind().map(ValueKind::name))
            .field("len", &self.len())
            .finish()
    }
}

impl StoredValue {
    /// True when both are known to hold the same bytes without comparing long ones: clones of
    /// one another, or short values (kept inline) with equal bytes.
    #[inline]
    pub fn same_bytes(&self, other: &StoredValue) -> bool {
        match (&self.0, &other.0) {
            (Repr::Shared(a), Repr::Shared(b)) => Arc::ptr_eq(a, b),
            (Repr::Inline { .. }, Repr::Inline { .. }) => self.as_bytes() == other.as_bytes(),
            _ => false,
        }
    }

    /// A stored form from its bytes, inline when short. Unchecked: callers check the header.
    fn from_slice(bytes: &[u8]) -> StoredValue {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE_VALUE_LEN => {
                let mut inline = [0; INLINE_VALUE_LEN];
                inline[..bytes.len()].copy_from_slice(bytes);
                StoredValue(Repr::Inline { len, bytes: inline })
            }
            _ => StoredValue(Repr::Shared(Arc::from(bytes))),
        }
    }

    /// The stored form of a raw-format value (`[kind][Raw][payload]`), built in place when short.
    fn raw(kind: ValueKind, payload: &[u8]) -> StoredValue {
        let len = HEADER_LEN + payload.len();
        match u8::try_from(len) {
            Ok(short) if len <= INLINE_VALUE_LEN => {
                let mut bytes = [0; INLINE_VALUE_LEN];
                bytes[0] = kind as u8;
                bytes[1] = Format::Raw as u8;
                bytes[HEADER_LEN..len].copy_from_slice(payload);
                StoredValue(Repr::Inline { len: short, bytes })
            }
            _ => {
                let mut out = Vec::with_capacity(len);
                raw(&mut out, kind, payload);
                StoredValue(Repr::Shared(Arc::from(out)))
            }
        }
    }

    /// Encodes a value. `max_size` bounds the encoded size, header included.
    pub fn encode(value: &Value, json: JsonEncoding, max_size: usize) -> Result<Self, ValueError> {
        let (kind, payload): (ValueKind, &[u8]) = match value {
            Value::String(s) => (ValueKind::String, s.as_bytes()),
            Value::Integer(i) => return Self::from_integer(*i, max_size),
            Value::Float(f) => {
                return Self::raw_within(ValueKind::Float, &f.to_le_bytes(), max_size);
            }
            Value::Bool(b) => (ValueKind::Bool, if *b { &[1] } else { &[0] }),
            Value::Bytes(b) => (ValueKind::Bytes, b),
            _ => return Self::encode_formatted(value, json, max_size),
        };
        Self::raw_within(kind, payload, max_size)
    }

    /// [`StoredValue::raw`] within `max_size`.
    pub(crate) fn raw_within(
        kind: ValueKind,
        payload: &[u8],
        max_size: usize,
    ) -> Result<Self, ValueError> {
        let size = HEADER_LEN + payload.len();
        if size > max_size {
            return Err(ValueError::TooLarge {
                size,
                limit: max_size,
            });
        }
        Ok(Self::raw(kind, payload))
    }

    /// Encodes the kinds whose payload is not the value's own bytes.
    fn encode_formatted(
        value: &Value,
        json: JsonEncoding,
        max_size: usize,
    ) -> Result<Self, ValueError> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload_hint(value));
        let encode_err = |format, message: String| ValueError::Encode { format, message };
        match value {
            // `encode` builds these itself (inline when short) and never sends them here; they
            // are named, not matched by `_`, so a new variant has to be placed in one or the other.
            Value::String(_)
            | Value::Integer(_)
            | Value::Float(_)
            | Value::Bool(_)
            | Value::Bytes(_) => return Self::encode(value, json, max_size),
            Value::Json(j) => match json {
                JsonEncoding::Text => {
                    out.extend_from_slice(&[ValueKind::Json as u8, Format::Json as u8]);
                    serde_json::to_writer(&mut out, j)
                        .map_err(|e| encode_err(Format::Json, e.to_string()))?;
                }
                JsonEncoding::MessagePack => {
                    out.extend_from_slice(&[ValueKind::Json as u8, Format::MessagePack as u8]);
                    rmp_serde::encode::write(&mut out, j)
                        .map_err(|e| encode_err(Format::MessagePack, e.to_string()))?;
                }
            },
            Value::Document { content_type, data } => {
                let ok = !content_type.is_empty()
                    && content_type.len() <= MAX_CONTENT_TYPE_LEN
                    && content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
                if !ok {
                    return Err(ValueError::InvalidContentType);
                }
                out.extend_from_slice(&[ValueKind::Document as u8, Format::Raw as u8]);
                out.push(content_type.len() as u8);
                out.extend_from_slice(content_type.as_bytes());
                out.extend_from_slice(data);
            }
            Value::Serialized { format, data } => {
                if !matches!(
                    format,
                    Format::Json | Format::MessagePack | Format::Postcard
                ) {
                    return Err(encode_err(
                        *format,
                        "serde values use Json, MessagePack or Postcard".into(),
                    ));
                }
                out.extend_from_slice(&[ValueKind::Serialized as u8, *format as u8]);
                out.extend_from_slice(data);
            }
            Value::Custom { codec, data } => {
                let ok = !codec.is_empty()
                    && codec.len() <= MAX_CODEC_NAME_LEN
                    && codec
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !ok {
                    return Err(ValueError::InvalidCodecName);
                }
                out.extend_from_slice(&[ValueKind::Custom as u8, Format::Plugin as u8]);
                out.push(codec.len() as u8);
                out.extend_from_slice(codec.as_bytes());
                out.extend_from_slice(data);
            }
        }
        if out.len() > max_size {
            return Err(ValueError::TooLarge {
                size: out.len(),
                limit: max_size,
            });
        }
        Ok(if out.len() <= INLINE_VALUE_LEN {
            Self::from_slice(&out)
        } else {
            StoredValue(Repr::Shared(Arc::from(out)))
        })
    }

    /// Copies bytes that claim to be a stored value, checking the header.
    pub fn from_bytes(bytes: impl AsRef<[u8]>) -> Result<Self, ValueError> {
        let v = Self::from_slice(bytes.as_ref());
        v.kind()?;
        v.format()?;
        Ok(v)
    }

    /// The integer an Integer value holds, without building a [`Value`]; `None` for any other
    /// kind and for a damaged one (which [`StoredValue::decode`] then reports). INCR reads
    /// its counter this way on every call.
    pub(crate) fn integer(&self) -> Option<i64> {
        // The form `StoredValue::from_integer` makes, read without decoding the header.
        if let Repr::Inline { len, bytes } = &self.0
            && usize::from(*len) == INTEGER_LEN
            && let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>()
            && *header == INTEGER_HEADER
            && let Some(payload) = payload.first_chunk::<8>()
        {
            return Some(i64::from_le_bytes(*payload));
        }
        if self.kind().ok()? != ValueKind::Integer || self.format().is_err() {
            return None;
        }
        fixed(self.payload()).ok().map(i64::from_le_bytes)
    }

    /// What [`StoredValue::encode`] makes of `Value::Integer(n)`, built in place: the header
    /// and the eight bytes stored straight into the inline form, where the general path's
    /// size checks and slice copy cost an INCR about 40 instructions. Refused when `max_size`
    /// is below an integer's 10 bytes.
    #[inline]
    pub(crate) fn from_integer(n: i64, max_size: usize) -> Result<Self, ValueError> {
        if INTEGER_LEN > max_size {
            return Err(ValueError::TooLarge {
                size: INTEGER_LEN,
                limit: max_size,
            });
        }
        let mut bytes = [0; INLINE_VALUE_LEN];
        if let Some((header, payload)) = bytes.split_first_chunk_mut::<HEADER_LEN>()
            && let Some(payload) = payload.first_chunk_mut::<8>()
        {
            *header = INTEGER_HEADER;
            *payload = n.to_le_bytes();
        }
        Ok(StoredValue(Repr::Inline {
            len: INTEGER_LEN as u8,
            bytes,
        }))
    }

    /// Decodes the typed value.
    pub fn decode(&self) -> Result<Value, ValueError> {
        let kind = self.kind()?;
        let format = self.format()?;
        let p = self.payload();
        let decode_err = |message: String| ValueError::Decode { format, message };
        Ok(match kind {
            ValueKind::String => Value::String(
                std::str::from_utf8(p)
                    .map_err(|_| ValueError::Corrupt("string is not UTF-8"))?
                    .to_owned(),
            ),
            ValueKind::Integer => Value::Integer(i64::from_le_bytes(fixed(p)?)),
            ValueKind::Float => Value::Float(f64::from_le_bytes(fixed(p)?)),
            ValueKind::Bool => match p {
                [0] => Value::Bool(false),
                [1] => Value::Bool(true),
                _ => return Err(ValueError::Corrupt("bool is not 0 or 1")),
            },
            ValueKind::Json => Value::Json(match format {
                Format::Json => serde_json::from_slice(p).map_err(|e| decode_err(e.to_string()))?,
                Format::MessagePack => {
                    rmp_serde::from_slice(p).map_err(|e| decode_err(e.to_string()))?
                }
                _ => return Err(ValueError::Corrupt("json value with a non-json format")),
            }),
            ValueKind::Bytes => Value::Bytes(p.to_vec()),
            ValueKind::Document => {
                let (content_type, data) = split_name(p)?;
                Value::Document {
                    content_type: content_type.to_owned(),
                    data: data.to_vec(),
                }
            }
            ValueKind::Serialized => Value::Serialized {
                format,
                data: p.to_vec(),
            },
            ValueKind::Custom => {
                let (codec, data) = split_name(p)?;
                Value::Custom {
                    codec: codec.to_owned(),
                    data: data.to_vec(),
                }
            }
        })
    }

    /// Which variant this is.
    pub fn kind(&self) -> Result<ValueKind, ValueError> {
        ValueKind::from_byte(
            *self
                .as_bytes()
                .first()
                .ok_or(ValueError::Corrupt("empty value"))?,
        )
    }

    /// How the payload is encoded.
    pub fn format(&self) -> Result<Format, ValueError> {
        Format::from_byte(
            *self
                .as_bytes()
                .get(1)
                .ok_or(ValueError::Corrupt("missing format byte"))?,
        )
    }

    /// The encoded bytes after the two header bytes.
    pub fn payload(&self) -> &[u8] {
        self.as_bytes().get(HEADER_LEN..).unwrap_or_default()
    }

    /// The whole stored form, header included.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Shared(bytes) => bytes,
        }
    }

    /// Stored size in bytes, header included.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => usize::from(*len),
            Repr::Shared(bytes) => bytes.len(),
        }
    }

    /// Never true for a valid value (the header alone is two bytes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The MIME type of the value: the stored one for documents, a fixed one per kind otherwise.
    pub fn content_type(&self) -> Cow<'_, str> {
        let fixed = match self.kind() {
            Ok(ValueKind::String) => "text/plain; charset=utf-8",
            Ok(ValueKind::Json) => match self.format() {
                Ok(Format::MessagePack) => "application/msgpack",
                _ => "application/json",
            },
            Ok(ValueKind::Document) => {
                return match split_name(self.payload()) {
                    Ok((ct, _)) => Cow::Borrowed(ct),
                    Err(_) => Cow::Borrowed("application/octet-stream"),
                };
            }
            Ok(ValueKind::Serialized) => match self.format() {
                Ok(Format::Json) => "application/json",
                Ok(Format::MessagePack) => "application/msgpack",
                _ => "application/x-postcard",
            },
            Ok(ValueKind::Integer | ValueKind::Float | ValueKind::Bool) => {
                "application/x-statemesh-scalar"
            }
            _ => "application/octet-stream",
        };
        Cow::Borrowed(fixed)
    }
}

impl Serialize for StoredValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.as_bytes())
    }
}

impl<'de> Deserialize<'de> for StoredValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> serde::de::Visitor<'de> for BytesVisitor {
            type Value = StoredValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("stored value bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<StoredValue, E> {
                StoredValue::from_bytes(v).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StoredValue, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                StoredValue::from_bytes(bytes).map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

fn raw(out: &mut Vec<u8>, kind: ValueKind, payload: &[u8]) {
    out.push(kind as u8);
    out.push(Format::Raw as u8);
    out.extend_from_slice(payload);
}

fn payload_hint(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Bytes(b) | Value::Serialized { data: b, .. } => b.len(),
        Value::Document {
            content_type: n,
            data,
        }
        | Value::Custom { codec: n, data } => 1 + n.len() + data.len(),
        Value::Json(_) => 64,
        _ => 8,
    }
}

fn fixed(p: &[u8]) -> Result<[u8; 8], ValueError> {
    p.try_into()
        .map_err(|_| ValueError::Corrupt("number is not 8 bytes"))
}

/// Splits a `[len u8][name][data]` payload.
fn split_name(p: &[u8]) -> Result<(&str, &[u8]), ValueError> {
    let (&len, rest) = p
        .split_first()
        .ok_or(ValueError::Corrupt("missing name length"))?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err(ValueError::Corrupt("name runs past the value"));
    }
    let (name, data) = rest.split_at(len);
    let name = std::str::from_utf8(name).map_err(|_| ValueError::Corrupt("name is not UTF-8"))?;
    Ok((name, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn an_integer_built_in_place_is_the_general_encoding(n: i64) {
            let fast = StoredValue::from_integer(n, 16 << 20).unwrap();
            let general = StoredValue::raw_within(ValueKind::Integer, &n.to_le_bytes(), 16 << 20)
                .unwrap();
            proptest::prop_assert_eq!(fast.as_bytes(), general.as_bytes());
            proptest::prop_assert_eq!(fast.integer(), Some(n));
            proptest::prop_assert_eq!(fast.decode().unwrap(), Value::Integer(n));
            // A shared (not inline) integer is still read, by the general path.
            let mut bytes = vec![ValueKind::Integer as u8, Format::Raw as u8];
            bytes.extend_from_slice(&n.to_le_bytes());
            let shared = StoredValue(Repr::Shared(Arc::from(bytes)));
            proptest::prop_assert_eq!(shared.integer(), Some(n));
        }
    }

    #[test]
    fn only_an_integer_reads_as_one() {
        let limit = 16 << 20;
        assert_eq!(
            StoredValue::from_integer(7, 9),
            Err(ValueError::TooLarge { size: 10, limit: 9 })
        );
        for value in [
            Value::Float(7.0),
            Value::String("7".into()),
            Value::Bytes(7i64.to_le_bytes().to_vec()),
        ] {
            let stored = StoredValue::encode(&value, JsonEncoding::Text, limit).unwrap();
            assert_eq!(stored.integer(), None, "{value:?}");
        }
        // Eight payload bytes after a float's header: same length as an integer, other kind.
        let float = StoredValue::raw(ValueKind::Float, &1i64.to_le_bytes());
        assert_eq!(float.integer(), None);
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in ValueKind::ALL {
            assert_eq!(ValueKind::from_name(kind.name()), Some(kind));
            assert_eq!(ValueKind::from_byte(kind as u8), Ok(kind));
        }
        assert_eq!(ValueKind::from_name("String"), None);
    }

    fn roundtrip(v: Value, json: JsonEncoding) -> Value {
        StoredValue::encode(&v, json, 1 << 20)
            .unwrap()
            .decode()
            .unwrap()
    }

    /// The integer shortcut reads exactly what decoding reads, and nothing from other kinds
    /// or damaged integers.
    #[test]
    fn the_integer_shortcut_agrees_with_decode() {
        let values = [
            Value::Integer(0),
            Value::Integer(-42),
            Value::Integer(i64::MAX),
            Value::Integer(i64::MIN),
            Value::Float(1.5),
            Value::from("12"),
            Value::Bytes(vec![0; 8]),
            Value::Bool(true),
        ];
        for v in values {
            let stored = StoredValue::encode(&v, JsonEncoding::Text, 1 << 20).unwrap();
            let want = match stored.decode().unwrap() {
                Value::Integer(i) => Some(i),
                _ => None,
            };
            assert_eq!(stored.integer(), want, "{v:?}");
        }
        let short = StoredValue::from_slice(&[ValueKind::Integer as u8, Format::Raw as u8, 1, 2]);
        assert_eq!(short.integer(), None);
        assert!(short.decode().is_err());
        let bad_format =
            StoredValue::from_slice(&[ValueKind::Integer as u8, 0xee, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bad_format.integer(), None);
        assert!(bad_format.decode().is_err());
    }

    fn hash_of(v: &StoredValue) -> u64 {
        use std::hash::{BuildHasher, RandomState};
        thread_local!(static STATE: RandomState = RandomState::new());
        STATE.with(|s| s.hash_one(v))
    }

    /// Short stored forms are kept inline, longer ones shared; either way a value equals,
    /// hashes and decodes by its bytes alone, whichever form the other side is in.
    #[test]
    fn short_values_are_inline_and_behave_like_shared_ones() {
        for len in 0..40 {
            let text = "x".repeat(len);
            let v = StoredValue::encode(&Value::from(text.as_str()), JsonEncoding::Text, 1 << 20)
                .unwrap();
            assert_eq!(v.len(), len + HEADER_LEN);
            let inline = matches!(v.0, Repr::Inline { .. });
            assert_eq!(inline, v.len() <= INLINE_VALUE_LEN, "{len}");
            let copy = StoredValue::from_bytes(v.as_bytes()).unwrap();
            let shared = StoredValue(Repr::Shared(Arc::from(v.as_bytes())));
            for other in [&copy, &shared] {
                assert_eq!(other, &v);
                assert_eq!(hash_of(other), hash_of(&v));
                assert_eq!(other.decode().unwrap(), Value::from(text.as_str()));
            }
            // Inline copies are the same bytes; shared ones only when one is a clone.
            assert_eq!(copy.same_bytes(&v), inline);
            assert!(v.same_bytes(&v.clone()));
            let other_text =
                StoredValue::encode(&Value::from("y"), JsonEncoding::Text, 99).unwrap();
            assert!(!v.same_bytes(&other_text) && v != other_text);
            let wire = postcard::to_allocvec(&v).unwrap();
            assert_eq!(postcard::from_bytes::<StoredValue>(&wire).unwrap(), v);
        }
        // The formatted kinds land inline too when short.
        let json = StoredValue::encode(&Value::Json(serde_json::json!({})), JsonEncoding::Text, 99)
            .unwrap();
        assert!(matches!(json.0, Repr::Inline { .. }));
        assert_eq!(json.decode().unwrap(), Value::Json(serde_json::json!({})));
    }

    #[test]
    fn every_kind_roundtrips() {
        let values = vec![
            Value::from("héllo"),
            Value::Integer(-42),
            Value::Float(2.5),
            Value::Bool(true),
            Value::Bool(false),
            Value::Json(serde_json::json!({"a": [1, 2, {"b": null}], "c": "d"})),
            Value::Bytes(vec![0, 255, 7]),
            Value::Document {
                content_type: "image/png".into(),
                data: vec![137, 80, 78, 71],
            },
            Value::serialize(Format::Postcard, &(1u32, "x")).unwrap(),
            Value::Custom {
                codec: "geo.point".into(),
                data: vec![1, 2, 3],
            },
        ];
        for v in values {
            for enc in [JsonEncoding::Text, JsonEncoding::MessagePack] {
                assert_eq!(roundtrip(v.clone(), enc), v);
            }
        }
    }

    #[test]
    fn format_byte_follows_json_encoding() {
        let v = Value::Json(serde_json::json!({"k": 1}));
        let text = StoredValue::encode(&v, JsonEncoding::Text, 100).unwrap();
        let mp = StoredValue::encode(&v, JsonEncoding::MessagePack, 100).unwrap();
        assert_eq!(text.format().unwrap(), Format::Json);
        assert_eq!(text.payload(), br#"{"k":1}"#);
        assert_eq!(mp.format().unwrap(), Format::MessagePack);
        assert_eq!(mp.content_type(), "application/msgpack");
    }

    #[test]
    fn serde_formats_roundtrip_typed_values() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Msg {
            role: String,
            tokens: u32,
        }
        let m = Msg {
            role: "user".into(),
            tokens: 7,
        };
        for f in [Format::Json, Format::MessagePack, Format::Postcard] {
            let v = Value::serialize(f, &m).unwrap();
            let back = roundtrip(v, JsonEncoding::Text);
            assert_eq!(back.deserialize::<Msg>().unwrap(), m);
        }
        assert!(Value::serialize(Format::Raw, &m).is_err());
        assert!(matches!(
            Value::Integer(1).deserialize::<u32>(),
            Err(ValueError::NotDeserializable { actual: "integer" })
        ));
    }

    #[test]
    fn size_limit_counts_the_header() {
        let v = Value::Bytes(vec![0; 10]);
        assert!(StoredValue::encode(&v, JsonEncoding::Text, 12).is_ok());
        assert_eq!(
            StoredValue::encode(&v, JsonEncoding::Text, 11),
            Err(ValueError::TooLarge {
                size: 12,
                limit: 11
            })
        );
    }

    #[test]
    fn rejects_bad_names_and_corrupt_bytes() {
        let doc = Value::Document {
            content_type: String::new(),
            data: vec![],
        };
        assert_eq!(
            StoredValue::encode(&doc, JsonEncoding::Text, 99),
            Err(ValueError::InvalidContentType)
        );
        let c = Value::Custom {
            codec: "a b".into(),
            data: vec![],
        };
        assert_eq!(
            StoredValue::encode(&c, JsonEncoding::Text, 99),
            Err(ValueError::InvalidCodecName)
        );
        for bad in [
            &[][..],
            &[99, 0],
            &[1, 99],
            &[2, 0, 1],
            &[4, 0, 2],
            &[7, 0, 5, b'a'],
        ] {
            let r = StoredValue::from_bytes(bad).and_then(|v| v.decode());
            assert!(r.is_err(), "{bad:?} decoded");
        }
        let bad_utf8 = StoredValue::from_bytes(&[1u8, 0, 0xff][..]).unwrap();
        assert!(bad_utf8.decode().is_err());
    }

    #[test]
    fn checksum_changes_with_any_bit() {
        let v = StoredValue::encode(&Value::from("abc"), JsonEncoding::Text, 99).unwrap();
        let c = checksum(v.as_bytes());
        let mut bytes = v.as_bytes().to_vec();
        for i in 0..bytes.len() * 8 {
            bytes[i / 8] ^= 1 << (i % 8);
            assert_ne!(checksum(&bytes), c);
            bytes[i / 8] ^= 1 << (i % 8);
        }
    }
}
