//! Transactions, rule by rule: compare-then-else, interactive optimistic transactions, two-phase
//! commit with locks, and their recovery.
#![allow(clippy::unwrap_used)]

use statemesh_core::{
    ChangeKind, Compare, CompareOp, CompareTarget, Engine, EngineConfig, EngineError, Isolation,
    LogOp, LogRecord, Patch, SNAPSHOT_FORMAT_V1, SNAPSHOT_FORMAT_V2, Timestamp, Txn, TxnId, TxnOp,
    TxnOpResult, Value, ValueError, WaitPolicy,
};

const T0: u64 = 1_000;

fn t(ms: u64) -> Timestamp {
    Timestamp(ms)
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default().with_max_value_size(64)).unwrap()
}

fn get(e: &Engine, key: &str) -> Option<Value> {
    e.get(t(T0), key).unwrap()
}

fn drain(e: &mut Engine) -> Vec<LogRecord> {
    std::iter::from_fn(|| e.poll_log()).collect()
}

// ---- compare-then-else ----

#[test]
fn compares_on_value_version_revisions_and_existence() {
    let mut e = engine();
    e.put(t(T0), "a:x", &Value::Integer(5)).unwrap(); // rev 1
    e.put(t(T0), "a:y", &Value::from("b")).unwrap(); // rev 2
    e.put(t(T0), "a:x", &Value::Integer(6)).unwrap(); // rev 3, x version 2
    let holds = |e: &mut Engine, c: Compare| {
        let r = e
            .txn(t(T0), &Txn::new().when(c).then(TxnOp::get("a:x")))
            .unwrap();
        r.succeeded
    };
    use CompareOp::*;
    assert!(holds(&mut e, Compare::value_equals("a:x", 6i64)));
    assert!(!holds(&mut e, Compare::value_equals("a:x", 5i64)));
    assert!(holds(
        &mut e,
        Compare::new("a:x", NotEqual, CompareTarget::Value(5i64.into()))
    ));
    assert!(holds(
        &mut e,
        Compare::new("a:x", Greater, CompareTarget::Value(5i64.into()))
    ));
    assert!(holds(
        &mut e,
        Compare::new("a:x", Less, CompareTarget::Value(6.5f64.into()))
    ));
    assert!(holds(
        &mut e,
        Compare::new("a:y", Less, CompareTarget::Value("c".into()))
    ));
    // Kinds that do not order: Greater and Less are false.
    assert!(!holds(
        &mut e,
        Compare::new("a:y", Greater, CompareTarget::Value(1i64.into()))
    ));
    assert!(!holds(
        &mut e,
        Compare::new("a:y", Less, CompareTarget::Value(1i64.into()))
    ));
    // A value compare on an absent key is false, NotEqual included.
    assert!(!holds(
        &mut e,
        Compare::new("a:none", NotEqual, CompareTarget::Value(1i64.into()))
    ));
    assert!(holds(&mut e, Compare::version("a:x", Equal, 2)));
    assert!(holds(&mut e, Compare::version("a:x", Greater, 1)));
    assert!(!holds(&mut e, Compare::version("a:x", Less, 2)));
    assert!(holds(&mut e, Compare::version("a:none", Equal, 0)));
    assert!(holds(&mut e, Compare::mod_revision("a:x", Equal, 3)));
    assert!(holds(&mut e, Compare::mod_revision("a:y", Less, 3)));
    assert!(holds(&mut e, Compare::create_revision("a:x", Equal, 1)));
    assert!(holds(&mut e, Compare::create_revision("a:none", Equal, 0)));
    assert!(holds(&mut e, Compare::exists("a:x")));
    assert!(!holds(&mut e, Compare::exists("a:none")));
    assert!(holds(&mut e, Compare::absent("a:none")));
    assert!(!holds(&mut e, Compare::absent("a:y")));
    // Every compare must hold.
    let both = Txn::new()
        .when(Compare::exists("a:x"))
        .when(Compare::exists("a:none"))
        .then(TxnOp::put("a:z", 1i64))
        .otherwise(TxnOp::put("a:w", 1i64));
    let r = e.txn(t(T0), &both).unwrap();
    assert!(!r.succeeded);
    assert_eq!(get(&e, "a:z"), None);
    assert_eq!(get(&e, "a:w"), Some(Value::Integer(1)));
    // Reads only: no revision.
    assert_eq!(e.revision(), 4);
}

