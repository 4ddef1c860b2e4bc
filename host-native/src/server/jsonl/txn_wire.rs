//! The wire form of a compare-then-else transaction (`op: "txn"`) and of its result, in both
//! directions: the server reads what the client writes, so both live here.
//!
//! ```json
//! {"op": "txn",
//!  "compare": [{"key": "k", "cmp": "equal", "version": 3}],
//!  "success": [{"op": "put", "key": "k", "value": "v", "ttl_ms": 1000}],
//!  "failure": [{"op": "get", "key": "k"}]}
//! ```
//!
//! A compare names one target (`value`, `version`, `mod_revision`, `create_revision` or
//! `exists`) and `cmp` (`equal`, the default, `not_equal`, `greater`, `less`). Branch ops are
//! `put` (`value`, optional `ttl_ms`), `delete`, `get` and `patch` (`merge` or `ops`).

use serde_json::{Map, Value as Json, json};
use statemesh_core::{
    Compare, CompareOp, CompareTarget, Patch, Txn, TxnOp, TxnOpResult, TxnResult, ValueAt,
};

use super::wire::{self, WireValue};

const TARGETS: [&str; 5] = [
    "value",
    "version",
    "mod_revision",
    "create_revision",
    "exists",
];

fn cmp_name(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Equal => "equal",
        CompareOp::NotEqual => "not_equal",
        CompareOp::Greater => "greater",
        CompareOp::Less => "less",
    }
}

fn cmp_from_name(name: &str) -> Option<CompareOp> {
    Some(match name {
        "equal" => CompareOp::Equal,
        "not_equal" => CompareOp::NotEqual,
        "greater" => CompareOp::Greater,
        "less" => CompareOp::Less,
        _ => return None,
    })
}

fn value_json(value: &statemesh_core::Value) -> Json {
    serde_json::to_value(WireValue(value)).unwrap_or(Json::Null)
}

// ---- the request ----

/// The request's `compare`, `success` and `failure` fields.
pub(crate) fn txn_to_json(txn: &Txn) -> Map<String, Json> {
    let mut out = Map::new();
    out.insert(
        "compare".into(),
        txn.compare.iter().map(compare_to_json).collect(),
    );
    out.insert(
        "success".into(),
        txn.success.iter().map(op_to_json).collect(),
    );
    out.insert(
        "failure".into(),
        txn.failure.iter().map(op_to_json).collect(),
    );
    out
}

fn compare_to_json(c: &Compare) -> Json {
    let (name, target) = match &c.target {
        CompareTarget::Value(v) => ("value", value_json(v)),
        CompareTarget::Version(n) => ("version", json!(n)),
        CompareTarget::ModRevision(n) => ("mod_revision", json!(n)),
        CompareTarget::CreateRevision(n) => ("create_revision", json!(n)),
        CompareTarget::Exists(b) => ("exists", json!(b)),
        // A target this build does not know cannot be sent; the server refuses the empty one.
        _ => ("unknown", Json::Null),
    };
    json!({"key": c.key, "cmp": cmp_name(c.op), name: target})
}

fn op_to_json(op: &TxnOp) -> Json {
    match op {
        TxnOp::Put { key, value, ttl_ms } => {
            let mut o = json!({"op": "put", "key": key, "value": value_json(value)});
            if let Some(ttl) = ttl_ms {
                o["ttl_ms"] = json!(ttl);
            }
            o
        }
        TxnOp::Delete { key } => json!({"op": "delete", "key": key}),
        TxnOp::Get { key } => json!({"op": "get", "key": key}),
        TxnOp::Patch { key, patch } => {
            let field = if patch.is_merge() { "merge" } else { "ops" };
            json!({"op": "patch", "key": key, field: patch.to_json()})
        }
        _ => json!({"op": "unknown"}),
    }
}

/// Reads a transaction from the request's fields; the error names the offending part.
pub(crate) fn txn_from_json(fields: &mut Map<String, Json>) -> Result<Txn, String> {
    let mut txn = Txn::new();
    for (i, c) in list(fields, "compare")?.into_iter().enumerate() {
        txn.compare
            .push(compare_from_json(c).map_err(|e| format!("compare[{i}]: {e}"))?);
    }
    for branch in ["success", "failure"] {
        for (i, op) in list(fields, branch)?.into_iter().enumerate() {
            let op = op_from_json(op).map_err(|e| format!("{branch}[{i}]: {e}"))?;
            if branch == "success" {
                txn.success.push(op);
            } else {
                txn.failure.push(op);
            }
        }
    }
    Ok(txn)
}

