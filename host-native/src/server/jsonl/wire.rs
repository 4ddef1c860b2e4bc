//! How values, write results, TTLs, metadata and change events look on the JSON-lines wire.
//! Shared by the server and [`crate::Client`], so both sides agree by construction.
//!
//! Plain JSON maps to the obvious kind (string, integer, float, bool; null and arrays are JSON
//! documents). Everything else is an object with exactly one key starting with `$` (a *tag*),
//! so a value is never ambiguous: a JSON document that itself has that shape, or a JSON scalar,
//! travels wrapped as `{"$json": ...}`. See docs/protocol.md.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value as Json};
use statemesh_core::{ChangeKind, Format, Metadata, Ttl, Value, WriteOp, WriteResult};

/// A value in its wire form, serialized without building an intermediate JSON tree.
pub(crate) struct WireValue<'a>(pub(crate) &'a Value);

impl Serialize for WireValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::String(text) => s.serialize_str(text),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f),
            // JSON has no NaN or infinities: they get a tag with a string.
            Value::Float(f) => tagged(s, "$float", &non_finite_name(*f)),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Json(json) if needs_json_tag(json) => tagged(s, "$json", json),
            Value::Json(json) => json.serialize(s),
            Value::Bytes(data) => tagged(s, "$bytes", &B64.encode(data)),
            Value::Document { content_type, data } => {
                let body =
                    serde_json::json!({"content_type": content_type, "data": B64.encode(data)});
                tagged(s, "$document", &body)
            }
            Value::Serialized { format, data } => {
                let body =
                    serde_json::json!({"format": format_name(*format), "data": B64.encode(data)});
                tagged(s, "$serialized", &body)
            }
            Value::Custom { codec, data } => {
                let body = serde_json::json!({"codec": codec, "data": B64.encode(data)});
                tagged(s, "$custom", &body)
            }
            other => Err(serde::ser::Error::custom(format!(
                "a {} value has no wire form",
                other.kind().name()
            ))),
        }
    }
}

fn tagged<S: Serializer, T: Serialize + ?Sized>(
    s: S,
    tag: &str,
    body: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry(tag, body)?;
    map.end()
}

fn non_finite_name(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

/// A JSON document that would read back as another kind (a scalar) or as a tag.
fn needs_json_tag(json: &Json) -> bool {
    match json {
        Json::Null | Json::Array(_) => false,
        Json::Object(map) => looks_tagged(map),
        Json::String(_) | Json::Number(_) | Json::Bool(_) => true,
    }
}

fn looks_tagged(map: &Map<String, Json>) -> bool {
    map.len() == 1 && map.keys().next().is_some_and(|k| k.starts_with('$'))
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Raw => "raw",
        Format::Json => "json",
        Format::MessagePack => "msgpack",
        Format::Postcard => "postcard",
        Format::Plugin => "plugin",
        _ => "unknown",
    }
}

fn format_from_name(name: &str) -> Result<Format, String> {
    Ok(match name {
        "raw" => Format::Raw,
        "json" => Format::Json,
        "msgpack" => Format::MessagePack,
        "postcard" => Format::Postcard,
        "plugin" => Format::Plugin,
        other => return Err(format!("unknown serialized format {other:?}")),
    })
}

/// Reads a value from its wire form. Takes the JSON by value so strings and documents move
/// into the value instead of being copied.
pub(crate) fn value_from_json(json: Json) -> Result<Value, String> {
    Ok(match json {
        Json::String(text) => Value::String(text),
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Integer(i)
            } else if n.is_u64() {
                return Err(format!("integer {n} does not fit a signed 64-bit integer"));
            } else {
                Value::Float(n.as_f64().ok_or("number out of range")?)
            }
        }
        Json::Null | Json::Array(_) => Value::Json(json),
        Json::Object(map) if looks_tagged(&map) => {
            let Some((tag, body)) = map.into_iter().next() else {
                return Err("empty tag".into());
            };
            from_tag(&tag, body)?
        }
        Json::Object(map) => Value::Json(Json::Object(map)),
    })
}

fn from_tag(tag: &str, body: Json) -> Result<Value, String> {
    Ok(match tag {
        "$json" => Value::Json(body),
        "$bytes" => Value::Bytes(base64_field(&body, "$bytes")?),
        "$float" => match &body {
            Json::Number(n) => Value::Float(n.as_f64().ok_or("bad $float")?),
            Json::String(s) => Value::Float(match s.as_str() {
                "NaN" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => return Err(format!("$float: expected NaN, inf or -inf, got {s:?}")),
            }),
            _ => return Err("$float takes a number or \"NaN\", \"inf\", \"-inf\"".into()),
        },
        "$document" => Value::Document {
            content_type: string_field(&body, "content_type", tag)?,
            data: base64_field(field(&body, "data", tag)?, "$document.data")?,
        },
        "$serialized" => Value::Serialized {
            format: format_from_name(&string_field(&body, "format", tag)?)?,
            data: base64_field(field(&body, "data", tag)?, "$serialized.data")?,
        },
        "$custom" => Value::Custom {
            codec: string_field(&body, "codec", tag)?,
            data: base64_field(field(&body, "data", tag)?, "$custom.data")?,
        },
        other => {
            return Err(format!(
                "unknown value tag {other:?}; a JSON object with one key starting with '$' must \
                 be wrapped as {{\"$json\": ...}}"
            ));
        }
    })
}