#[test]
fn a_branch_is_one_revision_and_its_gets_see_its_own_writes() {
    let mut e = engine();
    e.put(t(T0), "a:k", &Value::from("old")).unwrap();
    let txn = Txn::new()
        .when(Compare::value_equals("a:k", "old"))
        .then(TxnOp::get("a:k"))
        .then(TxnOp::put("a:k", "new"))
        .then(TxnOp::get("a:k"))
        .then(TxnOp::put("a:n", 1i64))
        .then(TxnOp::delete("a:n"))
        .then(TxnOp::get("a:n"))
        .then(TxnOp::delete("a:missing"));
    let r = e.txn(t(T0), &txn).unwrap();
    assert!(r.succeeded);
    assert_eq!(r.revision, 2);
    assert_eq!(e.revision(), 2);
    let got = |i: usize| match &r.results[i] {
        TxnOpResult::Get(v) => v.as_ref().map(|v| (v.value.clone(), v.version)),
        other => panic!("not a get: {other:?}"),
    };
    assert_eq!(got(0), Some((Value::from("old"), 1)));
    assert_eq!(r.results[1], TxnOpResult::Put { version: 2 });
    assert_eq!(got(2), Some((Value::from("new"), 2)));
    assert_eq!(got(5), None);
    assert_eq!(r.results[4], TxnOpResult::Delete { deleted: true });
    assert_eq!(r.results[6], TxnOpResult::Delete { deleted: false });
    assert_eq!(get(&e, "a:k"), Some(Value::from("new")));
    assert_eq!(get(&e, "a:n"), None);
    let meta = e.get_metadata(t(T0), "a:k").unwrap().unwrap();
    assert_eq!(meta.mod_revision, 2);
    // With a TTL.
    let r = e
        .txn(
            t(T0),
            &Txn::new().then(TxnOp::put_with_ttl("a:ttl", 1i64, 50)),
        )
        .unwrap();
    assert_eq!(r.revision, 3);
    assert_eq!(e.get(t(T0 + 49), "a:ttl").unwrap(), Some(Value::Integer(1)));
    assert_eq!(e.get(t(T0 + 50), "a:ttl").unwrap(), None);
}

#[test]
fn an_invalid_op_in_a_branch_applies_nothing() {
    let mut e = engine();
    e.put(t(T0), "a:k", &Value::from("v")).unwrap();
    let before = e.snapshot().unwrap();
    let too_big = Value::Bytes(vec![0; 100]);
    for txn in [
        Txn::new()
            .then(TxnOp::put("a:k", "changed"))
            .then(TxnOp::put("a:big", too_big.clone())),
        Txn::new()
            .then(TxnOp::delete("a:k"))
            .then(TxnOp::put("bad key:x", 1i64)),
        Txn::new()
            .then(TxnOp::put("a:k", "changed"))
            .then(TxnOp::put_with_ttl("a:t", 1i64, 0)),
        // The branch that does not run is checked too.
        Txn::new()
            .then(TxnOp::put("a:k", "changed"))
            .otherwise(TxnOp::put("a:big", too_big.clone())),
    ] {
        let err = e.txn(t(T0), &txn).unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::Value(ValueError::TooLarge { .. })
                    | EngineError::Key(_)
                    | EngineError::InvalidTtl
            ),
            "{err}"
        );
        assert_eq!(e.snapshot().unwrap(), before);
        assert_eq!(e.revision(), 1);
    }
    assert_eq!(drain(&mut e).len(), 1);
}

// ---- interactive transactions ----

