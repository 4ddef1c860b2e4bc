//! A request's arguments, read with clear errors for missing or mistyped ones.

use std::borrow::Cow;

use serde_json::{Map, Value as Json};
use statemesh_core::Value;

use super::wire;

/// Why a request failed: a stable code and a message for people.
#[derive(Debug)]
pub(crate) struct OpError {
    pub(crate) code: Cow<'static, str>,
    pub(crate) message: String,
}

impl OpError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> OpError {
        OpError {
            code: Cow::Borrowed(code),
            message: message.into(),
        }
    }

    pub(crate) fn bad_argument(message: impl Into<String>) -> OpError {
        OpError::new("BAD_ARGUMENT", message)
    }
}

impl From<crate::Error> for OpError {
    fn from(e: crate::Error) -> OpError {
        OpError {
            code: Cow::Owned(e.code().to_owned()),
            message: e.to_string(),
        }
    }
}

impl From<statemesh_core::EngineError> for OpError {
    fn from(e: statemesh_core::EngineError) -> OpError {
        OpError::from(crate::Error::from(e))
    }
}

pub(crate) type OpResult<T> = Result<T, OpError>;

/// The fields of a request other than `id` and `op`.
pub(crate) struct Args(pub(crate) Map<String, Json>);

impl Args {
    fn get(&self, name: &str) -> Option<&Json> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn missing(name: &str) -> OpError {
        OpError::bad_argument(format!("missing argument {name:?}"))
    }

    fn wrong(name: &str, expected: &str) -> OpError {
        OpError::bad_argument(format!("argument {name:?} must be {expected}"))
    }

    pub(crate) fn str(&self, name: &str) -> OpResult<&str> {
        self.opt_str(name)?.ok_or_else(|| Args::missing(name))
    }

    pub(crate) fn opt_str(&self, name: &str) -> OpResult<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(_) => Err(Args::wrong(name, "a string")),
        }
    }

    pub(crate) fn u64(&self, name: &str) -> OpResult<u64> {
        self.opt_u64(name)?.ok_or_else(|| Args::missing(name))
    }

    pub(crate) fn opt_u64(&self, name: &str) -> OpResult<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| Args::wrong(name, "a non-negative integer")),
        }
    }

    pub(crate) fn usize_or(&self, name: &str, default: usize) -> OpResult<usize> {
        match self.opt_u64(name)? {
            None => Ok(default),
            Some(n) => usize::try_from(n).map_err(|_| Args::wrong(name, "smaller")),
        }
    }

    pub(crate) fn opt_i64(&self, name: &str) -> OpResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Args::wrong(name, "a 64-bit integer")),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> OpResult<bool> {
        match self.get(name) {
            None => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(_) => Err(Args::wrong(name, "true or false")),
        }
    }

    pub(crate) fn str_list(&self, name: &str) -> OpResult<Vec<&str>> {
        let Some(Json::Array(items)) = self.get(name) else {
            return Err(match self.get(name) {
                None => Args::missing(name),
                Some(_) => Args::wrong(name, "an array of strings"),
            });
        };
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| Args::wrong(name, "an array of strings"))
            })
            .collect()
    }

    pub(crate) fn floats(&self, name: &str) -> OpResult<Vec<f32>> {
        let Some(Json::Array(items)) = self.get(name) else {
            return Err(Args::wrong(name, "an array of numbers"));
        };
        items
            .iter()
            // f32 is what the vector indexes hold; the narrowing is the point.
            .map(|v| v.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| Args::wrong(name, "an array of numbers"))
    }

    pub(crate) fn object(&mut self, name: &str) -> OpResult<Option<Map<String, Json>>> {
        match self.0.remove(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(map)) => Ok(Some(map)),
            Some(_) => Err(Args::wrong(name, "a JSON object")),
        }
    }

    /// Takes a raw JSON argument (for search_by_value, whose values are JSON as indexed).
    pub(crate) fn json(&mut self, name: &str) -> OpResult<Json> {
        self.0.remove(name).ok_or_else(|| Args::missing(name))
    }

    /// Takes a value in its wire form (see [`wire`]); `null` is a JSON null, not "absent".
    pub(crate) fn value(&mut self, name: &str) -> OpResult<Value> {
        self.opt_value(name)?.ok_or_else(|| Args::missing(name))
    }

    pub(crate) fn opt_value(&mut self, name: &str) -> OpResult<Option<Value>> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(json) => wire::value_from_json(json)
                .map(Some)
                .map_err(|e| OpError::bad_argument(format!("argument {name:?}: {e}"))),
        }
    }

    /// `items` as `[[key, value], ...]` or `{key: value, ...}`.
    pub(crate) fn items(&mut self, name: &str) -> OpResult<Vec<(String, Value)>> {
        let bad = || Args::wrong(name, "[[key, value], ...] or {\"key\": value, ...}");
        let decode = |key: String, json: Json| match wire::value_from_json(json) {
            Ok(v) => Ok((key, v)),
            Err(e) => Err(OpError::bad_argument(format!("{name}[{key:?}]: {e}"))),
        };
        match self.0.remove(name) {
            None => Err(Args::missing(name)),
            Some(Json::Object(map)) => map.into_iter().map(|(k, v)| decode(k, v)).collect(),
            Some(Json::Array(pairs)) => pairs
                .into_iter()
                .map(|pair| match pair {
                    Json::Array(kv) if kv.len() == 2 => {
                        let mut kv = kv.into_iter();
                        match (kv.next(), kv.next()) {
                            (Some(Json::String(k)), Some(v)) => decode(k, v),
                            _ => Err(bad()),
                        }
                    }
                    _ => Err(bad()),
                })
                .collect(),
            Some(_) => Err(bad()),
        }
    }
}
