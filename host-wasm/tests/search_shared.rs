//! One search test, two targets: natively under `cargo test`, and as wasm32 under
//! wasm-bindgen-test in Node (`cargo test -p statemesh-wasm --target wasm32-unknown-unknown`
//! with wasm-bindgen-test-runner; no `run_in_browser`, so Node runs it). The same documents and
//! queries must give the same hits, in the same order, with the same scores, on both: the
//! expected scores below were computed natively, so a target that ranks or scores differently
//! fails here.
#![allow(clippy::unwrap_used)]

use statemesh_core::search::{Metric, TextIndexDef, ValueIndexDef, VectorIndexDef};
use statemesh_core::{Engine, EngineConfig, Timestamp, Value};

#[cfg(target_family = "wasm")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const T: Timestamp = Timestamp(1_000_000);

fn corpus() -> Engine {
    let mut e = Engine::new(EngineConfig::default()).unwrap();
    e.declare_text_index(
        TextIndexDef::new("notes", "notes:*")
            .field("title")
            .field("body"),
    )
    .unwrap();
    e.declare_value_index(ValueIndexDef::new("owner", "notes:*").field("owner"))
        .unwrap();
    e.declare_vector_index(VectorIndexDef::new("emb", "notes:*", 3, Metric::Cosine).field("emb"))
        .unwrap();
    let docs = [
        (
            "a",
            "Rust storage engines",
            "write-ahead logs and snapshots",
            "ann",
            [1.0, 0.0, 0.0],
        ),
        (
            "b",
            "Cooking rice",
            "a storage jar keeps rice dry",
            "bob",
            [0.0, 1.0, 0.0],
        ),
        (
            "c",
            "Storage tiers",
            "storage, storage and more storage",
            "ann",
            [0.7, 0.7, 0.0],
        ),
        ("d", "Gardening", "tomatoes need sun", "cy", [0.0, 0.0, 1.0]),
        (
            "e",
            "Engines of change",
            "history of the steam engine",
            "bob",
            [0.6, 0.0, 0.8],
        ),
    ];
    for (id, title, body, owner, emb) in docs {
        let doc = serde_json::json!({ "title": title, "body": body, "owner": owner, "emb": emb });
        e.put(T, &format!("notes:{id}"), &Value::Json(doc)).unwrap();
    }
    e
}

fn text(e: &Engine, query: &str) -> Vec<(String, String)> {
    e.search_text(T, "notes", query, None, 10)
        .unwrap()
        .into_iter()
        .map(|h| (h.key, format!("{:.4}", h.score)))
        .collect()
}

fn keys(hits: &[(String, String)]) -> Vec<&str> {
    hits.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn text_hits_order_and_scores_are_the_same_on_every_target() {
    let mut e = corpus();
    let storage = text(&e, "storage");
    // Four mentions rank first.
    assert_eq!(keys(&storage), ["notes:c", "notes:b", "notes:a"]);
    let engine = text(&e, "engine");
    assert_eq!(
        keys(&engine),
        ["notes:e", "notes:a"],
        "stemmed: engines = engine"
    );
    assert_eq!(keys(&text(&e, "\"storage jar\"")), ["notes:b"]);
    assert_eq!(
        keys(&text(&e, "title:storage AND body:snapshots")),
        ["notes:a"]
    );
    assert!(text(&e, "the").is_empty(), "a stop word matches nothing");

    // After a delete and an update, statistics change the same way everywhere.
    e.delete(T, "notes:c").unwrap();
    let doc = serde_json::json!({ "title": "Storage", "body": "cold storage", "owner": "cy" });
    e.put(T, "notes:d", &Value::Json(doc)).unwrap();
    let after = text(&e, "storage");
    assert_eq!(keys(&after), ["notes:d", "notes:b", "notes:a"]);

    let scores: Vec<&str> = storage
        .iter()
        .chain(&engine)
        .chain(&after)
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(scores, GOLDEN_SCORES, "scores differ from the native run");
}

/// `storage`, `engine`, then `storage` after the changes, to 4 decimals, as computed natively.
const GOLDEN_SCORES: [&str; 8] = [
    "2.2359", "0.7753", "0.7268", "2.3924", "0.7268", "1.6920", "0.5897", "0.5500",
];

#[test]
fn value_and_vector_hits_are_the_same_on_every_target() {
    let mut e = corpus();
    let ann = e
        .search_by_value(T, "owner", Some("owner"), &serde_json::json!("ann"), None)
        .unwrap();
    assert_eq!(ann, ["notes:a", "notes:c"]);

    let near: Vec<(String, String)> = e
        .vector_search(T, "emb", &[1.0, 0.1, 0.0], 3, None)
        .unwrap()
        .into_iter()
        .map(|h| (h.key, format!("{:.6}", h.distance)))
        .collect();
    assert_eq!(keys(&near), ["notes:a", "notes:c", "notes:e"]);
    // Cosine distance is 1 - cos; for a and (1, 0.1, 0): 1 - 1/sqrt(1.01).
    assert_eq!(near[0].1, format!("{:.6}", 1.0 - 1.0 / 1.01f64.sqrt()));

    e.delete(T, "notes:a").unwrap();
    let near = e
        .vector_search(T, "emb", &[1.0, 0.1, 0.0], 1, Some("notes:*"))
        .unwrap();
    assert_eq!(near[0].key, "notes:c");
}
