//! Turning the server's JSON back into the store's types.

use std::time::Duration;

use serde_json::{Map, Value as Json};
use statemesh_core::search::{TextHit, VectorHit};
use statemesh_core::{
    ChangeEvent, Cursor, JsonEncoding, Metadata, ScanPage, StoredValue, Timestamp, Ttl, Value,
    ValueKind, WriteResult,
};

use crate::SubscriptionError;
use crate::error::{Error, Result};
use crate::server::jsonl::wire;

fn protocol(what: &str) -> Error {
    Error::Protocol(format!("unexpected {what} in the server's response"))
}

/// A response's result, or the server's error with its code kept.
pub(crate) fn outcome(message: &mut Map<String, Json>) -> (Option<Json>, Result<Json>) {
    let id = message.remove("id");
    let result = match message.get("ok") {
        Some(Json::Bool(true)) => Ok(message.remove("result").unwrap_or(Json::Null)),
        Some(Json::Bool(false)) => {
            let error = message.get("error");
            let text = |name: &str| {
                error
                    .and_then(|e| e.get(name))
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            Err(Error::Remote {
                code: text("code"),
                message: text("message"),
            })
        }
        _ => Err(protocol("response without \"ok\"")),
    };
    (id, result)
}

pub(crate) fn value(json: Json) -> Result<Value> {
    wire::value_from_json(json).map_err(Error::Protocol)
}

pub(crate) fn opt_value(json: Json) -> Result<Option<Value>> {
    match json {
        Json::Null => Ok(None),
        other => value(other).map(Some),
    }
}

pub(crate) fn u64_field(json: &Json, name: &str) -> Result<u64> {
    json.get(name)
        .and_then(Json::as_u64)
        .ok_or_else(|| protocol(name))
}

pub(crate) fn as_u64(json: &Json) -> Result<u64> {
    json.as_u64().ok_or_else(|| protocol("number"))
}

pub(crate) fn as_bool(json: &Json) -> Result<bool> {
    json.as_bool().ok_or_else(|| protocol("boolean"))
}

pub(crate) fn write_result(json: &Json) -> Result<WriteResult> {
    let op = json
        .get("op")
        .and_then(Json::as_str)
        .and_then(wire::write_op_from_name)
        .ok_or_else(|| protocol("write op"))?;
    Ok(WriteResult {
        op,
        affected: u64_field(json, "affected")?,
        version: u64_field(json, "version")?,
        revision: u64_field(json, "revision")?,
        latency: Duration::from_micros(u64_field(json, "latency_us")?),
    })
}

pub(crate) fn ttl(json: &Json) -> Result<Option<Ttl>> {
    if json.is_null() {
        return Ok(None);
    }
    if json.get("persistent").and_then(Json::as_bool) == Some(true) {
        return Ok(Some(Ttl::Persistent));
    }
    Ok(Some(Ttl::Expires {
        at: Timestamp::from_millis(u64_field(json, "expires_at")?),
        remaining_ms: u64_field(json, "remaining_ms")?,
    }))
}

/// The server's metadata object (`wire::metadata`).
pub(crate) fn metadata(json: Json) -> Result<Metadata> {
    let time = |name: &str| u64_field(&json, name).map(Timestamp::from_millis);
    let mut meta = Metadata::default();
    meta.created_at = time("created_at")?;
    meta.updated_at = time("updated_at")?;
    meta.expires_at = match json.get("expires_at") {
        None | Some(Json::Null) => None,
        Some(at) => Some(Timestamp::from_millis(as_u64(at)?)),
    };
    meta.version = u64_field(&json, "version")?;
    meta.create_revision = u64_field(&json, "create_revision")?;
    meta.mod_revision = u64_field(&json, "mod_revision")?;
    meta.checksum = json
        .get("checksum")
        .and_then(Json::as_str)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| protocol("checksum"))?;
    meta.size = usize::try_from(u64_field(&json, "size")?).map_err(|_| protocol("size"))?;
    meta.kind = json
        .get("kind")
        .and_then(Json::as_str)
        .and_then(ValueKind::from_name);
    meta.content_type = json
        .get("content_type")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    meta.user = match json.get("user") {
        Some(Json::Object(user)) => user.clone(),
        _ => Map::new(),
    };
    Ok(meta)
}

/// The bytes of a base64 string (`get_stored`, `snapshot`).
pub(crate) fn base64(json: &Json, what: &str) -> Result<Vec<u8>> {
    wire::base64_field(json, what)
        .map_err(|e| Error::Protocol(format!("{e} in the server's response")))
}

