//! Patch writes: JSON merge patch (RFC 7386) and JSON patch (RFC 6902), their log records,
//! replay, and the materialised values kept in history.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use statemesh_core::{
    ChangeKind, Engine, EngineConfig, EngineError, LogOp, LogRecord, Patch, PutOptions, Timestamp,
    Value,
};

fn ts(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).unwrap()
}

fn drain_log(engine: &mut Engine) -> Vec<LogRecord> {
    std::iter::from_fn(|| engine.poll_log()).collect()
}

fn big_doc() -> serde_json::Value {
    json!({
        "name": "Ada",
        "tags": ["a", "b"],
        "notes": "x".repeat(500),
        "address": {"city": "London", "zip": "N1"},
    })
}

#[test]
fn merge_patch_follows_rfc_7386() {
    let mut e = engine();
    e.put(ts(1), "u:1", &Value::Json(big_doc())).unwrap();
    let r = e
        .patch(
            ts(2),
            "u:1",
            &Patch::merge(json!({"name": "Grace", "address": {"zip": null}, "age": 36})),
        )
        .unwrap();
    assert_eq!(r.version, 2);
    let mut expected = big_doc();
    expected["name"] = json!("Grace");
    expected["age"] = json!(36);
    expected["address"] = json!({"city": "London"});
    assert_eq!(e.get(ts(2), "u:1").unwrap(), Some(Value::Json(expected)));
}

#[test]
fn json_patch_follows_rfc_6902_and_is_all_or_nothing() {
    let mut e = engine();
    e.put(ts(1), "u:1", &Value::Json(json!({"n": 1, "list": [1, 2]})))
        .unwrap();
    let ops = json!([
        {"op": "replace", "path": "/n", "value": 2},
        {"op": "add", "path": "/list/-", "value": 3},
        {"op": "move", "from": "/n", "path": "/m"},
    ]);
    e.patch(ts(2), "u:1", &Patch::json(ops).unwrap()).unwrap();
    let now = json!({"m": 2, "list": [1, 2, 3]});
    assert_eq!(e.get(ts(2), "u:1").unwrap(), Some(Value::Json(now.clone())));
    drain_log(&mut e);
    // A failing `test` leaves the value, the revision and the log untouched.
    let failing = json!([
        {"op": "add", "path": "/x", "value": 1},
        {"op": "test", "path": "/m", "value": 99},
    ]);
    let revision = e.revision();
    let err = e
        .patch(ts(3), "u:1", &Patch::json(failing).unwrap())
        .unwrap_err();
    assert!(matches!(err, EngineError::PatchFailed { ref key, .. } if key == "u:1"));
    assert_eq!(e.get(ts(3), "u:1").unwrap(), Some(Value::Json(now)));
    assert_eq!(e.revision(), revision);
    assert!(drain_log(&mut e).is_empty());
}

#[test]
fn bad_patches_and_wrong_types_are_refused() {
    let mut e = engine();
    assert!(matches!(
        Patch::json(json!({"op": "add"})),
        Err(EngineError::InvalidPatch(_))
    ));
    assert!(matches!(
        Patch::json(json!([{"op": "frobnicate", "path": "/a"}])),
        Err(EngineError::InvalidPatch(_))
    ));
    e.put(ts(1), "s:1", &Value::from("text")).unwrap();
    let err = e
        .patch(ts(2), "s:1", &Patch::merge(json!({"a": 1})))
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::WrongType {
            expected: "json",
            ..
        }
    ));
    // A patch whose result is too large is refused like a put of it.
    let mut small = Engine::new(EngineConfig::default().with_max_value_size(64)).unwrap();
    small.put(ts(1), "j:1", &Value::Json(json!({}))).unwrap();
    let err = small
        .patch(ts(2), "j:1", &Patch::merge(json!({"a": "y".repeat(100)})))
        .unwrap_err();
    assert!(matches!(err, EngineError::Value(_)));
}

