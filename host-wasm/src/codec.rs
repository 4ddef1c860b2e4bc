//! Codec plugins in JavaScript hosts: a plugin loaded by `adapters/wasmtime/js/loader.mjs`
//! (shipped as `statemesh/plugins`) becomes a core `ValueCodec`. The plugin runs on the
//! platform's own WebAssembly engine with the loader's fuel, memory, input and output caps
//! (docs/plugins.md). Fuel comes from [`meter_plugin`] (exported to JS as `meterPlugin`), which
//! the package's `statemesh/plugins` hands to the loader for every plugin it loads.

use std::sync::Arc;

use statemesh_core::codec::{CodecError, CodecOp, ValueCodec};
use statemesh_core::value::JsonValue;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use statemesh_plugin_meter::{MeterError, MeterOptions, meter};

use crate::convert;
use crate::error::{HostError, Result};

/// Instruments a plugin module for fuel metering (crate `statemesh-plugin-meter`): the result
/// counts its instructions in the exported i64 global `statemesh_fuel` and traps when it goes
/// negative; a start function is moved to the export `statemesh_start`. `initialFuel` is the
/// global's initial value (0 if omitted). Throws an `Error` whose `kind` is `invalid_module`,
/// `unsupported` or `reserved_export`.
#[wasm_bindgen(js_name = meterPlugin)]
pub fn meter_plugin(
    bytes: &[u8],
    #[wasm_bindgen(js_name = initialFuel)] initial_fuel: Option<f64>,
) -> std::result::Result<Vec<u8>, JsValue> {
    // A JS number: negative, NaN or fractional figures are refused, large ones saturate.
    let fuel = match initial_fuel {
        None => 0,
        Some(f) if f >= 0.0 && f.fract() == 0.0 => f as u64,
        Some(f) => {
            let e = js_sys::Error::new(&format!(
                "initialFuel must be a non-negative integer, not {f}"
            ));
            return Err(e.into());
        }
    };
    meter(bytes, &MeterOptions::default().initial_fuel(fuel)).map_err(|e| {
        let kind = match e {
            MeterError::Invalid(_) => "invalid_module",
            MeterError::Unsupported(_) => "unsupported",
            MeterError::ReservedExport(_) => "reserved_export",
            _ => "invalid_module",
        };
        let err = js_sys::Error::new(&e.to_string());
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&err, &"kind".into(), &kind.into());
        err.into()
    })
}

/// A loader `Plugin` object used as a codec.
#[derive(Debug)]
pub(crate) struct JsCodec {
    name: String,
    plugin: JsValue,
}

impl JsCodec {
    /// Wraps a `Plugin` from `loadPlugin`; it must carry its codec name.
    pub(crate) fn from_plugin(plugin: JsValue) -> Result<Arc<dyn ValueCodec>> {
        let Some(name) = convert::get(&plugin, "name").as_string() else {
            return Err(HostError::Argument(
                "a codec plugin must be a Plugin from loadPlugin (statemesh/plugins)".into(),
            ));
        };
        Ok(Arc::new(JsCodec { name, plugin }))
    }

    /// Calls `method` with `data`; the loader returns bytes, `null`, a string or JSON.
    fn call(&self, op: CodecOp, method: &str, data: &[u8]) -> Result<JsValue, CodecError> {
        let f = convert::get(&self.plugin, method);
        let Some(f) = f.dyn_ref::<js_sys::Function>() else {
            return Err(CodecError::Unsupported {
                codec: self.name.clone(),
                op,
            });
        };
        let input = js_sys::Uint8Array::from(data);
        f.call1(&self.plugin, &input)
            .map_err(|e| self.error(op, &e))
    }

    fn bytes(&self, op: CodecOp, v: JsValue) -> Result<Vec<u8>, CodecError> {
        match v.dyn_into::<js_sys::Uint8Array>() {
            Ok(b) => Ok(b.to_vec()),
            Err(_) => Err(CodecError::BadOutput {
                codec: self.name.clone(),
                op,
                message: "the plugin returned no bytes".into(),
            }),
        }
    }

    /// The loader's `CodecError` (with `kind`) as core's. Kinds whose figures the loader only
    /// puts in its message (memory, input and output caps) become traps carrying that message.
    fn error(&self, op: CodecOp, e: &JsValue) -> CodecError {
        let kind = convert::get(e, "kind").as_string().unwrap_or_default();
        let message = convert::get(e, "message")
            .as_string()
            .unwrap_or_else(|| format!("{e:?}"));
        let codec = self.name.clone();
        match kind.as_str() {
            "rejected" => CodecError::Rejected { codec, op, message },
            "unsupported" => CodecError::Unsupported { codec, op },
            "bad_output" => CodecError::BadOutput { codec, op, message },
            "unavailable" => CodecError::Unavailable { codec, message },
            "out_of_fuel" => CodecError::OutOfFuel {
                codec,
                op,
                // The loader puts the budget on the error; a JS number, so at most 2^53.
                fuel: convert::get(e, "fuel").as_f64().map_or(0, |f| f as u64),
            },
            _ => CodecError::Trap { codec, op, message },
        }
    }
}

impl ValueCodec for JsCodec {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self, data: &[u8]) -> Result<(), CodecError> {
        self.call(CodecOp::Validate, "validate", data).map(drop)
    }

    fn encode(&self, input: &[u8]) -> Result<Vec<u8>, CodecError> {
        let out = self.call(CodecOp::Encode, "encode", input)?;
        self.bytes(CodecOp::Encode, out)
    }

    fn decode(&self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        let out = self.call(CodecOp::Decode, "decode", data)?;
        self.bytes(CodecOp::Decode, out)
    }

    fn to_text(&self, data: &[u8]) -> Result<Option<String>, CodecError> {
        let out = self.call(CodecOp::ToText, "toText", data)?;
        Ok(out.as_string())
    }

    fn to_json(&self, data: &[u8]) -> Result<Option<JsonValue>, CodecError> {
        let out = self.call(CodecOp::ToJson, "toJson", data)?;
        if out.is_null() || out.is_undefined() {
            return Ok(None);
        }
        serde_wasm_bindgen::from_value(out)
            .map(Some)
            .map_err(|e| CodecError::BadOutput {
                codec: self.name.clone(),
                op: CodecOp::ToJson,
                message: e.to_string(),
            })
    }
}
