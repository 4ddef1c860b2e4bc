//! Search through the engine: declarations, text, value and vector searches, and how indexes
//! follow every kind of change to the keyspace.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use serde_json::json;
use statemesh_core::search::{SearchError, TextIndexDef, ValueIndexDef, VectorIndexDef};
use statemesh_core::{
    Engine, EngineConfig, EngineError, Language, Metric, Patch, PutOptions, Timestamp, Txn, TxnOp,
    Value,
};

const T: Timestamp = Timestamp(1_000);

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).unwrap()
}

fn text_keys(e: &Engine, query: &str, filter: Option<&str>) -> Vec<String> {
    e.search_text(T, "msgs", query, filter, 10)
        .unwrap()
        .into_iter()
        .map(|h| h.key)
        .collect()
}

fn chat() -> Engine {
    let mut e = engine();
    e.declare_text_index(
        TextIndexDef::new("msgs", "chat:**")
            .field("text")
            .field("title"),
    )
    .unwrap();
    let docs = [
        ("chat:c1.m1", "the cats are running home", "pets"),
        ("chat:c1.m2", "a dog runs in the park", "pets"),
        ("chat:c2.m1", "quarterly revenue report", "finance"),
        ("chat:c2.m2", "running totals of revenue", "finance"),
    ];
    for (key, text, title) in docs {
        e.put(T, key, &Value::Json(json!({"text": text, "title": title})))
            .unwrap();
    }
    e
}

#[test]
fn text_search_stems_drops_stop_words_and_ranks_by_bm25() {
    let e = chat();
    // "running", "runs" and "run" share a stem.
    let hits = e.search_text(T, "msgs", "run", None, 10).unwrap();
    let keys: Vec<&str> = hits.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(keys.len(), 3);
    assert!(!keys.contains(&"chat:c2.m1"));
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(hits.iter().all(|h| h.score > 0.0));
    // "the" is a stop word: it matches nothing.
    assert!(text_keys(&e, "the", None).is_empty());
    // Field queries, phrases, boolean operators.
    assert_eq!(
        text_keys(&e, "title:finance AND running", None),
        ["chat:c2.m2"]
    );
    assert_eq!(text_keys(&e, "\"revenue report\"", None), ["chat:c2.m1"]);
    assert_eq!(text_keys(&e, "revenue -report", None), ["chat:c2.m2"]);
    // A pattern filter narrows the keys.
    assert_eq!(text_keys(&e, "run", Some("chat:c1.*")).len(), 2);
}

#[test]
fn text_indexes_follow_puts_deletes_patches_and_transactions() {
    let mut e = chat();
    assert_eq!(text_keys(&e, "revenue", None).len(), 2);
    e.delete(T, "chat:c2.m1").unwrap();
    assert_eq!(text_keys(&e, "revenue", None), ["chat:c2.m2"]);
    // An update replaces the old text.
    e.put(
        T,
        "chat:c2.m2",
        &Value::Json(json!({"text": "nothing here"})),
    )
    .unwrap();
    assert!(text_keys(&e, "revenue", None).is_empty());
    let patch = Patch::merge(json!({"text": "revenue is back"}));
    e.patch(T, "chat:c2.m2", &patch).unwrap();
    assert_eq!(text_keys(&e, "revenue", None), ["chat:c2.m2"]);
    // A transaction's writes and deletes reach the index too.
    let txn = Txn::new()
        .then(TxnOp::put(
            "chat:c3.m1",
            Value::Json(json!({"text": "revenue up"})),
        ))
        .then(TxnOp::delete("chat:c2.m2"));
    e.txn(T, &txn).unwrap();
    assert_eq!(text_keys(&e, "revenue", None), ["chat:c3.m1"]);
    // A delete_pattern too.
    e.delete_pattern(T, "chat:c3.**").unwrap();
    assert!(text_keys(&e, "revenue", None).is_empty());
}

#[test]
fn expired_keys_never_come_back_from_any_search() {
    let mut e = engine();
    e.declare_text_index(TextIndexDef::new("msgs", "s:**"))
        .unwrap();
    e.declare_value_index(ValueIndexDef::new("vals", "s:**"))
        .unwrap();
    e.put_with(
        T,
        "s:a",
        &Value::from("hello world"),
        &PutOptions::default().ttl_ms(10),
    )
    .unwrap();
    e.put(T, "s:b", &Value::from("hello there")).unwrap();
    let later = Timestamp(T.0 + 10);
    // Expired at `later`, though not swept yet.
    let hits = e.search_text(later, "msgs", "hello", None, 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].key, "s:b");
    let found = e
        .search_by_value(later, "vals", None, &json!("hello world"), None)
        .unwrap();
    assert!(found.is_empty());
    // After the sweep the index no longer holds it at all.
    e.handle_timeout(later);
    assert_eq!(e.index_stats("msgs").unwrap().entries, 1);
}

