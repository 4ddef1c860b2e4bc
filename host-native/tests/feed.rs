//! The change feed and history through the Store: resumable streams, pattern subscriptions,
//! bounded buffers, patches and reads at earlier revisions.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use statemesh::core::EngineError;
use statemesh::{
    ChangeEvent, ChangeKind, EngineConfig, Error, ManualClock, Patch, Since, Store,
    SubscriptionError, Timestamp, Value,
};

async fn store_with_history(limit: usize) -> Store {
    Store::builder()
        .engine_config(EngineConfig::default().with_history_limit(limit))
        .open_in_memory()
        .await
        .unwrap()
}

async fn take(stream: &mut statemesh::ChangeStream, n: usize) -> Vec<ChangeEvent> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a change within 5 s")
            .unwrap();
        out.push(event);
    }
    out
}

fn revisions(events: &[ChangeEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| (e.revision, e.key.to_string()))
        .collect()
}

#[tokio::test]
async fn a_stream_replays_history_then_follows_live_and_resumes_without_gap_or_duplicate() {
    let store = store_with_history(10_000).await;
    for i in 0..30 {
        store.put(&format!("a:k{i}"), i as i64).await.unwrap();
    }
    let mut first = store.stream_changes(Since::Revision(0), None).unwrap();
    let mut seen = take(&mut first, 20).await;
    drop(first);
    // Writes while nobody listens, then a reconnect from the last revision seen.
    for i in 30..40 {
        store.put(&format!("a:k{i}"), i as i64).await.unwrap();
    }
    let last = seen.last().unwrap().revision;
    let mut second = store.stream_changes(Since::Revision(last), None).unwrap();
    seen.extend(take(&mut second, 20).await);
    // Live writes after the replay caught up.
    let writer = store.clone();
    let live = tokio::spawn(async move {
        for i in 40..50 {
            writer.put(&format!("a:k{i}"), i as i64).await.unwrap();
        }
    });
    seen.extend(take(&mut second, 10).await);
    live.await.unwrap();
    let expected: Vec<(u64, String)> = (0..50).map(|i| (i + 1, format!("a:k{i}"))).collect();
    assert_eq!(revisions(&seen), expected);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), second.next())
            .await
            .is_err(),
        "nothing more than what was written"
    );
}

#[tokio::test]
async fn one_write_arrives_as_one_unit_with_one_revision() {
    let store = store_with_history(100).await;
    store.put("a:x", 1i64).await.unwrap();
    let mut stream = store.stream_changes(Since::Now, None).unwrap();
    store
        .multi_put(&[("a:1", Value::from(1i64)), ("a:2", Value::from(2i64))])
        .await
        .unwrap();
    let events = take(&mut stream, 2).await;
    assert_eq!(events[0].revision, 2);
    assert_eq!(events[1].revision, 2);
}

#[tokio::test]
async fn a_stream_from_compacted_history_gets_a_clear_error() {
    let store = store_with_history(5).await;
    for i in 0..20 {
        store.put(&format!("a:k{i}"), i as i64).await.unwrap();
    }
    let floor = store.history_floor();
    assert_eq!(floor, 15, "5 changes kept");
    let err = store.stream_changes(Since::Revision(3), None).unwrap_err();
    assert_eq!(
        err,
        Error::Engine(EngineError::Compacted {
            requested: 3,
            floor: 15
        })
    );
    // From the floor itself, every kept change arrives.
    let mut stream = store.stream_changes(Since::Revision(floor), None).unwrap();
    let events = take(&mut stream, 5).await;
    assert_eq!(events.first().unwrap().revision, 16);
    // Explicit compaction moves the floor.
    store.compact(18).await.unwrap();
    assert!(matches!(
        store.stream_changes(Since::Revision(17), None),
        Err(Error::Engine(EngineError::Compacted { floor: 18, .. }))
    ));
    assert!(matches!(
        store.stream_changes(Since::Revision(99), None),
        Err(Error::Engine(EngineError::FutureRevision { .. }))
    ));
}

#[tokio::test]
async fn a_stream_since_a_time_starts_at_the_first_change_at_or_after_it() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000)));
    let store = Store::builder()
        .clock(clock.clone())
        .open_in_memory()
        .await
        .unwrap();
    store.put("a:old", 1i64).await.unwrap();
    clock.advance(100);
    store.put("a:new", 2i64).await.unwrap();
    let mut stream = store
        .stream_changes(Since::Time(Timestamp(1_050)), None)
        .unwrap();
    let events = take(&mut stream, 1).await;
    assert_eq!(events[0].key, "a:new");
}

#[tokio::test]
async fn pattern_subscriptions_see_only_matching_keys() {
    let store = store_with_history(100).await;
    let mut carts = store.subscribe_pattern("sessions:*.cart").unwrap();
    let mut all = store.subscribe().unwrap();
    let mut stream = store
        .stream_changes(Since::Revision(0), Some("sessions:u1.**"))
        .unwrap();
    store.put("sessions:u1.cart", "1").await.unwrap();
    store.put("sessions:u1.token", "t").await.unwrap();
    store.put("sessions:u2.cart", "2").await.unwrap();
    store.put("other:u1.cart", "x").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(carts.recv().await.unwrap().key);
    }
    assert_eq!(got, ["sessions:u1.cart", "sessions:u2.cart"]);
    assert!(carts.try_recv().is_none());
    for _ in 0..4 {
        all.recv().await.unwrap();
    }
    let keys: Vec<String> = take(&mut stream, 2)
        .await
        .into_iter()
        .map(|e| e.key.to_string())
        .collect();
    assert_eq!(keys, ["sessions:u1.cart", "sessions:u1.token"]);
    assert!(matches!(
        store.subscribe_pattern("sessions:[unclosed"),
        Err(Error::Engine(EngineError::Pattern(_)))
    ));
}