pub(crate) fn string(json: Json) -> Result<String> {
    match json {
        Json::String(s) => Ok(s),
        _ => Err(protocol("string")),
    }
}

pub(crate) fn strings(json: Json) -> Result<Vec<String>> {
    serde_json::from_value(json).map_err(|_| protocol("list of strings"))
}

pub(crate) fn pairs(json: Json) -> Result<Vec<(String, Value)>> {
    let Json::Array(items) = json else {
        return Err(protocol("list of pairs"));
    };
    items
        .into_iter()
        .map(|pair| {
            let Json::Array(kv) = pair else {
                return Err(protocol("pair"));
            };
            let mut kv = kv.into_iter();
            match (kv.next(), kv.next()) {
                (Some(Json::String(k)), Some(v)) => Ok((k, value(v)?)),
                _ => Err(protocol("pair")),
            }
        })
        .collect()
}

pub(crate) fn values(json: Json) -> Result<Vec<Option<Value>>> {
    let Json::Array(items) = json else {
        return Err(protocol("list of values"));
    };
    items.into_iter().map(opt_value).collect()
}

pub(crate) fn scan_page(mut json: Json) -> Result<ScanPage> {
    let items = pairs(json.get_mut("items").map(Json::take).unwrap_or(Json::Null))?;
    let next = match json.get("next").and_then(Json::as_str) {
        Some(text) => Some(Cursor::decode(text).map_err(|_| protocol("cursor"))?),
        None => None,
    };
    Ok(ScanPage { items, next })
}

pub(crate) fn text_hits(json: Json) -> Result<Vec<TextHit>> {
    hits(json, "score").map(|hits| {
        hits.into_iter()
            .map(|(key, score)| TextHit { key, score })
            .collect()
    })
}

pub(crate) fn vector_hits(json: Json) -> Result<Vec<VectorHit>> {
    hits(json, "distance").map(|hits| {
        hits.into_iter()
            .map(|(key, distance)| VectorHit { key, distance })
            .collect()
    })
}

fn hits(json: Json, number: &str) -> Result<Vec<(String, f32)>> {
    let Json::Array(items) = json else {
        return Err(protocol("list of hits"));
    };
    items
        .iter()
        .map(|hit| {
            let key = hit
                .get("key")
                .and_then(Json::as_str)
                .ok_or_else(|| protocol("key"))?;
            let n = hit
                .get(number)
                .and_then(Json::as_f64)
                .ok_or_else(|| protocol(number))?;
            // Scores and distances are f32 in the store; the wire widened them.
            Ok((key.to_owned(), n as f32))
        })
        .collect()
}

pub(crate) fn event(mut json: Json) -> Result<ChangeEvent> {
    let stored = |json: &mut Json, name: &str| -> Result<Option<StoredValue>> {
        match json.get_mut(name).map(Json::take) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => {
                let v = value(v)?;
                StoredValue::encode(&v, JsonEncoding::default(), usize::MAX)
                    .map(Some)
                    .map_err(|e| Error::Protocol(e.to_string()))
            }
        }
    };
    let old = stored(&mut json, "old")?;
    let new = stored(&mut json, "new")?;
    Ok(ChangeEvent {
        revision: u64_field(&json, "revision")?,
        at: Timestamp::from_millis(u64_field(&json, "at")?),
        key: json
            .get("key")
            .and_then(Json::as_str)
            .ok_or_else(|| protocol("key"))?
            .into(),
        kind: json
            .get("kind")
            .and_then(Json::as_str)
            .and_then(wire::change_kind_from_name)
            .ok_or_else(|| protocol("change kind"))?,
        version: u64_field(&json, "version")?,
        old,
        new,
        old_version: u64_field(&json, "old_version")?,
        old_mod_revision: u64_field(&json, "old_mod_revision")?,
    })
}

pub(crate) fn events(json: Json) -> Result<Vec<ChangeEvent>> {
    let Json::Array(items) = json else {
        return Err(protocol("list of events"));
    };
    items.into_iter().map(event).collect()
}

/// The subscription error a server's end-of-subscription code stands for. The counts it
/// carries are not sent; they read 0.
pub(crate) fn subscription_error(code: &str) -> SubscriptionError {
    match code {
        "LAGGED" => SubscriptionError::Lagged { missed: 0 },
        "COMPACTED" => SubscriptionError::Compacted {
            requested: 0,
            floor: 0,
        },
        _ => SubscriptionError::Closed,
    }
}