#[test]
fn eviction_removes_keys_from_indexes() {
    let mut e = Engine::new(EngineConfig::default().with_memory_limits(Some(3), None)).unwrap();
    e.declare_text_index(TextIndexDef::new("msgs", "e:**"))
        .unwrap();
    for i in 0..10 {
        e.put(
            T,
            &format!("e:k{i}"),
            &Value::from(format!("word{i} common")),
        )
        .unwrap();
    }
    let hits = e.search_text(T, "msgs", "common", None, 100).unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(e.index_stats("msgs").unwrap().entries, 3);
}

#[test]
fn declaring_an_index_indexes_keys_already_held_and_replay_rebuilds_the_same() {
    let mut e = engine();
    for i in 0..50 {
        e.put(
            T,
            &format!("d:k{i:02}"),
            &Value::from(format!("alpha beta{}", i % 5)),
        )
        .unwrap();
    }
    e.delete(T, "d:k07").unwrap();
    e.declare_text_index(TextIndexDef::new("t", "d:**").language(None))
        .unwrap();
    let hits = e.search_text(T, "t", "beta2", None, 100).unwrap();
    assert_eq!(hits.len(), 9); // k02, k12, ..., k47 without the deleted k07
    // Rebuild by replay: the same hits in the same order with the same scores.
    let mut replayed = engine();
    replayed
        .declare_text_index(TextIndexDef::new("t", "d:**").language(None))
        .unwrap();
    while let Some(r) = e.poll_log() {
        replayed.replay_owned(r).unwrap();
    }
    let again = replayed.search_text(T, "t", "beta2", None, 100).unwrap();
    let keys = |h: &[statemesh_core::TextHit]| h.iter().map(|h| h.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&hits), keys(&again));
}

#[test]
fn many_small_flushes_merge_and_deletes_stay_hidden() {
    let mut e = engine();
    e.declare_text_index(TextIndexDef::new("t", "m:**").language(Some(Language::English)))
        .unwrap();
    // Alternate writes and searches: one tiny segment per search, merged as they pile up.
    for i in 0..300u32 {
        e.put(
            T,
            &format!("m:k{i:03}"),
            &Value::from(format!("common tok{}", i % 7)),
        )
        .unwrap();
        if i.is_multiple_of(3) {
            e.delete(T, &format!("m:k{:03}", i / 2)).unwrap();
        }
        let hits = e.search_text(T, "t", "common", None, 1000).unwrap();
        assert_eq!(hits.len(), e.index_stats("t").unwrap().entries);
    }
    let live = e.keys(T, "m:**").unwrap();
    let mut hits: Vec<String> = e
        .search_text(T, "t", "common", None, 1000)
        .unwrap()
        .into_iter()
        .map(|h| h.key)
        .collect();
    hits.sort();
    assert_eq!(hits, live);
}

#[test]
fn malformed_queries_and_bad_declarations_get_clear_errors() {
    let mut e = chat();
    let err = e
        .search_text(T, "msgs", "title:(unclosed", None, 10)
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Search(SearchError::MalformedQuery { .. })),
        "{err}"
    );
    let err = e
        .search_text(T, "msgs", "nosuchfield:x", None, 10)
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Search(SearchError::MalformedQuery { .. })),
        "{err}"
    );
    let err = e.search_text(T, "nope", "x", None, 10).unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::UnknownIndex { .. })
    ));
    let err = e.search_text(T, "msgs", "x", None, 0).unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::InvalidLimit { .. })
    ));
    let err = e
        .declare_text_index(TextIndexDef::new("msgs", "chat:**"))
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::DuplicateIndex { .. })
    ));
    let err = e
        .declare_text_index(TextIndexDef::new("x", "chat:**").field("a.b").field("a_b"))
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::InvalidDeclaration { .. })
    ));
    assert!(e.drop_index("msgs"));
    assert!(!e.drop_index("msgs"));
}

