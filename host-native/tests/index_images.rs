//! Index images on the native store: a store reopened on its directory loads the images its
//! last checkpoint stored instead of rebuilding (no key is read back into an index), and what
//! happened after the checkpoint (writes, deletes, expiries; in the log only) is searchable
//! exactly as before. Damaged, stale or mismatched images are ignored: the index is rebuilt
//! and answers the same.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use statemesh::{
    ManualClock, Metric, PutOptions, Store, StoreBuilder, TextIndexDef, Timestamp, Value,
    ValueIndexDef, VectorIndexDef,
};

const NAMES: [&str; 3] = ["notes", "by_owner", "emb"];

fn builder(clock: &Arc<ManualClock>, exact: bool) -> StoreBuilder {
    Store::builder()
        .clock(clock.clone())
        .exact_vectors(exact)
        .text_index(TextIndexDef::new("notes", "notes:**").field("body"))
        .value_index(ValueIndexDef::new("by_owner", "notes:**").field("owner"))
        .vector_index(VectorIndexDef::new("emb", "notes:**", 4, Metric::L2).field("emb"))
}

fn doc(i: u32, topic: &str) -> Value {
    Value::Json(json!({
        "body": format!("meeting notes number {i} about {topic}"),
        "owner": i % 3,
        "emb": [i as f32, (i % 7) as f32, 1.0, (i % 2) as f32],
    }))
}

/// A store with 40 notes and a checkpoint, then (in the log only) a new note, an update, a
/// delete and a short-lived note; a checkpointed note with a TTL expires after the close.
async fn populate(dir: &Path, clock: &Arc<ManualClock>, exact: bool) {
    let store = builder(clock, exact).open(dir).await.unwrap();
    for i in 0..40u32 {
        let topic = if i % 2 == 0 { "budget" } else { "hiring" };
        store
            .put(&format!("notes:n{i:02}"), doc(i, topic))
            .await
            .unwrap();
    }
    let ttl = PutOptions::default().ttl_ms(5_000);
    store
        .put_with("notes:ephemeral", doc(100, "budget"), &ttl)
        .await
        .unwrap();
    store.checkpoint().await.unwrap();
    // After the checkpoint: only in the log.
    store
        .put("notes:late", doc(41, "zeppelin budget"))
        .await
        .unwrap();
    store.put("notes:n01", doc(1, "zeppelin")).await.unwrap();
    store.delete("notes:n02").await.unwrap();
    store
        .put_with("notes:brief", doc(42, "zeppelin"), &ttl)
        .await
        .unwrap();
    store.close().await;
    clock.advance(10_000);
}

async fn keys(store: &Store, query: &str) -> Vec<String> {
    let mut keys: Vec<String> = store
        .search_text("notes", query, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.key)
        .collect();
    keys.sort();
    keys
}

/// Everything the searches say, as comparable text (text hits as sorted keys: a rebuilt index
/// has other segments, hence other BM25 statistics, than one that lived through the writes).
async fn answers(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for q in ["budget", "hiring", "zeppelin", "meeting"] {
        out.push(format!("{q}: {:?}", keys(store, q).await));
    }
    for owner in 0..3 {
        let keys = store
            .search_by_value("by_owner", Some("owner"), &json!(owner), None)
            .await
            .unwrap();
        out.push(format!("owner {owner}: {keys:?}"));
    }
    let hits = store
        .vector_search("emb", &[20.0, 3.0, 1.0, 0.0], 5, None)
        .await
        .unwrap();
    out.push(format!("emb: {hits:?}"));
    out
}

async fn check_contents(store: &Store) {
    assert_eq!(
        keys(store, "zeppelin").await,
        vec!["notes:late", "notes:n01"],
        "a write after the checkpoint is searchable; an expired one is not"
    );
    let budget = keys(store, "budget").await;
    assert!(budget.contains(&"notes:late".to_owned()));
    assert!(
        !budget.contains(&"notes:n02".to_owned()),
        "deleted after the checkpoint"
    );
    assert!(!budget.contains(&"notes:ephemeral".to_owned()), "expired");
    assert!(
        !keys(store, "hiring")
            .await
            .contains(&"notes:n01".to_owned()),
        "updated"
    );
    let owner2 = store
        .search_by_value("by_owner", Some("owner"), &json!(2), None)
        .await
        .unwrap();
    assert!(owner2.contains(&"notes:n05".to_owned()));
    assert!(!owner2.contains(&"notes:n02".to_owned()));
    assert!(!owner2.contains(&"notes:ephemeral".to_owned()));
    let near = store
        .vector_search("emb", &[2.0, 2.0, 1.0, 0.0], 1, None)
        .await
        .unwrap();
    assert_ne!(near[0].key, "notes:n02");
}

fn image_file(dir: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("index-") && n.ends_with(".img"))
        })
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// The answers of a store rebuilt from scratch on a copy of `dir` without its images.
async fn rebuilt_answers(dir: &Path, clock: &Arc<ManualClock>, exact: bool) -> Vec<String> {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.starts_with("index-") && name != "LOCK" {
            std::fs::copy(&path, copy.path().join(name)).unwrap();
        }
    }
    let store = builder(clock, exact).open(copy.path()).await.unwrap();
    for name in NAMES {
        assert!(
            !store
                .index_origin(name)
                .unwrap()
                .unwrap()
                .restored_from_image
        );
    }
    let out = answers(&store).await;
    store.close().await;
    out
}

