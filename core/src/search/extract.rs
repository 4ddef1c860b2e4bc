//! Pulling indexable parts out of stored values: text, exact scalars and vectors.

use std::borrow::Cow;

use serde_json::Value as Json;

use crate::value::Value;

/// The value as JSON when it has a JSON reading: JSON documents, strings, numbers, booleans.
pub(crate) fn as_json(value: &Value) -> Option<Cow<'_, Json>> {
    Some(match value {
        Value::Json(doc) => Cow::Borrowed(doc),
        Value::String(s) => Cow::Owned(Json::String(s.clone())),
        Value::Integer(i) => Cow::Owned(Json::from(*i)),
        Value::Float(f) => Cow::Owned(Json::from(*f)),
        Value::Bool(b) => Cow::Owned(Json::Bool(*b)),
        _ => return None,
    })
}

/// The value at a dotted path (`meta.title`; a numeric segment indexes an array).
pub(crate) fn at_path<'a>(doc: &'a Json, path: &str) -> Option<&'a Json> {
    path.split('.').try_fold(doc, |node, segment| match node {
        Json::Object(map) => map.get(segment),
        Json::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Text of a JSON node: a string, or the strings of an array joined by newlines.
pub(crate) fn text_of(node: &Json) -> Option<Cow<'_, str>> {
    match node {
        Json::String(s) => Some(Cow::Borrowed(s)),
        Json::Array(items) => {
            let parts: Vec<&str> = items.iter().filter_map(Json::as_str).collect();
            (!parts.is_empty()).then(|| Cow::Owned(parts.join("\n")))
        }
        _ => None,
    }
}

/// A scalar as the exact-value index compares it. Integral numbers compare as integers
/// whatever their JSON spelling (`42` equals `42.0`); other floats by their bits.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    /// An `f64` that is not integral, as its bits (so it can be ordered and hashed).
    Float(u64),
    Str(String),
}

impl Scalar {
    /// The scalar of a JSON node; `None` for objects and arrays.
    pub(crate) fn of(node: &Json) -> Option<Scalar> {
        Some(match node {
            Json::Null => Scalar::Null,
            Json::Bool(b) => Scalar::Bool(*b),
            Json::String(s) => Scalar::Str(s.clone()),
            Json::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Scalar::Int(i),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => Scalar::Int(f as i64),
                (None, Some(f)) => Scalar::Float(f.to_bits()),
                (None, None) => return None,
            },
            Json::Array(_) | Json::Object(_) => return None,
        })
    }

    /// Scalars of a node: itself, or each scalar element of an array (multi-valued fields).
    pub(crate) fn all_of(node: &Json) -> Vec<Scalar> {
        match node {
            Json::Array(items) => items.iter().filter_map(Scalar::of).collect(),
            other => Scalar::of(other).into_iter().collect(),
        }
    }
}

/// Why a value holds no usable vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VectorProblem {
    /// No vector where the declaration says (missing field, wrong kind).
    Missing,
    WrongDimension(usize),
    /// NaN or infinite component, or a zero vector under the cosine metric.
    NotFinite,
}

/// The vector of a node: an array of numbers.
pub(crate) fn vector_of_json(node: &Json, dimension: usize) -> Result<Vec<f32>, VectorProblem> {
    let Json::Array(items) = node else {
        return Err(VectorProblem::Missing);
    };
    if items.len() != dimension {
        return Err(VectorProblem::WrongDimension(items.len()));
    }
    let v = items
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32).ok_or(VectorProblem::Missing))
        .collect::<Result<Vec<f32>, _>>()?;
    check_finite(v)
}

/// The vector of a whole value: a JSON array, or little-endian `f32` bytes.
pub(crate) fn vector_of_value(value: &Value, dimension: usize) -> Result<Vec<f32>, VectorProblem> {
    match value {
        Value::Json(doc) => vector_of_json(doc, dimension),
        Value::Bytes(bytes) => {
            if !bytes.len().is_multiple_of(4) {
                return Err(VectorProblem::Missing);
            }
            if bytes.len() / 4 != dimension {
                return Err(VectorProblem::WrongDimension(bytes.len() / 4));
            }
            let v = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            check_finite(v)
        }
        _ => Err(VectorProblem::Missing),
    }
}

fn check_finite(v: Vec<f32>) -> Result<Vec<f32>, VectorProblem> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(v)
    } else {
        Err(VectorProblem::NotFinite)
    }
}

/// The bytes `add_vector` stores: little-endian `f32`s.
pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_nested_fields_and_array_items() {
        let doc = json!({"a": {"b": ["x", "y"]}, "n": 3});
        assert_eq!(at_path(&doc, "a.b.1"), Some(&json!("y")));
        assert_eq!(at_path(&doc, "n"), Some(&json!(3)));
        assert_eq!(at_path(&doc, "a.c"), None);
        assert_eq!(at_path(&doc, "n.x"), None);
    }

    #[test]
    fn integral_numbers_compare_equal_whatever_their_spelling() {
        assert_eq!(Scalar::of(&json!(42)), Scalar::of(&json!(42.0)));
        assert_ne!(Scalar::of(&json!(42.5)), Scalar::of(&json!(42)));
        assert_eq!(Scalar::all_of(&json!(["a", 1, {"x": 1}])).len(), 2);
    }

    #[test]
    fn vectors_come_from_arrays_or_le_bytes_and_are_checked() {
        assert_eq!(vector_of_json(&json!([1, 2.5]), 2), Ok(vec![1.0, 2.5]));
        assert_eq!(
            vector_of_json(&json!([1, 2]), 3),
            Err(VectorProblem::WrongDimension(2))
        );
        let bytes = vector_bytes(&[0.5, -1.0]);
        assert_eq!(
            vector_of_value(&Value::Bytes(bytes), 2),
            Ok(vec![0.5, -1.0])
        );
        assert_eq!(
            vector_of_value(&Value::Bytes(vec![0; 3]), 2),
            Err(VectorProblem::Missing)
        );
    }
}