fn field<'a>(body: &'a Json, name: &str, tag: &str) -> Result<&'a Json, String> {
    body.get(name)
        .ok_or_else(|| format!("{tag} needs a {name:?} field"))
}

fn string_field(body: &Json, name: &str, tag: &str) -> Result<String, String> {
    field(body, name, tag)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{tag}.{name} must be a string"))
}

/// Bytes as the protocol carries them: standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The bytes of a base64 string field; `what` names it in the error.
pub(crate) fn base64_field(json: &Json, what: &str) -> Result<Vec<u8>, String> {
    let text = json
        .as_str()
        .ok_or_else(|| format!("{what} must be a base64 string"))?;
    B64.decode(text)
        .map_err(|e| format!("{what} is not valid base64: {e}"))
}

pub(crate) fn write_op_name(op: WriteOp) -> &'static str {
    match op {
        WriteOp::Create => "create",
        WriteOp::Update => "update",
        WriteOp::Delete => "delete",
        WriteOp::Batch => "batch",
        WriteOp::Noop => "noop",
        _ => "other",
    }
}

pub(crate) fn write_op_from_name(name: &str) -> Option<WriteOp> {
    Some(match name {
        "create" => WriteOp::Create,
        "update" => WriteOp::Update,
        "delete" => WriteOp::Delete,
        "batch" => WriteOp::Batch,
        "noop" => WriteOp::Noop,
        _ => return None,
    })
}

/// A write result on the wire; a struct rather than a JSON tree, since every write sends one.
#[derive(serde::Serialize)]
pub(crate) struct WireWrite {
    op: &'static str,
    affected: u64,
    version: u64,
    revision: u64,
    latency_us: u64,
}

pub(crate) fn write_result(r: &WriteResult) -> WireWrite {
    WireWrite {
        op: write_op_name(r.op),
        affected: r.affected,
        version: r.version,
        revision: r.revision,
        latency_us: u64::try_from(r.latency.as_micros()).unwrap_or(u64::MAX),
    }
}

pub(crate) fn ttl(ttl: &Ttl) -> Json {
    match ttl {
        Ttl::Persistent => serde_json::json!({"persistent": true}),
        Ttl::Expires { at, remaining_ms } => serde_json::json!({
            "persistent": false, "expires_at": at.as_millis(), "remaining_ms": remaining_ms,
        }),
    }
}

pub(crate) fn metadata(m: &Metadata) -> Json {
    serde_json::json!({
        "created_at": m.created_at.as_millis(),
        "updated_at": m.updated_at.as_millis(),
        "expires_at": m.expires_at.map(|t| t.as_millis()),
        "version": m.version,
        "create_revision": m.create_revision,
        "mod_revision": m.mod_revision,
        // As hex: a 64-bit checksum does not survive JavaScript's numbers.
        "checksum": format!("{:016x}", m.checksum),
        "size": m.size,
        "kind": m.kind.map(|k| k.name()),
        "content_type": m.content_type,
        "user": m.user,
    })
}

pub(crate) fn change_kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Create => "create",
        ChangeKind::Update => "update",
        ChangeKind::Metadata => "metadata",
        ChangeKind::Delete => "delete",
        ChangeKind::Expire => "expire",
        ChangeKind::Evict => "evict",
        _ => "other",
    }
}

pub(crate) fn change_kind_from_name(name: &str) -> Option<ChangeKind> {
    Some(match name {
        "create" => ChangeKind::Create,
        "update" => ChangeKind::Update,
        "metadata" => ChangeKind::Metadata,
        "delete" => ChangeKind::Delete,
        "expire" => ChangeKind::Expire,
        "evict" => ChangeKind::Evict,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: Value) -> Value {
        let text = serde_json::to_string(&WireValue(&v)).expect("serialize");
        value_from_json(serde_json::from_str(&text).expect("parse")).expect("decode")
    }

    #[test]
    fn every_kind_round_trips_unambiguously() {
        let cases = [
            Value::from("text"),
            Value::from(-7i64),
            Value::from(3.0f64),
            Value::from(0.5f64),
            Value::Float(f64::INFINITY),
            Value::from(true),
            Value::Json(serde_json::json!(null)),
            Value::Json(serde_json::json!([1, "a"])),
            Value::Json(serde_json::json!({"a": 1, "b": [true]})),
            // Shapes that would otherwise read back as another kind:
            Value::Json(serde_json::json!("text")),
            Value::Json(serde_json::json!(12)),
            Value::Json(serde_json::json!({"$bytes": "AA=="})),
            Value::Bytes(vec![0, 255, 7]),
            Value::Document {
                content_type: "image/png".into(),
                data: vec![1, 2],
            },
            Value::Serialized {
                format: Format::Postcard,
                data: vec![9],
            },
            Value::Custom {
                codec: "c".into(),
                data: vec![],
            },
        ];
        for v in cases {
            assert_eq!(round_trip(v.clone()), v);
        }
        assert!(matches!(round_trip(Value::Float(f64::NAN)), Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn bad_tags_and_numbers_are_refused() {
        assert!(value_from_json(serde_json::json!({"$nope": 1})).is_err());
        assert!(value_from_json(serde_json::json!({"$bytes": "%%"})).is_err());
        assert!(value_from_json(serde_json::json!(u64::MAX)).is_err());
        assert!(value_from_json(serde_json::json!({"$document": {"data": ""}})).is_err());
    }
}