#[test]
fn a_branch_patches_in_order_and_a_failing_patch_refuses_the_branch() {
    use serde_json::json;
    let mut e = engine();
    e.put(t(T0), "a:doc", &Value::Json(json!({"n": 1})))
        .unwrap();
    e.put_with_ttl(t(T0), "a:ttl", &Value::Json(json!({})), 60_000)
        .unwrap();
    drain(&mut e);
    let txn = Txn::new()
        .when(Compare::exists("a:doc"))
        .then(TxnOp::patch("a:doc", Patch::merge(json!({"m": 2}))))
        .then(TxnOp::patch(
            "a:doc",
            Patch::json(json!([{"op": "remove", "path": "/n"}])).unwrap(),
        ))
        .then(TxnOp::get("a:doc"))
        .then(TxnOp::patch("a:ttl", Patch::merge(json!({"x": true}))));
    let r = e.txn(t(T0 + 1), &txn).unwrap();
    assert!(r.succeeded);
    assert_eq!(r.results[0], TxnOpResult::Patch { version: 2 });
    assert_eq!(r.results[1], TxnOpResult::Patch { version: 3 });
    match &r.results[2] {
        TxnOpResult::Get(Some(v)) => assert_eq!(v.value, Value::Json(json!({"m": 2}))),
        other => panic!("expected the patched value, got {other:?}"),
    }
    assert_eq!(get(&e, "a:doc"), Some(Value::Json(json!({"m": 2}))));
    let meta = e.get_metadata(t(T0 + 1), "a:ttl").unwrap().unwrap();
    assert_eq!(
        meta.expires_at,
        Some(t(T0 + 60_000)),
        "a patch keeps the TTL"
    );
    assert_eq!(drain(&mut e).len(), 1, "one revision");
    // A `test` that fails in the middle: nothing of the branch happens.
    let before = e.revision();
    let failing = Txn::new()
        .then(TxnOp::put("a:other", Value::Integer(1)))
        .then(TxnOp::patch(
            "a:doc",
            Patch::json(json!([{"op": "test", "path": "/m", "value": 99}])).unwrap(),
        ));
    assert!(matches!(
        e.txn(t(T0 + 2), &failing),
        Err(EngineError::PatchFailed { .. })
    ));
    assert_eq!(e.revision(), before);
    assert_eq!(get(&e, "a:other"), None);
}

#[test]
fn own_writes_are_visible_and_snapshot_reads_ignore_later_commits() {
    let mut e = engine();
    e.put(t(T0), "a:x", &Value::Integer(1)).unwrap();
    let id = e.begin_txn(t(T0), Isolation::Snapshot, 10_000).unwrap();
    e.put(t(T0), "a:x", &Value::Integer(2)).unwrap();
    e.put(t(T0), "a:new", &Value::Integer(9)).unwrap();
    e.delete(t(T0), "a:x").unwrap();
    assert_eq!(
        e.txn_get(t(T0), id, "a:x").unwrap(),
        Some(Value::Integer(1))
    );
    assert_eq!(e.txn_get(t(T0), id, "a:new").unwrap(), None);
    e.txn_put(t(T0), id, "a:x", &Value::Integer(10)).unwrap();
    assert_eq!(
        e.txn_get(t(T0), id, "a:x").unwrap(),
        Some(Value::Integer(10))
    );
    e.txn_delete(t(T0), id, "a:y").unwrap();
    assert_eq!(e.txn_get(t(T0), id, "a:y").unwrap(), None);
    // Buffered writes are invisible outside until commit.
    assert_eq!(get(&e, "a:x"), None);
    assert_eq!(e.txn_snapshot(t(T0), id).unwrap(), 1);
}

#[test]
fn serializable_commit_fails_when_a_read_key_changed_even_an_absent_one() {
    let mut e = engine();
    e.put(t(T0), "a:x", &Value::Integer(1)).unwrap();
    // A key read as absent that someone creates meanwhile: a phantom.
    let id = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    assert_eq!(e.txn_get(t(T0), id, "a:absent").unwrap(), None);
    e.txn_put(t(T0), id, "a:x", &Value::Integer(2)).unwrap();
    e.put(t(T0), "a:absent", &Value::Integer(7)).unwrap();
    assert_eq!(
        e.commit_txn(t(T0), id).unwrap_err(),
        EngineError::TxnConflict {
            key: "a:absent".into()
        }
    );
    assert_eq!(get(&e, "a:x"), Some(Value::Integer(1)));
    // The conflict ended it.
    assert_eq!(
        e.commit_txn(t(T0), id).unwrap_err(),
        EngineError::TxnNotFound { id }
    );
    // Writes without reads do not conflict under serializable: T2 -> T1 is a serial order.
    let id = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    e.txn_put(t(T0), id, "a:x", &Value::Integer(3)).unwrap();
    e.put(t(T0), "a:x", &Value::Integer(4)).unwrap();
    assert_eq!(e.commit_txn(t(T0), id).unwrap().affected, 1);
    assert_eq!(get(&e, "a:x"), Some(Value::Integer(3)));
    // The first changed key in key order is named.
    let id = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    for k in ["a:c", "a:b", "a:x"] {
        e.txn_get(t(T0), id, k).unwrap();
    }
    e.put(t(T0), "a:x", &Value::Integer(5)).unwrap();
    e.put(t(T0), "a:c", &Value::Integer(5)).unwrap();
    assert_eq!(
        e.commit_txn(t(T0), id).unwrap_err(),
        EngineError::TxnConflict { key: "a:c".into() }
    );
}

