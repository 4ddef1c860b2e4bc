//! Value codecs: how a custom value type becomes stored bytes and back.
//!
//! A [`ValueCodec`] owns the bytes of [`Value::Custom`](crate::Value::Custom) values that name it.
//! It turns the value's *input form* (whatever the codec documents: JSON text, CSV, ...) into
//! its *stored form* (`encode`) and back (`decode`), checks stored bytes (`validate`), and may
//! expose text for full-text indexing (`to_text`) and a JSON view for display (`to_json`).
//!
//! Core only defines the trait and a [`CodecRegistry`] (codec per key pattern, and by name); the
//! engine consults it for `Value::Custom` puts (see [`Engine::register_codec`]). Built-in codecs
//! live here ([`JsonCodec`], [`MessagePackCodec`], [`PostcardCodec`], [`RawCodec`]); sandboxed
//! wasm plugins come from the `statemesh-wasmtime` adapter (docs/plugins.md).
//!
//! [`Engine::register_codec`]: crate::Engine::register_codec

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};

use crate::engine::KeyPattern;
use crate::value::JsonValue;

/// Send + Sync on native (stores share codecs between threads); nothing on wasm, where a codec
/// may hold JavaScript handles.
#[cfg(not(target_family = "wasm"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_family = "wasm"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
/// Send + Sync on native (stores share codecs between threads); nothing on wasm, where a codec
/// may hold JavaScript handles.
#[cfg(target_family = "wasm")]
pub trait MaybeSendSync {}
#[cfg(target_family = "wasm")]
impl<T: ?Sized> MaybeSendSync for T {}

/// A value codec. Every method works on bytes; errors are [`CodecError`]s and never panics.
pub trait ValueCodec: MaybeSendSync {
    /// The codec's name, as [`Value::Custom`](crate::Value::Custom) values name it (1 to 64 ASCII
    /// letters, digits, `_`, `-` or `.`).
    fn name(&self) -> &str;
    /// Checks stored bytes; `Ok` means [`decode`](Self::decode) would accept them.
    fn validate(&self, data: &[u8]) -> Result<(), CodecError>;
    /// Input form -> stored form.
    fn encode(&self, input: &[u8]) -> Result<Vec<u8>, CodecError>;
    /// Stored form -> input form.
    fn decode(&self, data: &[u8]) -> Result<Vec<u8>, CodecError>;
    /// Text to index for full-text search; `None` when the value has none.
    fn to_text(&self, data: &[u8]) -> Result<Option<String>, CodecError> {
        let _ = data;
        Ok(None)
    }
    /// A JSON view for display; `None` when the codec has none.
    fn to_json(&self, data: &[u8]) -> Result<Option<JsonValue>, CodecError> {
        let _ = data;
        Ok(None)
    }
}

impl fmt::Debug for dyn ValueCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueCodec")
            .field("name", &self.name())
            .finish()
    }
}

/// Which codec operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecOp {
    Describe,
    Validate,
    Encode,
    Decode,
    ToText,
    ToJson,
}

impl CodecOp {
    /// The operation's name, as the plugin ABI exports it.
    pub const fn name(self) -> &'static str {
        match self {
            CodecOp::Describe => "describe",
            CodecOp::Validate => "validate",
            CodecOp::Encode => "encode",
            CodecOp::Decode => "decode",
            CodecOp::ToText => "to_text",
            CodecOp::ToJson => "to_json",
        }
    }
}

