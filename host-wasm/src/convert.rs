//! Values between JavaScript and the core: strings, numbers, bigints, booleans, `Uint8Array`s
//! and JSON-shaped objects go in; the same kinds come out.
//!
//! A JS number is an integer value when it is a safe integer (so `put(k, 3)` can be
//! incremented) and a float otherwise; integers outside the safe range come back as `bigint`.

use serde::Serialize;
use statemesh_core::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::error::{HostError, Result};

/// 2^53 - 1: the largest integer a JS number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// A JS value as a store value.
pub(crate) fn value_from_js(v: &JsValue) -> Result<Value> {
    if let Some(s) = v.as_string() {
        return Ok(Value::String(s));
    }
    if let Some(n) = v.as_f64() {
        if n.fract() == 0.0 && n.abs() <= MAX_SAFE && !(n == 0.0 && n.is_sign_negative()) {
            // Exact: |n| <= 2^53 - 1 fits an i64 without rounding.
            return Ok(Value::Integer(n as i64));
        }
        return Ok(Value::Float(n));
    }
    if let Some(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if v.is_bigint() {
        let big: js_sys::BigInt = v.clone().unchecked_into();
        return i64::try_from(big).map(Value::Integer).map_err(|_| {
            HostError::Argument("bigint value outside the 64-bit signed range".into())
        });
    }
    if let Some(bytes) = v.dyn_ref::<js_sys::Uint8Array>() {
        return Ok(Value::Bytes(bytes.to_vec()));
    }
    if v.is_undefined() || v.is_function() || v.is_symbol() {
        return Err(HostError::Argument(
            "a value must be a string, number, bigint, boolean, Uint8Array, null, array or plain object"
                .into(),
        ));
    }
    let json: serde_json::Value = serde_wasm_bindgen::from_value(v.clone())?;
    Ok(Value::Json(json))
}

/// A store value as a JS value.
pub(crate) fn value_to_js(v: &Value) -> Result<JsValue> {
    Ok(match v {
        Value::String(s) => JsValue::from_str(s),
        Value::Integer(i) if (*i as f64).abs() <= MAX_SAFE => JsValue::from_f64(*i as f64),
        Value::Integer(i) => js_sys::BigInt::from(*i).into(),
        Value::Float(f) => JsValue::from_f64(*f),
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Json(j) => to_js(j)?,
        Value::Bytes(b) => js_sys::Uint8Array::from(b.as_slice()).into(),
        Value::Document { content_type, data } => {
            let obj = js_sys::Object::new();
            set(&obj, "contentType", &JsValue::from_str(content_type));
            set(&obj, "data", &js_sys::Uint8Array::from(data.as_slice()));
            obj.into()
        }
        Value::Serialized { format, data } => {
            let obj = js_sys::Object::new();
            set(&obj, "format", &JsValue::from_str(&format!("{format:?}")));
            set(&obj, "data", &js_sys::Uint8Array::from(data.as_slice()));
            obj.into()
        }
        Value::Custom { codec, data } => {
            let obj = js_sys::Object::new();
            set(&obj, "codec", &JsValue::from_str(codec));
            set(&obj, "data", &js_sys::Uint8Array::from(data.as_slice()));
            obj.into()
        }
        other => {
            return Err(HostError::Unsupported(format!(
                "a {} value has no JavaScript form yet",
                other.kind().name()
            )));
        }
    })
}

/// Serializes a plain Rust value the way JSON would look: objects (not `Map`s) for maps.
pub(crate) fn to_js<T: Serialize + ?Sized>(v: &T) -> Result<JsValue> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    Ok(v.serialize(&serializer)?)
}

/// Sets a property on an object we just created (which cannot refuse it).
pub(crate) fn set(obj: &js_sys::Object, key: &str, value: &JsValue) {
    let _ = js_sys::Reflect::set(obj, &JsValue::from_str(key), value);
}

/// A property of a caller's object; `undefined` when absent.
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A u64 counter (revision, version) as a JS number. Counters stay far below 2^53.
pub(crate) fn num(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

/// A non-negative integer argument (a TTL, a version, a limit).
pub(crate) fn u64_arg(v: &JsValue, what: &str) -> Result<u64> {
    if let Some(n) = v.as_f64()
        && n.fract() == 0.0
        && (0.0..=MAX_SAFE).contains(&n)
    {
        return Ok(n as u64);
    }
    if v.is_bigint() {
        let big: js_sys::BigInt = v.clone().unchecked_into();
        if let Ok(n) = u64::try_from(big) {
            return Ok(n);
        }
    }
    Err(HostError::Argument(format!(
        "{what} must be a non-negative integer"
    )))
}

/// An optional non-negative integer property.
pub(crate) fn opt_u64(obj: &JsValue, key: &str) -> Result<Option<u64>> {
    let v = get(obj, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    u64_arg(&v, key).map(Some)
}

/// A JS object as user metadata (a JSON object).
pub(crate) fn json_object(v: &JsValue) -> Result<serde_json::Map<String, serde_json::Value>> {
    match serde_wasm_bindgen::from_value::<serde_json::Value>(v.clone())? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(HostError::Argument(
            "metadata must be a plain object".into(),
        )),
    }
}