#[test]
fn snapshot_isolation_first_committer_wins_and_allows_write_skew() {
    let mut e = engine();
    e.put(t(T0), "a:x", &Value::Integer(0)).unwrap();
    let t1 = e.begin_txn(t(T0), Isolation::Snapshot, 10_000).unwrap();
    let t2 = e.begin_txn(t(T0), Isolation::Snapshot, 10_000).unwrap();
    e.txn_put(t(T0), t1, "a:x", &Value::Integer(1)).unwrap();
    e.txn_put(t(T0), t2, "a:x", &Value::Integer(2)).unwrap();
    e.commit_txn(t(T0), t1).unwrap();
    assert_eq!(
        e.commit_txn(t(T0), t2).unwrap_err(),
        EngineError::TxnConflict { key: "a:x".into() }
    );
    assert_eq!(get(&e, "a:x"), Some(Value::Integer(1)));
    // Write skew: each reads the other's key and writes its own. Snapshot isolation lets both
    // commit; serializable refuses the second.
    for (isolation, second_ok) in [
        (Isolation::Snapshot, true),
        (Isolation::Serializable, false),
    ] {
        let a = e.begin_txn(t(T0), isolation, 10_000).unwrap();
        let b = e.begin_txn(t(T0), isolation, 10_000).unwrap();
        e.txn_get(t(T0), a, "a:q").unwrap();
        e.txn_get(t(T0), b, "a:p").unwrap();
        e.txn_put(t(T0), a, "a:p", &Value::Integer(1)).unwrap();
        e.txn_put(t(T0), b, "a:q", &Value::Integer(1)).unwrap();
        e.commit_txn(t(T0), a).unwrap();
        assert_eq!(e.commit_txn(t(T0), b).is_ok(), second_ok, "{isolation:?}");
        e.multi_delete(t(T0), &["a:p", "a:q"]).unwrap();
    }
}

#[test]
fn commit_is_one_revision_or_none_and_rollback_drops_everything() {
    let mut e = engine();
    let id = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    assert_eq!(id, TxnId(0));
    e.txn_put(t(T0), id, "a:1", &Value::Integer(1)).unwrap();
    e.txn_put_with_ttl(t(T0), id, "a:2", &Value::Integer(2), 100)
        .unwrap();
    let r = e.commit_txn(t(T0), id).unwrap();
    assert_eq!((r.revision, r.affected), (1, 2));
    assert_eq!(drain(&mut e).len(), 1);
    assert_eq!(e.get(t(T0 + 99), "a:2").unwrap(), Some(Value::Integer(2)));
    // Nothing to change: no revision.
    let id = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    assert_eq!(id, TxnId(1));
    e.txn_delete(t(T0), id, "a:none").unwrap();
    assert_eq!(e.commit_txn(t(T0), id).unwrap().revision, 1);
    let id = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    e.txn_put(t(T0), id, "a:1", &Value::Integer(100)).unwrap();
    e.rollback_txn(t(T0), id).unwrap();
    assert_eq!(get(&e, "a:1"), Some(Value::Integer(1)));
    assert_eq!(
        e.txn_get(t(T0), id, "a:1").unwrap_err(),
        EngineError::TxnNotFound { id }
    );
    assert_eq!(e.open_txns(), 0);
    assert_eq!(
        e.begin_txn(t(T0), Isolation::Snapshot, 0),
        Err(EngineError::InvalidTimeout)
    );
}