#[test]
fn value_search_matches_fields_whole_values_and_arrays() {
    let mut e = engine();
    e.declare_value_index(
        ValueIndexDef::new("by_user", "s:**")
            .field("user")
            .field("tags"),
    )
    .unwrap();
    e.declare_value_index(ValueIndexDef::new("whole", "w:**"))
        .unwrap();
    e.put(
        T,
        "s:1",
        &Value::Json(json!({"user": 7, "tags": ["a", "b"]})),
    )
    .unwrap();
    e.put(T, "s:2", &Value::Json(json!({"user": 7.0, "tags": "b"})))
        .unwrap();
    e.put(T, "s:3", &Value::Json(json!({"user": "7"}))).unwrap();
    e.put(T, "w:x", &Value::from("on")).unwrap();
    e.put(T, "w:y", &Value::Integer(3)).unwrap();
    let find = |e: &Engine, idx: &str, field: Option<&str>, v: serde_json::Value| {
        e.search_by_value(T, idx, field, &v, None).unwrap()
    };
    assert_eq!(find(&e, "by_user", Some("user"), json!(7)), ["s:1", "s:2"]);
    assert_eq!(find(&e, "by_user", Some("user"), json!("7")), ["s:3"]);
    assert_eq!(
        find(&e, "by_user", Some("tags"), json!("b")),
        ["s:1", "s:2"]
    );
    assert_eq!(find(&e, "whole", None, json!("on")), ["w:x"]);
    assert_eq!(find(&e, "whole", None, json!(3)), ["w:y"]);
    e.put(T, "s:1", &Value::Json(json!({"user": 8}))).unwrap();
    assert_eq!(find(&e, "by_user", Some("tags"), json!("b")), ["s:2"]);
    let err = e
        .search_by_value(T, "by_user", Some("other"), &json!(1), None)
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::MalformedQuery { .. })
    ));
}

#[test]
fn vector_search_by_field_and_by_add_vector() {
    let mut e = engine();
    e.declare_vector_index(VectorIndexDef::new("emb", "doc:**", 3, Metric::L2).field("v"))
        .unwrap();
    e.declare_vector_index(VectorIndexDef::new("raw", "vec:**", 2, Metric::Cosine))
        .unwrap();
    for i in 0..5 {
        e.put(
            T,
            &format!("doc:{i}"),
            &Value::Json(json!({"v": [i, 0, 0], "text": "x"})),
        )
        .unwrap();
    }
    // A wrong dimension in a value is stored but not indexed.
    e.put(T, "doc:bad", &Value::Json(json!({"v": [1, 2]})))
        .unwrap();
    assert_eq!(e.index_stats("emb").unwrap().entries, 5);
    assert_eq!(e.index_stats("emb").unwrap().skipped, 1);
    let hits = e
        .vector_search(T, "emb", &[3.2, 0.0, 0.0], 2, None)
        .unwrap();
    assert_eq!(hits[0].key, "doc:3");
    assert_eq!(hits[1].key, "doc:4");
    assert!((hits[0].distance - 0.2).abs() < 1e-6);
    let filtered = e
        .vector_search(T, "emb", &[3.2, 0.0, 0.0], 2, Some("doc:{0,1}"))
        .unwrap();
    assert_eq!(filtered[0].key, "doc:1");
    e.delete(T, "doc:3").unwrap();
    let hits = e
        .vector_search(T, "emb", &[3.2, 0.0, 0.0], 1, None)
        .unwrap();
    assert_eq!(hits[0].key, "doc:4");

    e.add_vector(T, "raw", "vec:east", &[1.0, 0.0]).unwrap();
    e.add_vector(T, "raw", "vec:north", &[0.0, 5.0]).unwrap();
    let hits = e.vector_search(T, "raw", &[0.1, 1.0], 1, None).unwrap();
    assert_eq!(hits[0].key, "vec:north");
    // Errors: dimension, zero vector under cosine, a key outside the pattern, field indexes.
    let err = e.add_vector(T, "raw", "vec:x", &[1.0]).unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::DimensionMismatch {
            expected: 2,
            actual: 1,
            ..
        })
    ));
    let err = e
        .vector_search(T, "raw", &[1.0, 2.0, 3.0], 1, None)
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::DimensionMismatch { .. })
    ));
    let err = e.add_vector(T, "raw", "vec:z", &[0.0, 0.0]).unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::InvalidVector { .. })
    ));
    let err = e.add_vector(T, "raw", "other:z", &[1.0, 0.0]).unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::KeyOutsideIndex { .. })
    ));
    let err = e
        .add_vector(T, "emb", "doc:z", &[1.0, 0.0, 0.0])
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Search(SearchError::InvalidVector { .. })
    ));
    assert!(!e.exists(T, "vec:x").unwrap());
}
