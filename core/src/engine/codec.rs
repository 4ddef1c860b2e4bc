//! Codec checks of `Value::Custom` writes (see [`crate::codec`]).

use std::sync::Arc;

use super::Engine;
use crate::codec::{CodecRegistry, ValueCodec};
use crate::error::EngineError;
use crate::key::KeyRef;
use crate::value::Value;

impl Engine {
    /// Makes `codec` own the keys matching `pattern` (`namespace:path` glob): a `Value::Custom`
    /// put to such a key must name this codec and pass its `validate`, or it is refused with
    /// [`EngineError::Codec`] / [`EngineError::CodecMismatch`] and changes nothing. Other value
    /// kinds are not checked. The first registered pattern that matches a key wins. The codec is
    /// also registered by name, so custom values naming it are validated under any key.
    ///
    /// Codecs are not part of the state: snapshots and log records do not carry them, and replay
    /// never calls them (records hold the bytes a write produced). Register them again after
    /// [`Engine::restore`].
    pub fn register_codec(
        &mut self,
        pattern: &str,
        codec: Arc<dyn ValueCodec>,
    ) -> Result<(), EngineError> {
        let compiled = self.key_pattern(pattern)?;
        self.codecs.add_rule(pattern, compiled, codec);
        Ok(())
    }

    /// Replaces the whole codec registry.
    pub fn set_codecs(&mut self, codecs: CodecRegistry) {
        self.codecs = codecs;
    }

    /// The codec registry.
    pub fn codecs(&self) -> &CodecRegistry {
        &self.codecs
    }

    /// The registry, to add codecs by name or make it strict.
    pub fn codecs_mut(&mut self) -> &mut CodecRegistry {
        &mut self.codecs
    }

    /// Refuses a `Value::Custom` write that the key's codec (or the named codec) does not accept.
    pub(super) fn check_codec(&self, key: &KeyRef<'_>, value: &Value) -> Result<(), EngineError> {
        let Value::Custom { codec: name, data } = value else {
            return Ok(());
        };
        if self.codecs.is_empty() && !self.codecs.is_strict() {
            return Ok(());
        }
        let codec = match self.codecs.for_parts(&key.namespace, &key.path) {
            Some(owner) if owner.name() != name => {
                return Err(EngineError::CodecMismatch {
                    key: key.to_key_string(),
                    expected: owner.name().to_owned(),
                    actual: name.clone(),
                });
            }
            Some(owner) => owner,
            None => match self.codecs.named(name) {
                Some(codec) => codec,
                None if self.codecs.is_strict() => {
                    return Err(EngineError::UnknownCodec {
                        key: key.to_key_string(),
                        codec: name.clone(),
                    });
                }
                None => return Ok(()),
            },
        };
        codec.validate(data).map_err(|error| EngineError::Codec {
            key: key.to_key_string(),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::codec::{CodecError, CodecOp, JsonCodec, RawCodec, ValueCodec};
    use crate::{Engine, EngineConfig, EngineError, Timestamp, Value};

    fn custom(codec: &str, data: &[u8]) -> Value {
        Value::Custom {
            codec: codec.into(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn transactions_validate_custom_puts_too() {
        use crate::txn::{Isolation, Txn, TxnOp};
        let mut e = Engine::new(EngineConfig::default()).unwrap();
        e.register_codec("docs:**", Arc::new(JsonCodec)).unwrap();
        let now = Timestamp::from_millis(1);
        let txn = Txn::new()
            .then(TxnOp::put("docs:ok", custom("json", b"{}")))
            .then(TxnOp::put("docs:bad", custom("json", b"{broken")));
        assert!(matches!(e.txn(now, &txn), Err(EngineError::Codec { .. })));
        assert_eq!(e.revision(), 0, "nothing of the branch was applied");
        let id = e.begin_txn(now, Isolation::Serializable, 1_000).unwrap();
        assert!(matches!(
            e.txn_put(now, id, "docs:bad", &custom("json", b"{broken")),
            Err(EngineError::Codec { .. })
        ));
        e.txn_put(now, id, "docs:ok", &custom("json", b"{}"))
            .unwrap();
        e.commit_txn(now, id).unwrap();
        assert_eq!(e.revision(), 1);
    }

    #[test]
    fn registered_codec_validates_custom_puts() {
        let mut e = Engine::new(EngineConfig::default()).unwrap();
        e.register_codec("docs:**", Arc::new(JsonCodec)).unwrap();
        let now = Timestamp::from_millis(1);
        e.put(now, "docs:a", &custom("json", br#"{"x":1}"#))
            .unwrap();
        let rev = e.revision();
        let err = e
            .put(now, "docs:b", &custom("json", b"{broken"))
            .unwrap_err();
        assert!(matches!(
            err,
            EngineError::Codec {
                error: CodecError::Rejected {
                    op: CodecOp::Validate,
                    ..
                },
                ..
            }
        ));
        assert!(err.to_string().contains("docs:b"), "{err}");
        let err = e.put(now, "docs:c", &custom("raw", b"x")).unwrap_err();
        assert!(matches!(err, EngineError::CodecMismatch { .. }), "{err}");
        // Named codec outside its pattern; other kinds pass; unknown codecs pass unless strict.
        assert!(e.put(now, "other:a", &custom("json", b"nope")).is_err());
        e.put(now, "docs:plain", &Value::from("text")).unwrap();
        e.put(now, "other:b", &custom("geo", b"\x01")).unwrap();
        // multi_put and compare_and_swap check too, and refuse everything.
        let rev2 = e.revision();
        assert!(
            e.multi_put(
                now,
                &[
                    ("docs:m1", custom("json", b"1")),
                    ("docs:m2", custom("json", b"}"))
                ]
            )
            .is_err()
        );
        assert!(
            e.compare_and_swap(now, "docs:a", None, &custom("json", b"{"))
                .is_err()
        );
        assert_eq!(e.revision(), rev2);
        assert!(rev2 > rev);
        assert_eq!(e.get(now, "docs:m1").unwrap(), None);
        e.codecs_mut().set_strict(true);
        let err = e.put(now, "other:c", &custom("geo", b"\x01")).unwrap_err();
        assert!(matches!(err, EngineError::UnknownCodec { .. }), "{err}");
        e.codecs_mut().add(Arc::new(RawCodec));
        e.put(now, "other:c", &custom("raw", b"\x01")).unwrap();
        assert_eq!(
            e.codecs().rules().collect::<Vec<_>>(),
            [("docs:**", "json")]
        );
        assert_eq!(e.codecs().named("raw").map(|c| c.name()), Some("raw"));
    }

    #[test]
    fn bad_pattern_is_refused() {
        let mut e = Engine::new(EngineConfig::default()).unwrap();
        assert!(e.register_codec("docs:[", Arc::new(JsonCodec)).is_err());
        let c: Arc<dyn ValueCodec> = Arc::new(JsonCodec);
        assert!(format!("{c:?}").contains("json"));
    }
}