impl fmt::Display for CodecOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a codec call failed. The sandbox variants (fuel, memory, output, trap, bad output) come
/// from plugin hosts; `Rejected` is the codec's own answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec refused the bytes (invalid input or stored value).
    #[error("codec {codec} refused {op}: {message}")]
    Rejected {
        codec: String,
        op: CodecOp,
        message: String,
    },
    /// The codec does not implement this operation.
    #[error("codec {codec} does not support {op}")]
    Unsupported { codec: String, op: CodecOp },
    /// The call ran out of fuel (its instruction budget): it loops or is too slow.
    #[error(
        "codec {codec} exceeded its fuel budget of {fuel} in {op} (a loop or a very slow call)"
    )]
    OutOfFuel {
        codec: String,
        op: CodecOp,
        fuel: u64,
    },
    /// The call ran past its time limit.
    #[error("codec {codec} exceeded its time limit of {millis} ms in {op}")]
    Timeout {
        codec: String,
        op: CodecOp,
        millis: u64,
    },
    /// The plugin tried to grow its linear memory past the cap.
    #[error(
        "codec {codec} tried to grow its memory to {requested} bytes in {op}; the cap is {limit}"
    )]
    MemoryLimit {
        codec: String,
        op: CodecOp,
        requested: u64,
        limit: u64,
    },
    /// The plugin returned more bytes than the output cap allows.
    #[error("codec {codec} returned {size} bytes from {op}; the output cap is {limit}")]
    OutputTooLarge {
        codec: String,
        op: CodecOp,
        size: u64,
        limit: u64,
    },
    /// The input is larger than the plugin host accepts.
    #[error("input of {size} bytes to codec {codec} exceeds the cap of {limit}")]
    InputTooLarge {
        codec: String,
        size: u64,
        limit: u64,
    },
    /// The plugin returned something the ABI does not allow (a pointer outside its memory, an
    /// unknown status byte, text that is not UTF-8, JSON that does not parse).
    #[error("codec {codec} returned invalid output from {op}: {message}")]
    BadOutput {
        codec: String,
        op: CodecOp,
        message: String,
    },
    /// The plugin trapped (a panic, an out-of-bounds access, `unreachable`, a stack overflow).
    #[error("codec {codec} trapped in {op}: {message}")]
    Trap {
        codec: String,
        op: CodecOp,
        message: String,
    },
    /// The plugin could not be (re)instantiated.
    #[error("codec {codec} is unavailable: {message}")]
    Unavailable { codec: String, message: String },
}

/// Codecs by key pattern and by name. Cloning shares the codecs.
#[derive(Clone, Default)]
pub struct CodecRegistry {
    rules: Vec<(String, KeyPattern, Arc<dyn ValueCodec>)>,
    by_name: BTreeMap<String, Arc<dyn ValueCodec>>,
    strict: bool,
}

impl fmt::Debug for CodecRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecRegistry")
            .field(
                "rules",
                &self
                    .rules
                    .iter()
                    .map(|(p, _, c)| (p.as_str(), c.name()))
                    .collect::<Vec<_>>(),
            )
            .field("codecs", &self.by_name.keys().collect::<Vec<_>>())
            .field("strict", &self.strict)
            .finish()
    }
}

impl CodecRegistry {
    pub(crate) fn add_rule(&mut self, text: &str, pattern: KeyPattern, codec: Arc<dyn ValueCodec>) {
        self.add(Arc::clone(&codec));
        self.rules.push((text.to_owned(), pattern, codec));
    }

    /// Registers a codec by name only (a later codec of the same name replaces it).
    pub fn add(&mut self, codec: Arc<dyn ValueCodec>) {
        self.by_name.insert(codec.name().to_owned(), codec);
    }

    /// Strict registries refuse `Value::Custom` puts naming a codec they do not hold.
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    /// Whether unknown codec names are refused.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The codec whose pattern first matches `key` (written form `namespace:path`), in
    /// registration order.
    pub fn for_key(&self, key: &str) -> Option<&Arc<dyn ValueCodec>> {
        let (ns, path) = crate::key::split_namespace(key);
        self.for_parts(ns, path)
    }

    /// [`for_key`](Self::for_key) for a key given as namespace and path.
    pub fn for_parts(&self, namespace: &str, path: &str) -> Option<&Arc<dyn ValueCodec>> {
        self.rules
            .iter()
            .find(|(_, p, _)| p.matches_parts(namespace, path))
            .map(|(_, _, c)| c)
    }

    /// The codec registered under `name`.
    pub fn named(&self, name: &str) -> Option<&Arc<dyn ValueCodec>> {
        self.by_name.get(name)
    }

    /// True when no codec is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The patterns and the names of their codecs, in registration order.
    pub fn rules(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.rules.iter().map(|(p, _, c)| (p.as_str(), c.name()))
    }
}

fn rejected(codec: &str, op: CodecOp, message: impl fmt::Display) -> CodecError {
    CodecError::Rejected {
        codec: codec.to_owned(),
        op,
        message: message.to_string(),
    }
}