#[tokio::test]
async fn a_slow_subscriber_gets_lagged_and_memory_stays_bounded() {
    let store = Store::builder()
        .event_capacity(8)
        .open_in_memory()
        .await
        .unwrap();
    let mut slow = store.subscribe().unwrap();
    for i in 0..100 {
        store.put(&format!("a:k{i}"), i as i64).await.unwrap();
    }
    match slow.recv().await {
        Err(SubscriptionError::Lagged { missed }) => assert_eq!(missed, 92),
        other => panic!("expected Lagged, got {other:?}"),
    }
    // It goes on with the oldest change still buffered, and can fill the gap from history.
    let next = slow.recv().await.unwrap();
    assert_eq!(next.revision, 93);
    let gap = store.changes_since(0, 1_000).await.unwrap();
    assert_eq!(gap.len(), 100);
}

#[tokio::test]
async fn handler_subscriptions_run_until_unsubscribed() {
    let store = store_with_history(100).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let handle = store
        .subscribe_with(Some("a:*"), move |event| {
            sink.lock().unwrap().push(event.unwrap().key);
        })
        .unwrap();
    store.put("a:1", 1i64).await.unwrap();
    store.put("b:1", 1i64).await.unwrap();
    store.put("a:2", 2i64).await.unwrap();
    for _ in 0..100 {
        if seen.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(*seen.lock().unwrap(), ["a:1", "a:2"]);
    handle.unsubscribe();
    tokio::time::sleep(Duration::from_millis(10)).await;
    store.put("a:3", 3i64).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn patches_history_and_reads_at_revisions() {
    let store = store_with_history(100).await;
    store
        .put("doc:1", Value::Json(json!({"title": "draft", "n": 1})))
        .await
        .unwrap();
    let r = store
        .patch("doc:1", &Patch::merge(json!({"title": "final"})))
        .await
        .unwrap();
    assert_eq!(r.version, 2);
    store
        .patch(
            "doc:1",
            &Patch::json(json!([{"op": "remove", "path": "/n"}])).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get("doc:1").await.unwrap(),
        Some(Value::Json(json!({"title": "final"})))
    );
    let at1 = store.get_at("doc:1", 1).await.unwrap().unwrap();
    assert_eq!(at1.value, Value::Json(json!({"title": "draft", "n": 1})));
    let at2 = store.get_at("doc:1", 2).await.unwrap().unwrap();
    assert_eq!(at2.value, Value::Json(json!({"title": "final", "n": 1})));
    store.delete("doc:1").await.unwrap();
    assert_eq!(store.get_at("doc:1", 4).await.unwrap(), None);
    let history = store.key_history("doc:1").await.unwrap();
    let kinds: Vec<(u64, ChangeKind)> = history.iter().map(|v| (v.version, v.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, ChangeKind::Create),
            (2, ChangeKind::Update),
            (3, ChangeKind::Update),
            (0, ChangeKind::Delete)
        ]
    );
    assert!(matches!(
        store.get_at("doc:1", 9).await,
        Err(Error::Engine(EngineError::FutureRevision { .. }))
    ));
}

#[tokio::test]
async fn a_stream_resumes_across_a_restart_from_the_log_but_not_past_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::builder().open(dir.path()).await.unwrap();
        store
            .put(
                "doc:1",
                Value::Json(json!({"a": 1, "pad": "x".repeat(200)})),
            )
            .await
            .unwrap();
        store
            .patch("doc:1", &Patch::merge(json!({"a": 2})))
            .await
            .unwrap();
        store.set_ttl("doc:1", 3_600_000).await.unwrap();
        let mut stream = store.stream_changes(Since::Revision(0), None).unwrap();
        assert_eq!(take(&mut stream, 3).await.len(), 3);
        store.close().await;
    }
    let store = Store::builder().open(dir.path()).await.unwrap();
    let value = store.get("doc:1").await.unwrap().unwrap();
    assert_eq!(value, Value::Json(json!({"a": 2, "pad": "x".repeat(200)})));
    // The log rebuilt the history: a consumer that saw revision 1 resumes from there, with the
    // kinds the writes had (the TTL change is a metadata change, not an update).
    assert_eq!(store.history_floor(), 0);
    let mut stream = store.stream_changes(Since::Revision(1), None).unwrap();
    store
        .patch("doc:1", &Patch::merge(json!({"a": 3})))
        .await
        .unwrap();
    let events = take(&mut stream, 3).await;
    let seen: Vec<(u64, ChangeKind)> = events.iter().map(|e| (e.revision, e.kind)).collect();
    assert_eq!(
        seen,
        [
            (2, ChangeKind::Update),
            (3, ChangeKind::Metadata),
            (4, ChangeKind::Update)
        ]
    );
    let at2 = store.get_at("doc:1", 2).await.unwrap().unwrap();
    assert_eq!(
        at2.value,
        Value::Json(json!({"a": 2, "pad": "x".repeat(200)}))
    );
    // A checkpoint drops the log, and with it the history before it, once reopened.
    store.checkpoint().await.unwrap();
    store.close().await;
    let store = Store::builder().open(dir.path()).await.unwrap();
    assert_eq!(store.history_floor(), 4);
    assert!(matches!(
        store.stream_changes(Since::Revision(1), None),
        Err(Error::Engine(EngineError::Compacted { floor: 4, .. }))
    ));
}