#[test]
fn a_merge_patch_creates_a_missing_key_and_keeps_ttl_and_metadata() {
    let mut e = engine();
    let r = e
        .patch(ts(1), "u:new", &Patch::merge(json!({"a": 1})))
        .unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(
        e.get(ts(1), "u:new").unwrap(),
        Some(Value::Json(json!({"a": 1})))
    );
    let opts = PutOptions::default()
        .ttl_ms(10_000)
        .metadata(json!({"owner": "me"}).as_object().unwrap().clone());
    e.put_with(ts(2), "u:ttl", &Value::Json(json!({"a": 1})), &opts)
        .unwrap();
    e.patch(ts(3), "u:ttl", &Patch::merge(json!({"b": 2})))
        .unwrap();
    let meta = e.get_metadata(ts(3), "u:ttl").unwrap().unwrap();
    assert_eq!(meta.expires_at, Some(ts(10_002)));
    assert_eq!(meta.user.get("owner"), Some(&json!("me")));
    assert_eq!(meta.version, 2);
}

#[test]
fn the_log_keeps_the_smaller_of_patch_and_value_and_replay_rebuilds_the_same_state() {
    let mut e = engine();
    e.put(ts(1), "u:1", &Value::Json(big_doc())).unwrap();
    // Small patch of a large value: logged as the patch.
    e.patch(ts(2), "u:1", &Patch::merge(json!({"name": "Grace"})))
        .unwrap();
    // Large patch of a small value: logged as the value.
    e.put(ts(3), "u:2", &Value::Json(json!({}))).unwrap();
    let grow = json!([{"op": "add", "path": "/blob", "value": "z".repeat(300)}]);
    e.patch(ts(4), "u:2", &Patch::json(grow).unwrap()).unwrap();
    let records = drain_log(&mut e);
    assert!(matches!(records[1].ops[0], LogOp::Patch { .. }));
    assert!(matches!(records[3].ops[0], LogOp::Update { .. }));
    let patch_bytes = records[1].encode().unwrap().len();
    let put_bytes = records[0].encode().unwrap().len();
    assert!(
        patch_bytes * 4 < put_bytes,
        "patch record {patch_bytes} B, put record {put_bytes} B"
    );

    let mut follower = engine();
    for record in &records {
        let bytes = record.encode().unwrap();
        assert!(follower.replay_bytes(&bytes).unwrap());
    }
    assert_eq!(follower.snapshot().unwrap(), e.snapshot().unwrap());
}

#[test]
fn replay_rejects_a_patch_that_does_not_reproduce_its_checksum() {
    let mut e = engine();
    e.put(ts(1), "u:1", &Value::Json(big_doc())).unwrap();
    e.patch(ts(2), "u:1", &Patch::merge(json!({"name": "Grace"})))
        .unwrap();
    let mut records = drain_log(&mut e);
    if let LogOp::Patch { checksum, .. } = &mut records[1].ops[0] {
        *checksum ^= 1;
    } else {
        panic!("expected a patch record");
    }
    let mut follower = engine();
    follower.replay(&records[0]).unwrap();
    let before = follower.snapshot().unwrap();
    assert!(follower.replay(&records[1]).is_err());
    assert_eq!(
        follower.snapshot().unwrap(),
        before,
        "a bad record changes nothing"
    );
    // Replayed onto a different value, the patch gives a different result: caught too.
    let mut other = engine();
    other
        .put(ts(1), "u:1", &Value::Json(json!({"other": true})))
        .unwrap();
    drain_log(&mut other);
    let mut good = drain_log(&mut {
        let mut e = engine();
        e.put(ts(1), "u:1", &Value::Json(big_doc())).unwrap();
        e.patch(ts(2), "u:1", &Patch::merge(json!({"name": "Grace"})))
            .unwrap();
        e
    });
    assert!(other.replay(&good.remove(1)).is_err());
}

#[test]
fn history_holds_materialised_values_and_events_say_update() {
    let mut e = engine();
    e.put(ts(1), "u:1", &Value::Json(json!({"v": 1}))).unwrap();
    e.patch(ts(2), "u:1", &Patch::merge(json!({"v": 2})))
        .unwrap();
    e.patch(
        ts(3),
        "u:1",
        &Patch::json(json!([{"op": "replace", "path": "/v", "value": 3}])).unwrap(),
    )
    .unwrap();
    for (revision, v) in [(1, 1), (2, 2), (3, 3)] {
        let at = e.get_at(ts(3), "u:1", revision).unwrap().unwrap();
        assert_eq!(at.value, Value::Json(json!({"v": v})));
        assert_eq!(at.version, revision);
    }
    let events: Vec<_> = std::iter::from_fn(|| e.poll_event()).collect();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].kind, ChangeKind::Update);
    assert_eq!(
        events[2].old.as_ref().unwrap().decode().unwrap(),
        Value::Json(json!({"v": 2}))
    );
}