/// An absent field is an empty list.
fn list(fields: &mut Map<String, Json>, name: &str) -> Result<Vec<Json>, String> {
    match fields.remove(name) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => Ok(items),
        Some(_) => Err(format!("{name:?} must be an array")),
    }
}

fn object(json: Json) -> Result<Map<String, Json>, String> {
    match json {
        Json::Object(map) => Ok(map),
        _ => Err("must be an object".into()),
    }
}

fn key(o: &Map<String, Json>) -> Result<String, String> {
    match o.get("key") {
        Some(Json::String(k)) => Ok(k.clone()),
        _ => Err("\"key\" must be a string".into()),
    }
}

fn number(json: &Json, name: &str) -> Result<u64, String> {
    json.as_u64()
        .ok_or_else(|| format!("{name:?} must be a non-negative integer"))
}

fn compare_from_json(json: Json) -> Result<Compare, String> {
    let mut o = object(json)?;
    let key = key(&o)?;
    let op = match o.get("cmp") {
        None | Some(Json::Null) => CompareOp::Equal,
        Some(Json::String(name)) => cmp_from_name(name)
            .ok_or_else(|| format!("unknown cmp {name:?} (equal, not_equal, greater, less)"))?,
        Some(_) => return Err("\"cmp\" must be a string".into()),
    };
    let named: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| o.contains_key(*t))
        .collect();
    let [name] = named[..] else {
        return Err(format!("name exactly one target of {TARGETS:?}"));
    };
    let raw = o.remove(name).unwrap_or(Json::Null);
    let target = match name {
        "value" => CompareTarget::Value(wire::value_from_json(raw)?),
        "version" => CompareTarget::Version(number(&raw, name)?),
        "mod_revision" => CompareTarget::ModRevision(number(&raw, name)?),
        "create_revision" => CompareTarget::CreateRevision(number(&raw, name)?),
        _ => CompareTarget::Exists(raw.as_bool().ok_or("\"exists\" must be true or false")?),
    };
    Ok(Compare::new(key, op, target))
}

fn op_from_json(json: Json) -> Result<TxnOp, String> {
    let mut o = object(json)?;
    let key = key(&o)?;
    let op = match o.get("op") {
        Some(Json::String(op)) => op.clone(),
        _ => return Err("\"op\" must be put, delete, get or patch".into()),
    };
    Ok(match op.as_str() {
        "put" => {
            let value = wire::value_from_json(o.remove("value").ok_or("put needs \"value\"")?)?;
            match o.get("ttl_ms") {
                None | Some(Json::Null) => TxnOp::put(key, value),
                Some(ttl) => TxnOp::put_with_ttl(key, value, number(ttl, "ttl_ms")?),
            }
        }
        "delete" => TxnOp::delete(key),
        "get" => TxnOp::get(key),
        "patch" => {
            let patch = match (o.remove("merge"), o.remove("ops")) {
                (Some(merge), None) => Patch::merge(merge),
                (None, Some(ops)) => Patch::json(ops).map_err(|e| e.to_string())?,
                _ => return Err("patch takes exactly one of \"merge\" or \"ops\"".into()),
            };
            TxnOp::patch(key, patch)
        }
        other => return Err(format!("unknown op {other:?} (put, delete, get, patch)")),
    })
}

// ---- the result ----

pub(crate) fn result_to_json(r: &TxnResult) -> Json {
    let results: Vec<Json> = r
        .results
        .iter()
        .map(|res| match res {
            TxnOpResult::Put { version } => json!({"op": "put", "version": version}),
            TxnOpResult::Delete { deleted } => json!({"op": "delete", "deleted": deleted}),
            TxnOpResult::Patch { version } => json!({"op": "patch", "version": version}),
            TxnOpResult::Get(None) => json!({"op": "get", "found": false}),
            TxnOpResult::Get(Some(at)) => json!({
                "op": "get",
                "found": true,
                "value": value_json(&at.value),
                "version": at.version,
                "mod_revision": at.mod_revision,
            }),
            _ => json!({"op": "unknown"}),
        })
        .collect();
    json!({"succeeded": r.succeeded, "revision": r.revision, "results": results})
}