#[test]
fn an_abandoned_transaction_times_out_and_unpins_the_history() {
    let mut e = Engine::new(EngineConfig::default().with_history_limit(0)).unwrap();
    e.put(t(T0), "a:x", &Value::Integer(0)).unwrap();
    assert_eq!(e.poll_timeout(), None);
    let id = e.begin_txn(t(T0), Isolation::Serializable, 500).unwrap();
    assert_eq!(e.poll_timeout(), Some(t(T0 + 500)));
    assert_eq!(
        e.txn_get(t(T0), id, "a:x").unwrap(),
        Some(Value::Integer(0))
    );
    for i in 1..=5 {
        e.put(t(T0 + i), "a:x", &Value::Integer(i as i64)).unwrap();
    }
    // Pinned: changes after the snapshot are kept although the limit is 0.
    assert_eq!(e.history_len(), 5);
    assert_eq!(
        e.txn_get(t(T0 + 10), id, "a:x").unwrap(),
        Some(Value::Integer(0))
    );
    // The host's timer fires at the deadline.
    e.handle_timeout(t(T0 + 500));
    assert_eq!(e.open_txns(), 0);
    assert_eq!(e.history_len(), 0);
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(
        e.commit_txn(t(T0 + 501), id).unwrap_err(),
        EngineError::TxnExpired { id }
    );
    assert_eq!(
        e.commit_txn(t(T0), TxnId(99)).unwrap_err(),
        EngineError::TxnNotFound { id: TxnId(99) }
    );
    // Any write past the deadline drops it too.
    let id = e.begin_txn(t(T0 + 600), Isolation::Snapshot, 10).unwrap();
    e.put(t(T0 + 610), "a:y", &Value::Integer(1)).unwrap();
    assert_eq!(e.open_txns(), 0);
    assert_eq!(
        e.txn_put(t(T0 + 611), id, "a:x", &Value::Integer(1))
            .unwrap_err(),
        EngineError::TxnExpired { id }
    );
    // A key with a TTL and a transaction: poll_timeout is the earlier one.
    e.put_with_ttl(t(T0 + 700), "a:t", &Value::Integer(1), 50)
        .unwrap();
    e.begin_txn(t(T0 + 700), Isolation::Snapshot, 30).unwrap();
    assert_eq!(e.poll_timeout(), Some(t(T0 + 730)));
}

#[test]
fn a_sweep_after_the_snapshot_conflicts_with_a_read() {
    let mut e = engine();
    e.put_with_ttl(t(T0), "a:x", &Value::Integer(1), 100)
        .unwrap();
    let id = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    assert_eq!(
        e.txn_get(t(T0), id, "a:x").unwrap(),
        Some(Value::Integer(1))
    );
    e.txn_put(t(T0), id, "a:y", &Value::Integer(1)).unwrap();
    assert_eq!(
        e.commit_txn(t(T0 + 100), id).unwrap_err(),
        EngineError::TxnConflict { key: "a:x".into() }
    );
}

// ---- two-phase commit ----

fn prepared_txn(e: &mut Engine, key: &str, value: i64) -> TxnId {
    let id = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    e.txn_put(t(T0), id, key, &Value::Integer(value)).unwrap();
    e.prepare_txn(t(T0), id, WaitPolicy::Fail).unwrap();
    id
}