#[tokio::test]
async fn a_reopened_store_loads_its_images_and_replays_only_the_log() {
    for exact in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
        populate(dir.path(), &clock, exact).await;
        image_file(dir.path());
        let expected = rebuilt_answers(dir.path(), &clock, exact).await;

        let store = builder(&clock, exact).open(dir.path()).await.unwrap();
        for name in NAMES {
            let origin = store.index_origin(name).unwrap().unwrap();
            assert!(origin.restored_from_image, "{name} (exact {exact})");
            assert_eq!(origin.backfilled, 0, "{name}: no key was read back");
        }
        check_contents(&store).await;
        assert_eq!(answers(&store).await, expected, "exact {exact}");
        // The loaded indexes take new writes and deletes.
        store.put("notes:new", doc(7, "quokka")).await.unwrap();
        store.delete("notes:n04").await.unwrap();
        assert_eq!(keys(&store, "quokka").await, vec!["notes:new"]);
        assert!(
            !keys(&store, "budget")
                .await
                .contains(&"notes:n04".to_owned())
        );
        // A second generation: checkpoint the loaded indexes, reopen, load again.
        store.checkpoint().await.unwrap();
        store.put("notes:newer", doc(8, "quokka")).await.unwrap();
        store.close().await;
        let store = builder(&clock, exact).open(dir.path()).await.unwrap();
        assert!(
            store
                .index_origin("notes")
                .unwrap()
                .unwrap()
                .restored_from_image
        );
        assert_eq!(
            keys(&store, "quokka").await,
            vec!["notes:new", "notes:newer"]
        );
        assert!(
            !keys(&store, "budget")
                .await
                .contains(&"notes:n04".to_owned())
        );
        store.close().await;
    }
}

#[tokio::test]
async fn damaged_stale_or_mismatched_images_are_ignored_and_indexes_rebuilt() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), &clock, true).await;
    let expected = rebuilt_answers(dir.path(), &clock, true).await;
    let path = image_file(dir.path());
    let good = std::fs::read(&path).unwrap();

    let flipped = {
        let mut b = good.clone();
        let at = b.len() / 2;
        b[at] ^= 0x10;
        b
    };
    let truncated = good[..good.len() - 100].to_vec();
    for (what, bytes) in [
        ("flipped", flipped),
        ("truncated", truncated),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let store = builder(&clock, true).open(dir.path()).await.unwrap();
        for name in NAMES {
            let origin = store.index_origin(name).unwrap().unwrap();
            assert!(!origin.restored_from_image, "{what}: {name}");
            assert!(origin.backfilled > 0, "{what}: {name}");
        }
        check_contents(&store).await;
        assert_eq!(answers(&store).await, expected, "{what}");
        store.close().await;
    }

    // A changed declaration rebuilds that index only.
    std::fs::write(&path, &good).unwrap();
    let changed = Store::builder()
        .clock(clock.clone())
        .exact_vectors(true)
        .text_index(
            TextIndexDef::new("notes", "notes:**")
                .field("body")
                .language(None),
        )
        .value_index(ValueIndexDef::new("by_owner", "notes:**").field("owner"))
        .vector_index(VectorIndexDef::new("emb", "notes:**", 4, Metric::L2).field("emb"))
        .open(dir.path())
        .await
        .unwrap();
    assert!(
        !changed
            .index_origin("notes")
            .unwrap()
            .unwrap()
            .restored_from_image
    );
    assert!(
        changed
            .index_origin("by_owner")
            .unwrap()
            .unwrap()
            .restored_from_image
    );
    assert!(
        changed
            .index_origin("emb")
            .unwrap()
            .unwrap()
            .restored_from_image
    );
    assert_eq!(
        keys(&changed, "zeppelin").await,
        vec!["notes:late", "notes:n01"]
    );
    changed.close().await;

    // Stale: the images of an earlier checkpoint under the current snapshot's name.
    std::fs::write(&path, &good).unwrap();
    let store = builder(&clock, true).open(dir.path()).await.unwrap();
    store.put("notes:after", doc(50, "walrus")).await.unwrap();
    store.checkpoint().await.unwrap();
    store.close().await;
    let newer = image_file(dir.path());
    assert_ne!(newer, path);
    std::fs::write(&newer, &good).unwrap();
    let store = builder(&clock, true).open(dir.path()).await.unwrap();
    for name in NAMES {
        assert!(
            !store
                .index_origin(name)
                .unwrap()
                .unwrap()
                .restored_from_image
        );
    }
    assert_eq!(keys(&store, "walrus").await, vec!["notes:after"]);
    check_contents(&store).await;
    store.close().await;
}

#[tokio::test]
async fn index_origin_tells_a_reloaded_hnsw_graph_from_one_rebuilt_from_the_image_vectors() {
    // Written by HNSW: the image holds the graph, which is reloaded. Written by the exact index:
    // the image holds only the vectors, from which HNSW rebuilds its graph.
    for (written_exact, rebuilt) in [(false, false), (true, true)] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
        populate(dir.path(), &clock, written_exact).await;
        let store = builder(&clock, false).open(dir.path()).await.unwrap();
        let emb = store.index_origin("emb").unwrap().unwrap();
        assert!(emb.restored_from_image, "written exact: {written_exact}");
        assert_eq!(emb.backfilled, 0, "written exact: {written_exact}");
        assert_eq!(
            emb.rebuilt_from_image_vectors, rebuilt,
            "written exact: {written_exact}"
        );
        for name in ["notes", "by_owner"] {
            let origin = store.index_origin(name).unwrap().unwrap();
            assert!(origin.restored_from_image && !origin.rebuilt_from_image_vectors);
        }
        check_contents(&store).await;
        store.close().await;
    }
}