pub(crate) fn result_from_json(json: Json) -> Result<TxnResult, String> {
    let mut o = object(json)?;
    let succeeded = o
        .get("succeeded")
        .and_then(Json::as_bool)
        .ok_or("no \"succeeded\"")?;
    let revision = number(o.get("revision").unwrap_or(&Json::Null), "revision")?;
    let results = list(&mut o, "results")?
        .into_iter()
        .map(|r| {
            let mut r = object(r)?;
            let field = |r: &Map<String, Json>, name: &str| {
                number(r.get(name).unwrap_or(&Json::Null), name)
            };
            Ok(match r.get("op").and_then(Json::as_str) {
                Some("put") => TxnOpResult::Put {
                    version: field(&r, "version")?,
                },
                Some("patch") => TxnOpResult::Patch {
                    version: field(&r, "version")?,
                },
                Some("delete") => TxnOpResult::Delete {
                    deleted: r
                        .get("deleted")
                        .and_then(Json::as_bool)
                        .ok_or("no \"deleted\"")?,
                },
                Some("get") if r.get("found") == Some(&Json::Bool(false)) => TxnOpResult::Get(None),
                Some("get") => {
                    let value = wire::value_from_json(r.remove("value").unwrap_or(Json::Null))?;
                    TxnOpResult::Get(Some(ValueAt::new(
                        value,
                        field(&r, "version")?,
                        field(&r, "mod_revision")?,
                    )))
                }
                _ => return Err("a result with an unknown op".to_owned()),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(TxnResult::new(succeeded, results, revision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use statemesh_core::Value;

    #[test]
    fn a_transaction_survives_the_wire() {
        let txn = Txn::new()
            .when(Compare::version("a:1", CompareOp::Greater, 2))
            .when(Compare::value_equals("a:2", Value::Bytes(vec![0, 255])))
            .when(Compare::absent("a:3"))
            .when(Compare::mod_revision("a:4", CompareOp::Less, 9))
            .when(Compare::create_revision("a:5", CompareOp::NotEqual, 1))
            .then(TxnOp::put_with_ttl(
                "a:1",
                Value::Json(json!({"x": 1})),
                500,
            ))
            .then(TxnOp::patch("a:6", Patch::merge(json!({"y": null}))))
            .otherwise(TxnOp::get("a:1"))
            .otherwise(TxnOp::delete("a:2"))
            .otherwise(TxnOp::patch(
                "a:7",
                Patch::json(json!([{"op": "add", "path": "/z", "value": 1}])).expect("ops"),
            ));
        let mut fields = txn_to_json(&txn);
        assert_eq!(txn_from_json(&mut fields).expect("decode"), txn);

        let result = TxnResult::new(
            false,
            vec![
                TxnOpResult::Get(Some(ValueAt::new(Value::from("v"), 3, 7))),
                TxnOpResult::Get(None),
                TxnOpResult::Delete { deleted: true },
                TxnOpResult::Patch { version: 4 },
                TxnOpResult::Put { version: 1 },
            ],
            12,
        );
        assert_eq!(
            result_from_json(result_to_json(&result)).expect("decode"),
            result
        );
    }

    #[test]
    fn malformed_parts_are_named() {
        let bad = |j: Json| {
            let Json::Object(mut map) = j else {
                panic!("test input must be an object")
            };
            txn_from_json(&mut map).expect_err("refused")
        };
        assert!(
            bad(json!({"compare": [{"key": "k"}]})).starts_with("compare[0]: name exactly one")
        );
        assert!(
            bad(json!({"compare": [{"key": "k", "version": 1, "exists": true}]}))
                .contains("exactly one")
        );
        assert!(
            bad(json!({"compare": [{"key": "k", "cmp": "huge", "version": 1}]}))
                .contains("unknown cmp")
        );
        assert!(
            bad(json!({"success": [{"op": "fly", "key": "k"}]}))
                .starts_with("success[0]: unknown op")
        );
        assert!(bad(json!({"failure": [{"op": "put", "key": "k"}]})).contains("needs \"value\""));
        assert!(bad(json!({"success": [{"op": "put", "value": 1}]})).contains("\"key\""));
        assert!(bad(json!({"success": {"op": "get"}})).contains("must be an array"));
        assert!(bad(json!({"success": [{"op": "patch", "key": "k"}]})).contains("exactly one"));
    }
}