/// Strings of a JSON document joined by spaces (object keys excluded): its searchable text.
pub fn json_text(value: &JsonValue) -> Option<String> {
    fn walk(v: &JsonValue, out: &mut String) {
        match v {
            JsonValue::String(s) => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(s);
            }
            JsonValue::Array(a) => a.iter().for_each(|v| walk(v, out)),
            JsonValue::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    walk(value, &mut out);
    (!out.is_empty()).then_some(out)
}

/// JSON text, stored compact. Input and stored forms are both JSON text.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl ValueCodec for JsonCodec {
    fn name(&self) -> &str {
        "json"
    }
    fn validate(&self, data: &[u8]) -> Result<(), CodecError> {
        serde_json::from_slice::<serde::de::IgnoredAny>(data)
            .map(|_| ())
            .map_err(|e| rejected("json", CodecOp::Validate, e))
    }
    fn encode(&self, input: &[u8]) -> Result<Vec<u8>, CodecError> {
        let v: JsonValue =
            serde_json::from_slice(input).map_err(|e| rejected("json", CodecOp::Encode, e))?;
        serde_json::to_vec(&v).map_err(|e| rejected("json", CodecOp::Encode, e))
    }
    fn decode(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.validate(data)?;
        Ok(data.to_vec())
    }
    fn to_text(&self, data: &[u8]) -> Result<Option<String>, CodecError> {
        Ok(self.to_json(data)?.as_ref().and_then(json_text))
    }
    fn to_json(&self, data: &[u8]) -> Result<Option<JsonValue>, CodecError> {
        serde_json::from_slice(data)
            .map(Some)
            .map_err(|e| rejected("json", CodecOp::ToJson, e))
    }
}

/// MessagePack (rmp-serde) of any JSON document. Input form: JSON text.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePackCodec;

impl MessagePackCodec {
    fn parse(data: &[u8], op: CodecOp) -> Result<JsonValue, CodecError> {
        let mut cursor = std::io::Cursor::new(data);
        let v: JsonValue =
            rmp_serde::from_read(&mut cursor).map_err(|e| rejected("msgpack", op, e))?;
        if cursor.position() != data.len() as u64 {
            return Err(rejected("msgpack", op, "trailing bytes"));
        }
        Ok(v)
    }
}

impl ValueCodec for MessagePackCodec {
    fn name(&self) -> &str {
        "msgpack"
    }
    fn validate(&self, data: &[u8]) -> Result<(), CodecError> {
        Self::parse(data, CodecOp::Validate).map(|_| ())
    }
    fn encode(&self, input: &[u8]) -> Result<Vec<u8>, CodecError> {
        let v: JsonValue =
            serde_json::from_slice(input).map_err(|e| rejected("msgpack", CodecOp::Encode, e))?;
        rmp_serde::to_vec(&v).map_err(|e| rejected("msgpack", CodecOp::Encode, e))
    }
    fn decode(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        let v = Self::parse(data, CodecOp::Decode)?;
        serde_json::to_vec(&v).map_err(|e| rejected("msgpack", CodecOp::Decode, e))
    }
    fn to_text(&self, data: &[u8]) -> Result<Option<String>, CodecError> {
        Ok(json_text(&Self::parse(data, CodecOp::ToText)?))
    }
    fn to_json(&self, data: &[u8]) -> Result<Option<JsonValue>, CodecError> {
        Self::parse(data, CodecOp::ToJson).map(Some)
    }
}

/// postcard bytes of the Rust type `T` (postcard is not self-describing, so the codec is typed).
/// Input form: JSON text of a `T`.
pub struct PostcardCodec<T> {
    name: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for PostcardCodec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostcardCodec")
            .field("name", &self.name)
            .finish()
    }
}

