//! Values in JSON lines (import and export): JSON strings, integers, floats and booleans are the
//! store's scalar kinds, arrays/objects/null are JSON documents; bytes are `{"$bytes": base64}`.
//! A JSON document that is itself an object with a single `$`-key is wrapped as `{"$json": ...}`
//! so that it cannot be mistaken for a tagged value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value as Json, json};
use statemesh::Value;

pub(crate) fn to_json(value: &Value) -> Result<Json, String> {
    Ok(match value {
        Value::String(s) => Json::String(s.clone()),
        Value::Integer(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Bool(b) => json!(b),
        Value::Json(j) if is_tagged(j) => json!({ "$json": j }),
        Value::Json(j) => j.clone(),
        Value::Bytes(b) => json!({ "$bytes": B64.encode(b) }),
        Value::Document { content_type, data } => {
            json!({ "$document": { "content_type": content_type, "data": B64.encode(data) } })
        }
        Value::Custom { codec, data } => {
            json!({ "$custom": { "codec": codec, "data": B64.encode(data) } })
        }
        Value::Serialized { format, data } => {
            json!({ "$serialized": { "format": format, "data": B64.encode(data) } })
        }
        other => {
            return Err(format!(
                "{} values have no JSON-lines form yet",
                other.kind().name()
            ));
        }
    })
}

pub(crate) fn from_json(json: Json) -> Result<Value, String> {
    Ok(match json {
        Json::String(s) => Value::String(s),
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Integer(i),
            (None, Some(f)) => Value::Float(f),
            (None, None) => Value::Json(Json::Number(n)),
        },
        Json::Object(map) if is_tagged_map(&map) => from_tagged(map)?,
        other => Value::Json(other),
    })
}

fn from_tagged(map: Map<String, Json>) -> Result<Value, String> {
    let Some((tag, inner)) = map.into_iter().next() else {
        return Err("empty tagged value".into());
    };
    let bytes = |v: &Json, what: &str| -> Result<Vec<u8>, String> {
        let text = v
            .as_str()
            .ok_or_else(|| format!("{what} must be a base64 string"))?;
        B64.decode(text)
            .map_err(|e| format!("{what} is not valid base64: {e}"))
    };
    match tag.as_str() {
        "$bytes" => Ok(Value::Bytes(bytes(&inner, "$bytes")?)),
        "$json" => Ok(Value::Json(inner)),
        "$document" => Ok(Value::Document {
            content_type: inner
                .get("content_type")
                .and_then(Json::as_str)
                .ok_or("$document needs a content_type string")?
                .to_owned(),
            data: bytes(inner.get("data").unwrap_or(&Json::Null), "$document.data")?,
        }),
        "$custom" => Ok(Value::Custom {
            codec: inner
                .get("codec")
                .and_then(Json::as_str)
                .ok_or("$custom needs a codec string")?
                .to_owned(),
            data: bytes(inner.get("data").unwrap_or(&Json::Null), "$custom.data")?,
        }),
        "$serialized" => Ok(Value::Serialized {
            format: serde_json::from_value(inner.get("format").cloned().unwrap_or(Json::Null))
                .map_err(|e| format!("$serialized.format: {e}"))?,
            data: bytes(inner.get("data").unwrap_or(&Json::Null), "$serialized.data")?,
        }),
        other => Err(format!(
            "unknown tag {other:?}: use $bytes, $json, $document, $serialized or $custom"
        )),
    }
}

fn is_tagged(json: &Json) -> bool {
    json.as_object().is_some_and(is_tagged_map)
}

fn is_tagged_map(map: &Map<String, Json>) -> bool {
    map.len() == 1 && map.keys().all(|k| k.starts_with('$'))
}
