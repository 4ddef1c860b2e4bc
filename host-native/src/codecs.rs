//! Value codecs on the native store: registration on the builder, and helpers that encode,
//! decode and render `Value::Custom` values through the registered codecs (see
//! docs/plugins.md). Codec calls made by these helpers run outside the store's lock; the
//! validation of a put runs inside the engine, under the write lock, bounded by the codec's own
//! limits (a wasm plugin's fuel).

use std::sync::Arc;

use statemesh_core::codec::{CodecError, ValueCodec};
use statemesh_core::value::JsonValue;
use statemesh_core::{Engine, EngineError, Value, WriteResult};

use crate::builder::StoreBuilder;
use crate::error::Result;
use crate::store::Store;

impl StoreBuilder {
    /// Makes `codec` own the keys matching `pattern` (`namespace:path` glob, e.g. `places:**`):
    /// `Value::Custom` puts to them must name the codec and pass its `validate`, or they are
    /// refused ([`EngineError::Codec`], [`EngineError::CodecMismatch`]) and change nothing. The
    /// codec is also known by name everywhere. Earlier registrations win where patterns overlap.
    /// A bad pattern fails the open.
    pub fn codec(mut self, pattern: &str, codec: Arc<dyn ValueCodec>) -> Self {
        self.codecs.push((pattern.to_owned(), codec));
        self
    }

    /// Refuse `Value::Custom` puts that name no registered codec (off by default: such values
    /// are stored unchecked).
    pub fn strict_codecs(mut self, yes: bool) -> Self {
        self.strict_codecs = yes;
        self
    }
}

/// Registers the builder's codecs with a new engine.
pub(crate) fn install(builder: &StoreBuilder, engine: &mut Engine) -> Result<()> {
    for (pattern, codec) in &builder.codecs {
        engine.register_codec(pattern, Arc::clone(codec))?;
    }
    engine.codecs_mut().set_strict(builder.strict_codecs);
    Ok(())
}

fn codec_error(key: &str, error: CodecError) -> crate::Error {
    crate::Error::Engine(EngineError::Codec {
        key: key.to_owned(),
        error,
    })
}

impl Store {
    /// The codec that owns `key` (by pattern), if any.
    pub fn codec_for_key(&self, key: &str) -> Result<Option<Arc<dyn ValueCodec>>> {
        self.read_engine(|e| {
            let k = e.config().keys.parse(key)?;
            Ok(e.codecs().for_key(&k.to_key_string()).cloned())
        })?
    }

    /// The codec registered under `name`, if any.
    pub fn codec(&self, name: &str) -> Result<Option<Arc<dyn ValueCodec>>> {
        self.read_engine(|e| e.codecs().named(name).cloned())
    }

    fn owner(&self, key: &str) -> Result<Arc<dyn ValueCodec>> {
        self.codec_for_key(key)?
            .ok_or_else(|| crate::Error::NoCodec {
                key: key.to_owned(),
            })
    }

    fn named_codec<'v>(&self, value: &'v Value) -> Result<(Arc<dyn ValueCodec>, &'v [u8])> {
        let Value::Custom { codec, data } = value else {
            return Err(crate::Error::Engine(EngineError::WrongType {
                key: String::new(),
                expected: "custom",
                actual: value.kind().name(),
            }));
        };
        let found = self.codec(codec)?.ok_or_else(|| {
            crate::Error::Engine(EngineError::UnknownCodec {
                key: String::new(),
                codec: codec.clone(),
            })
        })?;
        Ok((found, data))
    }

    /// Encodes `input` (the codec's input form) with the codec that owns `key`, into a
    /// `Value::Custom` ready to put.
    pub fn encode_custom(&self, key: &str, input: &[u8]) -> Result<Value> {
        let codec = self.owner(key)?;
        let data = codec.encode(input).map_err(|e| codec_error(key, e))?;
        Ok(Value::Custom {
            codec: codec.name().to_owned(),
            data,
        })
    }

    /// Encodes `input` with the codec that owns `key` and puts the result (validated again by
    /// the engine, like every custom put).
    pub async fn put_custom(&self, key: &str, input: &[u8]) -> Result<WriteResult> {
        let value = self.encode_custom(key, input)?;
        self.put(key, value).await
    }

    /// The input form of `key`'s custom value, decoded by its codec; `None` if the key is absent.
    pub async fn get_decoded(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(value) => self.decode_custom(&value).map(Some),
        }
    }

    /// Decodes a `Value::Custom` with the codec it names.
    pub fn decode_custom(&self, value: &Value) -> Result<Vec<u8>> {
        let (codec, data) = self.named_codec(value)?;
        codec.decode(data).map_err(|e| codec_error("", e))
    }

    /// Searchable text of a value: a custom value's `to_text`, a string's text, a JSON
    /// document's strings; `None` for other kinds or when the codec has no text.
    pub fn to_text(&self, value: &Value) -> Result<Option<String>> {
        match value {
            Value::String(s) => Ok(Some(s.clone())),
            Value::Json(j) => Ok(statemesh_core::codec::json_text(j)),
            Value::Custom { .. } => {
                let (codec, data) = self.named_codec(value)?;
                codec.to_text(data).map_err(|e| codec_error("", e))
            }
            _ => Ok(None),
        }
    }

    /// A JSON view of a custom value (its codec's `to_json`), or of a JSON value itself.
    pub fn to_json(&self, value: &Value) -> Result<Option<JsonValue>> {
        match value {
            Value::Json(j) => Ok(Some(j.clone())),
            Value::Custom { .. } => {
                let (codec, data) = self.named_codec(value)?;
                codec.to_json(data).map_err(|e| codec_error("", e))
            }
            _ => Ok(None),
        }
    }
}