impl<T> PostcardCodec<T> {
    /// A postcard codec for `T` under `name`.
    pub fn new(name: impl Into<String>) -> Self {
        PostcardCodec {
            name: name.into(),
            _type: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> PostcardCodec<T> {
    fn parse(&self, data: &[u8], op: CodecOp) -> Result<T, CodecError> {
        let (v, rest) =
            postcard::take_from_bytes::<T>(data).map_err(|e| rejected(&self.name, op, e))?;
        if !rest.is_empty() {
            return Err(rejected(&self.name, op, "trailing bytes"));
        }
        Ok(v)
    }
}

impl<T: Serialize + DeserializeOwned> ValueCodec for PostcardCodec<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn validate(&self, data: &[u8]) -> Result<(), CodecError> {
        self.parse(data, CodecOp::Validate).map(|_| ())
    }
    fn encode(&self, input: &[u8]) -> Result<Vec<u8>, CodecError> {
        let v: T =
            serde_json::from_slice(input).map_err(|e| rejected(&self.name, CodecOp::Encode, e))?;
        postcard::to_allocvec(&v).map_err(|e| rejected(&self.name, CodecOp::Encode, e))
    }
    fn decode(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        let v = self.parse(data, CodecOp::Decode)?;
        serde_json::to_vec(&v).map_err(|e| rejected(&self.name, CodecOp::Decode, e))
    }
    fn to_text(&self, data: &[u8]) -> Result<Option<String>, CodecError> {
        Ok(self.to_json(data)?.as_ref().and_then(json_text))
    }
    fn to_json(&self, data: &[u8]) -> Result<Option<JsonValue>, CodecError> {
        let v = self.parse(data, CodecOp::ToJson)?;
        serde_json::to_value(&v)
            .map(Some)
            .map_err(|e| rejected(&self.name, CodecOp::ToJson, e))
    }
}

/// Raw bytes, stored as given. Text is the bytes when they are UTF-8.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl ValueCodec for RawCodec {
    fn name(&self) -> &str {
        "raw"
    }
    fn validate(&self, _data: &[u8]) -> Result<(), CodecError> {
        Ok(())
    }
    fn encode(&self, input: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(input.to_vec())
    }
    fn decode(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(data.to_vec())
    }
    fn to_text(&self, data: &[u8]) -> Result<Option<String>, CodecError> {
        Ok(std::str::from_utf8(data).ok().map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn json_codec_roundtrips_and_refuses_garbage() {
        let c = JsonCodec;
        let stored = c.encode(br#"{ "a" : ["x", 1, {"b": "y"}] }"#).unwrap();
        assert_eq!(stored, br#"{"a":["x",1,{"b":"y"}]}"#);
        c.validate(&stored).unwrap();
        assert_eq!(c.decode(&stored).unwrap(), stored);
        assert_eq!(c.to_text(&stored).unwrap().as_deref(), Some("x y"));
        assert!(matches!(
            c.validate(b"{nope"),
            Err(CodecError::Rejected {
                op: CodecOp::Validate,
                ..
            })
        ));
    }

    #[test]
    fn msgpack_codec_roundtrips() {
        let c = MessagePackCodec;
        let stored = c.encode(br#"{"t":"hello","n":3}"#).unwrap();
        c.validate(&stored).unwrap();
        let back: JsonValue = serde_json::from_slice(&c.decode(&stored).unwrap()).unwrap();
        assert_eq!(back, serde_json::json!({"t": "hello", "n": 3}));
        assert_eq!(c.to_text(&stored).unwrap().as_deref(), Some("hello"));
        let mut trailing = stored.clone();
        trailing.push(0xc0);
        assert!(c.validate(&trailing).is_err());
        assert!(c.validate(&[0xc1]).is_err());
    }

    #[test]
    fn postcard_codec_is_typed() {
        #[derive(Serialize, Deserialize)]
        struct Point {
            x: i32,
            label: String,
        }
        let c = PostcardCodec::<Point>::new("point");
        let stored = c.encode(br#"{"x": -3, "label": "origin"}"#).unwrap();
        c.validate(&stored).unwrap();
        assert_eq!(
            c.to_json(&stored).unwrap(),
            Some(serde_json::json!({"x": -3, "label": "origin"}))
        );
        assert!(c.validate(&stored[..stored.len() - 1]).is_err());
        assert!(c.encode(br#"{"x": "no"}"#).is_err());
    }

    #[test]
    fn raw_codec_exposes_utf8_text() {
        let c = RawCodec;
        assert_eq!(c.encode(b"abc").unwrap(), b"abc");
        assert_eq!(c.to_text(b"abc").unwrap().as_deref(), Some("abc"));
        assert_eq!(c.to_text(&[0xff]).unwrap(), None);
        assert_eq!(c.to_json(b"abc").unwrap(), None);
    }
}
