//! Search on the native store: declarations on the builder survive a reopen (rebuilt from the
//! recovered keyspace), HNSW follows deletes and updates, expiry hides keys.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use serde_json::json;
use statemesh::core::search::{ExactVectorIndex, VectorIndex, VectorSpec};
use statemesh::{
    EngineError, Error, HnswParams, ManualClock, Metric, SearchError, Store, TextIndexDef,
    Timestamp, Value, ValueIndexDef, VectorIndexDef,
};

fn builder() -> statemesh::StoreBuilder {
    Store::builder()
        .text_index(TextIndexDef::new("notes", "notes:**").field("body"))
        .value_index(ValueIndexDef::new("by_owner", "notes:**").field("owner"))
        .vector_index(VectorIndexDef::new("emb", "notes:**", 4, Metric::Cosine).field("emb"))
}

#[tokio::test]
async fn indexes_declared_on_the_builder_are_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = builder().open(dir.path()).await.unwrap();
        for i in 0..20u32 {
            let doc = json!({
                "body": format!("meeting notes number {i} about {}", if i.is_multiple_of(2) { "budget" } else { "hiring" }),
                "owner": i % 3,
                "emb": [1.0, i as f32, 0.5, (i % 4) as f32],
            });
            store
                .put(&format!("notes:n{i:02}"), Value::Json(doc))
                .await
                .unwrap();
        }
        store.delete("notes:n04").await.unwrap();
        store.close().await;
    }
    let store = builder().open(dir.path()).await.unwrap();
    let hits = store
        .search_text("notes", "budget", None, 100)
        .await
        .unwrap();
    assert_eq!(hits.len(), 9); // even numbers below 20, without n04
    assert!(hits.iter().all(|h| h.key != "notes:n04"));
    let owners = store
        .search_by_value("by_owner", Some("owner"), &json!(1), None)
        .await
        .unwrap();
    assert_eq!(owners.len(), 6); // 1, 7, 10, 13, 16, 19 (n04 is deleted)
    let near = store
        .vector_search("emb", &[1.0, 7.0, 0.5, 3.0], 1, None)
        .await
        .unwrap();
    assert_eq!(near[0].key, "notes:n07");
    assert!(store.index_build_time() > std::time::Duration::ZERO);
    // Errors come through the store's error type.
    let err = store
        .search_text("notes", "body:(", None, 10)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Engine(EngineError::Search(SearchError::MalformedQuery { .. }))
    ));
    store.close().await;
}

#[tokio::test]
async fn expired_keys_are_hidden_before_the_sweep_and_add_vector_round_trips() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000)));
    let store = Store::builder()
        .clock(clock.clone())
        .open_in_memory()
        .await
        .unwrap();
    store
        .declare_text_index(TextIndexDef::new("s", "sess:**"))
        .await
        .unwrap();
    store
        .declare_vector_index(VectorIndexDef::new("v", "vec:**", 2, Metric::L2))
        .await
        .unwrap();
    store
        .put_with_ttl("sess:a", "token alpha", 50)
        .await
        .unwrap();
    store.put("sess:b", "token beta").await.unwrap();
    store.add_vector("v", "vec:a", &[0.0, 1.0]).await.unwrap();
    store.add_vector("v", "vec:b", &[5.0, 5.0]).await.unwrap();
    clock.advance(60);
    let hits = store.search_text("s", "token", None, 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].key, "sess:b");
    let near = store
        .vector_search("v", &[0.0, 0.9], 2, None)
        .await
        .unwrap();
    assert_eq!(near[0].key, "vec:a");
    assert!((near[0].distance - 0.1).abs() < 1e-6);
    let err = store.add_vector("v", "vec:c", &[1.0]).await.unwrap_err();
    assert!(matches!(
        err,
        Error::Engine(EngineError::Search(SearchError::DimensionMismatch { .. }))
    ));
    store.close().await;
}

/// Clustered Gaussian-ish vectors: `clusters` centres, points scattered around them.
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..dim).map(|_| rng.random_range(-10.0..10.0)).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            c.iter()
                .map(|x| x + rng.random_range(-1.0f32..1.0) + rng.random_range(-1.0f32..1.0))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn hnsw_recall_stays_high_after_deleting_and_updating_a_fifth() {
    const N: usize = 2_000;
    const DIM: usize = 16;
    let store = Store::builder()
        .hnsw_params(HnswParams {
            ef_search: 64,
            ..HnswParams::default()
        })
        .open_in_memory()
        .await
        .unwrap();
    store
        .declare_vector_index(VectorIndexDef::new("v", "v:**", DIM, Metric::L2))
        .await
        .unwrap();
    let data = clustered(N, DIM, 7);
    let fresh = clustered(N / 10, DIM, 8);
    let mut exact = ExactVectorIndex::new(VectorSpec {
        dimension: DIM,
        metric: Metric::L2,
    });
    for (i, v) in data.iter().enumerate() {
        store.add_vector("v", &format!("v:{i}"), v).await.unwrap();
        exact.insert(i as u64, v);
    }
    // Delete 10% and update another 10%.
    for i in (0..N).step_by(10) {
        store.delete(&format!("v:{i}")).await.unwrap();
        exact.remove(i as u64);
    }
    for (j, i) in (5..N).step_by(10).enumerate() {
        store
            .add_vector("v", &format!("v:{i}"), &fresh[j])
            .await
            .unwrap();
        exact.insert(i as u64, &fresh[j]);
    }
    let queries = clustered(100, DIM, 9);
    let (mut found, mut total) = (0usize, 0usize);
    for q in &queries {
        let truth: Vec<String> = exact
            .search(q, 10, None)
            .iter()
            .map(|n| format!("v:{}", n.id))
            .collect();
        let got = store.vector_search("v", q, 10, None).await.unwrap();
        assert!(got.iter().all(|h| {
            let i: usize = h.key[2..].parse().unwrap();
            !i.is_multiple_of(10)
        }));
        found += got.iter().filter(|h| truth.contains(&h.key)).count();
        total += truth.len();
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
    store.set_vector_search_effort("v", 128).unwrap();
    assert!(matches!(
        store.set_vector_search_effort("nope", 128),
        Err(statemesh::Error::Engine(statemesh::EngineError::Search(
            statemesh::SearchError::UnknownIndex { .. }
        )))
    ));
    store.close().await;
}