#[test]
fn a_locked_key_refuses_every_ordinary_write() {
    let mut e = engine();
    e.put(t(T0), "a:k", &Value::Integer(1)).unwrap();
    e.put_with_ttl(t(T0), "a:ttl", &Value::Integer(1), 1_000)
        .unwrap();
    let holder = prepared_txn(&mut e, "a:k", 2);
    let ttl_holder = prepared_txn(&mut e, "a:ttl", 2);
    let locked = |key: &str, txn| EngineError::Locked {
        key: key.into(),
        txn,
    };
    let now = t(T0);
    let before = e.revision();
    assert_eq!(
        e.put(now, "a:k", &Value::Integer(3)).unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(e.delete(now, "a:k").unwrap_err(), locked("a:k", holder));
    assert_eq!(
        e.multi_put(
            now,
            &[("a:other", Value::Integer(1)), ("a:k", Value::Integer(1))]
        )
        .unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(
        e.multi_delete(now, &["a:k"]).unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(
        e.increment(now, "a:k", 1).unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(
        e.compare_and_swap(now, "a:k", None, &Value::Integer(1))
            .unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(
        e.set_ttl(now, "a:k", 10).unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(
        e.append(now, "a:k", &Value::from("x")).unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(
        e.set_metadata(now, "a:k", &serde_json::Map::new())
            .unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(
        e.patch(now, "a:k", &Patch::merge(serde_json::json!({"x": 1})))
            .unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(
        e.extend_ttl(now, "a:ttl", 10).unwrap_err(),
        locked("a:ttl", ttl_holder)
    );
    assert_eq!(
        e.remove_ttl(now, "a:ttl").unwrap_err(),
        locked("a:ttl", ttl_holder)
    );
    assert_eq!(
        e.delete_pattern(now, "a:*").unwrap_err(),
        locked("a:k", holder)
    );
    assert_eq!(
        e.txn(now, &Txn::new().then(TxnOp::put("a:k", 1i64)))
            .unwrap_err(),
        locked("a:k", holder)
    );
    let other = e.begin_txn(now, Isolation::Snapshot, 10_000).unwrap();
    e.txn_put(now, other, "a:k", &Value::Integer(9)).unwrap();
    assert_eq!(e.commit_txn(now, other).unwrap_err(), locked("a:k", holder));
    assert_eq!(e.revision(), before);
    // Reads and unrelated keys are fine.
    assert_eq!(get(&e, "a:k"), Some(Value::Integer(1)));
    e.put(now, "a:free", &Value::Integer(1)).unwrap();
    // Expiry is a system change and still happens.
    e.handle_timeout(t(T0 + 1_000));
    assert_eq!(e.get(t(T0 + 1_000), "a:ttl").unwrap(), None);
    // Resolving releases the locks; the refused commit can go on.
    e.commit_prepared(t(T0 + 1_000), holder).unwrap();
    assert_eq!(get(&e, "a:k"), Some(Value::Integer(2)));
    e.cancel_prepared(t(T0 + 1_000), ttl_holder).unwrap();
    assert_eq!(e.get(t(T0 + 1_000), "a:ttl").unwrap(), None);
    // `other` wrote a:k, which holder's commit changed since other's snapshot.
    assert_eq!(
        e.commit_txn(t(T0 + 1_000), other).unwrap_err(),
        EngineError::TxnConflict { key: "a:k".into() }
    );
    e.put(t(T0 + 1_000), "a:k", &Value::Integer(3)).unwrap();
}

#[test]
fn prepare_conflicts_follow_the_wait_policy() {
    let mut e = engine();
    let holder = prepared_txn(&mut e, "a:k", 1);
    let id = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    e.txn_put(t(T0), id, "a:k", &Value::Integer(2)).unwrap();
    assert_eq!(
        e.prepare_txn(t(T0), id, WaitPolicy::Fail).unwrap_err(),
        EngineError::Locked {
            key: "a:k".into(),
            txn: holder
        }
    );
    assert_eq!(
        e.prepare_txn(t(T0), id, WaitPolicy::Wait).unwrap_err(),
        EngineError::WouldWait {
            key: "a:k".into(),
            txn: holder
        }
    );
    // Still open; once the holder is cancelled it prepares.
    e.cancel_prepared(t(T0), holder).unwrap();
    e.prepare_txn(t(T0), id, WaitPolicy::Wait).unwrap();
    // A serializable reader of a key a pending transaction writes cannot prepare, and a writer
    // of a key a pending serializable transaction read cannot either.
    let reader = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    e.txn_get(t(T0), reader, "a:k").unwrap();
    e.txn_put(t(T0), reader, "a:r", &Value::Integer(1)).unwrap();
    assert!(matches!(
        e.prepare_txn(t(T0), reader, WaitPolicy::Fail),
        Err(EngineError::Locked { txn, .. }) if txn == id
    ));
    e.rollback_txn(t(T0), reader).unwrap();
    let sr = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    e.txn_get(t(T0), sr, "a:read").unwrap();
    e.prepare_txn(t(T0), sr, WaitPolicy::Fail).unwrap();
    assert_eq!(
        e.put(t(T0), "a:read", &Value::Integer(1)).unwrap_err(),
        EngineError::Locked {
            key: "a:read".into(),
            txn: sr
        }
    );
    // Errors of resolution calls.
    let open = e.begin_txn(t(T0), Isolation::Serializable, 10_000).unwrap();
    assert_eq!(
        e.commit_prepared(t(T0), open).unwrap_err(),
        EngineError::TxnNotPrepared { id: open }
    );
    assert_eq!(
        e.txn_put(t(T0), id, "a:z", &Value::Integer(1)).unwrap_err(),
        EngineError::TxnPrepared { id }
    );
    assert_eq!(
        e.cancel_prepared(t(T0), TxnId(77)).unwrap_err(),
        EngineError::TxnNotFound { id: TxnId(77) }
    );
    e.commit_prepared(t(T0), id).unwrap();
    assert_eq!(
        e.commit_prepared(t(T0), id).unwrap_err(),
        EngineError::TxnNotFound { id }
    );
}

#[test]
fn prepared_transactions_do_not_time_out_and_each_step_is_a_revision() {
    let mut e = engine();
    let id = e.begin_txn(t(T0), Isolation::Snapshot, 100).unwrap();
    e.txn_delete(t(T0), id, "a:none").unwrap();
    assert_eq!(e.prepare_txn(t(T0), id, WaitPolicy::Fail).unwrap(), 1);
    assert_eq!(e.poll_timeout(), None);
    e.handle_timeout(t(T0 + 1_000_000));
    assert_eq!(e.prepared_txns(), vec![id]);
    // Changes no key, still its own revision: the log must see the resolution.
    let r = e.commit_prepared(t(T0 + 1_000_000), id).unwrap();
    assert_eq!((r.revision, r.affected), (2, 0));
    let records = drain(&mut e);
    assert!(matches!(records[0].ops[0], LogOp::Prepare { txn, .. } if txn == id));
    assert_eq!(records[1].ops, vec![LogOp::CommitPrepared { txn: id }]);
}

/// Builds an engine with two pending transactions, one committed and one cancelled.
fn engine_with_pending() -> (Engine, Vec<LogRecord>) {
    let mut e = engine();
    e.put(t(T0), "a:x", &Value::Integer(1)).unwrap();
    let a = prepared_txn(&mut e, "a:x", 10);
    let b = prepared_txn(&mut e, "a:y", 20);
    let c = prepared_txn(&mut e, "a:z", 30);
    let d = prepared_txn(&mut e, "a:w", 40);
    e.commit_prepared(t(T0), c).unwrap();
    e.cancel_prepared(t(T0), d).unwrap();
    assert_eq!(e.prepared_txns(), vec![a, b]);
    let log = drain(&mut e);
    (e, log)
}

#[test]
fn replay_rebuilds_pending_transactions() {
    let (mut e, log) = engine_with_pending();
    let mut replayed = engine();
    for record in &log {
        let bytes = record.encode().unwrap();
        assert!(replayed.replay_bytes(&bytes).unwrap());
    }
    assert_eq!(replayed.prepared_txns(), e.prepared_txns());
    assert_eq!(replayed.snapshot().unwrap(), e.snapshot().unwrap());
    assert_eq!(get(&replayed, "a:z"), Some(Value::Integer(30)));
    // Locks hold after replay; the coordinator can resolve.
    assert!(matches!(
        replayed.put(t(T0), "a:x", &Value::Integer(0)),
        Err(EngineError::Locked { .. })
    ));
    let a = replayed.prepared_txns()[0];
    replayed.commit_prepared(t(T0), a).unwrap();
    e.commit_prepared(t(T0), a).unwrap();
    assert_eq!(get(&replayed, "a:x"), Some(Value::Integer(10)));
    assert_eq!(replayed.snapshot().unwrap(), e.snapshot().unwrap());
    // New ids never reuse a pending one.
    let next = replayed.begin_txn(t(T0), Isolation::Snapshot, 10).unwrap();
    assert!(next.0 > replayed.prepared_txns()[0].0);
    // A record that resolves a transaction that is not pending is refused.
    let mut fresh = engine();
    let bogus = LogRecord {
        revision: 1,
        at: t(T0),
        ops: vec![LogOp::CancelPrepared { txn: TxnId(5) }],
    };
    assert!(fresh.replay(&bogus).is_err());
    assert_eq!(fresh.revision(), 0);
}

#[test]
fn snapshots_carry_pending_transactions_and_v1_still_loads() {
    let (e, _) = engine_with_pending();
    let bytes = e.snapshot().unwrap();
    assert_eq!(bytes[0], SNAPSHOT_FORMAT_V2);
    let mut restored = Engine::restore(e.config().clone(), &bytes).unwrap();
    assert_eq!(restored.prepared_txns(), e.prepared_txns());
    assert_eq!(restored.snapshot().unwrap(), bytes);
    let b = restored.prepared_txns()[1];
    assert!(matches!(
        restored.delete(t(T0), "a:y"),
        Err(EngineError::Locked { txn, .. }) if txn == b
    ));
    let next = restored.begin_txn(t(T0), Isolation::Snapshot, 10).unwrap();
    assert_eq!(next, TxnId(4));
    restored.commit_prepared(t(T0), b).unwrap();
    assert_eq!(get(&restored, "a:y"), Some(Value::Integer(20)));
    // A store with nothing pending writes V1, and V1 loads.
    let mut plain = engine();
    plain.put(t(T0), "a:x", &Value::Integer(1)).unwrap();
    let v1 = plain.snapshot().unwrap();
    assert_eq!(v1[0], SNAPSHOT_FORMAT_V1);
    let back = Engine::restore(plain.config().clone(), &v1).unwrap();
    assert_eq!(get(&back, "a:x"), Some(Value::Integer(1)));
    assert!(back.prepared_txns().is_empty());
    // A V2 snapshot cut short is refused.
    assert!(Engine::restore(e.config().clone(), &bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn a_v1_snapshot_written_before_transactions_existed_loads() {
    // Bytes of `put(1000, "a:k", Integer(7))` then `snapshot()`, as the engine wrote them before
    // transactions existed (format V1: header, one entry).
    const FROZEN: [u8; 41] = [
        1, 1, 232, 7, 1, 46, 0, 1, 1, 97, 1, 107, 10, 2, 0, 7, 0, 0, 0, 0, 0, 0, 0, 152, 144, 210,
        242, 167, 239, 130, 194, 68, 232, 7, 232, 7, 0, 1, 1, 1, 0,
    ];
    let frozen: &[u8] = &FROZEN;
    let e = engine();
    let back = Engine::restore(e.config().clone(), frozen).unwrap();
    assert_eq!(get(&back, "a:k"), Some(Value::Integer(7)));
    assert_eq!(back.revision(), 1);
}

#[test]
fn interactive_commit_events_carry_one_revision() {
    let mut e = engine();
    let id = e.begin_txn(t(T0), Isolation::Serializable, 1_000).unwrap();
    e.txn_put(t(T0), id, "a:b", &Value::Integer(1)).unwrap();
    e.txn_put(t(T0), id, "a:a", &Value::Integer(1)).unwrap();
    e.commit_txn(t(T0), id).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| e.poll_event()).collect();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|ev| ev.revision == 1 && ev.kind == ChangeKind::Create)
    );
    assert_eq!(events[0].key, "a:a");
}

/// The same calls give the same replies, log bytes and snapshot bytes, transactions included.
#[test]
fn transactions_are_deterministic() {
    let run = || {
        let mut e = engine();
        let mut out = Vec::new();
        e.put(t(T0), "a:x", &Value::Integer(1)).unwrap();
        let a = e.begin_txn(t(T0), Isolation::Serializable, 100).unwrap();
        let b = e.begin_txn(t(T0), Isolation::Snapshot, 1_000).unwrap();
        out.push(format!("{:?}", e.txn_get(t(T0), a, "a:x")));
        e.txn_put(t(T0), a, "a:y", &Value::Integer(2)).unwrap();
        e.txn_put(t(T0), b, "a:x", &Value::Integer(3)).unwrap();
        out.push(format!(
            "{:?}",
            e.prepare_txn(t(T0 + 1), b, WaitPolicy::Fail)
        ));
        out.push(format!("{:?}", e.commit_txn(t(T0 + 200), a)));
        let txn = Txn::new()
            .when(Compare::exists("a:x"))
            .then(TxnOp::put("a:z", 1i64))
            .then(TxnOp::get("a:z"));
        out.push(format!("{:?}", e.txn(t(T0 + 300), &txn)));
        out.push(format!("{:?}", e.commit_prepared(t(T0 + 400), b)));
        let log: Vec<Vec<u8>> = drain(&mut e).iter().map(|r| r.encode().unwrap()).collect();
        (out, log, e.snapshot().unwrap())
    };
    let first = run();
    assert_eq!(first, run());
    // The expired transaction's commit was refused; the prepared one committed.
    assert!(first.0[2].contains("TxnExpired"), "{:?}", first.0);
    assert_eq!(first.1.len(), 4);
}
