//! The native Store: wiring of time, the expiry timer, events, streams and lifecycle.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use statemesh::core::EngineError;
use statemesh::{
    ChangeKind, Error, ManualClock, PutOptions, Store, SubscriptionError, Timestamp, Ttl, Value,
    WriteOp,
};

async fn manual_store() -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let store = Store::builder()
        .clock(clock.clone())
        .open_in_memory()
        .await
        .unwrap();
    (store, clock)
}

#[tokio::test]
async fn crud_through_the_store() {
    let store = Store::in_memory().await.unwrap();
    let r = store.put("app:user.1.name", "ada").await.unwrap();
    assert_eq!(
        (r.op, r.version, r.revision, r.affected),
        (WriteOp::Create, 1, 1, 1)
    );
    assert!(
        r.latency > Duration::ZERO,
        "latency is measured by the host"
    );
    let r = store.put("app:user.1.name", "ada lovelace").await.unwrap();
    assert_eq!((r.op, r.version, r.revision), (WriteOp::Update, 2, 2));
    assert_eq!(
        store.get("app:user.1.name").await.unwrap(),
        Some(Value::from("ada lovelace"))
    );
    assert!(store.exists("app:user.1.name").await.unwrap());
    let r = store.delete("app:user.1.name").await.unwrap();
    assert_eq!((r.op, r.affected), (WriteOp::Delete, 1));
    let r = store.delete("app:user.1.name").await.unwrap();
    assert_eq!((r.op, r.affected, r.revision), (WriteOp::Noop, 0, 3));
    assert_eq!(store.get("app:user.1.name").await.unwrap(), None);
}

#[tokio::test]
async fn typed_errors_reach_the_caller() {
    let store = Store::in_memory().await.unwrap();
    let err = store.get("app:bad..key").await.unwrap_err();
    assert!(matches!(err, Error::Engine(EngineError::Key(_))), "{err}");
    store.put("app:n", 1i64).await.unwrap();
    let err = store.put_if_version("app:n", 2i64, 5).await.unwrap_err();
    assert_eq!(
        err,
        Error::Engine(EngineError::VersionConflict {
            key: "app:n".into(),
            expected: 5,
            actual: 1
        })
    );
    store.put("app:s", "text").await.unwrap();
    let err = store.increment("app:s", 1).await.unwrap_err();
    assert!(
        matches!(err, Error::Engine(EngineError::WrongType { .. })),
        "{err}"
    );
    let err = store.keys("app:{unclosed").await.unwrap_err();
    assert!(
        matches!(err, Error::Engine(EngineError::Pattern(_))),
        "{err}"
    );
}

#[tokio::test]
async fn ttl_follows_the_clock() {
    let (store, clock) = manual_store().await;
    store.put_with_ttl("s:token", "t", 1_000).await.unwrap();
    assert_eq!(
        store.get_ttl("s:token").await.unwrap(),
        Some(Ttl::Expires {
            at: Timestamp(1_001_000),
            remaining_ms: 1_000
        })
    );
    clock.advance(999);
    assert!(store.exists("s:token").await.unwrap());
    clock.advance(1);
    // Expired before any sweep: no read returns it.
    assert_eq!(store.get("s:token").await.unwrap(), None);
    assert_eq!(store.get_ttl("s:token").await.unwrap(), None);
    assert_eq!(store.len(), 1, "not swept yet");
    assert_eq!(store.cleanup_expired().await.unwrap(), 1);
    assert_eq!(store.len(), 0);
}

#[tokio::test]
async fn clock_going_back_does_not_revive_keys() {
    let (store, clock) = manual_store().await;
    store.put_with_ttl("s:k", "v", 100).await.unwrap();
    clock.advance(200);
    assert_eq!(store.get("s:k").await.unwrap(), None);
    clock.set(Timestamp(1_000_000));
    assert_eq!(store.get("s:k").await.unwrap(), None);
}

#[tokio::test]
async fn the_timer_expires_keys_and_emits_the_old_value() {
    // Real time: the timer task must wake on its own at the deadline.
    let store = Store::in_memory().await.unwrap();
    let mut feed = store.subscribe().unwrap();
    store
        .put_with_ttl("s:session", "payload", 50)
        .await
        .unwrap();
    let created = feed.recv().await.unwrap();
    assert_eq!(created.kind, ChangeKind::Create);
    let expired = tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .expect("expiry within 10 s")
        .unwrap();
    assert_eq!(expired.kind, ChangeKind::Expire);
    assert_eq!(expired.key, "s:session");
    assert_eq!(
        expired.old.unwrap().decode().unwrap(),
        Value::from("payload")
    );
    assert_eq!(expired.revision, created.revision + 1);
    assert_eq!(store.len(), 0);
}

#[tokio::test]
async fn a_new_earlier_deadline_wakes_the_timer() {
    let store = Store::in_memory().await.unwrap();
    let mut feed = store.subscribe().unwrap();
    store.put_with_ttl("s:late", "x", 3_600_000).await.unwrap();
    store.put_with_ttl("s:soon", "y", 30).await.unwrap();
    let _ = feed.recv().await.unwrap();
    let _ = feed.recv().await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ev.kind, ev.key.as_str()), (ChangeKind::Expire, "s:soon"));
    assert!(store.exists("s:late").await.unwrap());
}

#[tokio::test]
async fn events_carry_old_and_new_values_in_revision_order() {
    let store = Store::in_memory().await.unwrap();
    store.put("a:before", "unseen").await.unwrap();
    let mut feed = store.subscribe().unwrap();
    store.put("a:k", "1").await.unwrap();
    store.put("a:k", "2").await.unwrap();
    store
        .multi_put(&[("a:x", Value::from(1i64)), ("a:y", Value::from(2i64))])
        .await
        .unwrap();
    store.delete("a:k").await.unwrap();
    let mut seen = Vec::new();
    while let Some(ev) = feed.try_recv() {
        let ev = ev.unwrap();
        seen.push((
            ev.revision,
            ev.key.to_string(),
            ev.kind,
            ev.old.map(|v| v.decode().unwrap()),
        ));
    }
    assert_eq!(
        seen,
        vec![
            (2, "a:k".to_string(), ChangeKind::Create, None),
            (
                3,
                "a:k".to_string(),
                ChangeKind::Update,
                Some(Value::from("1"))
            ),
            (4, "a:x".to_string(), ChangeKind::Create, None),
            (4, "a:y".to_string(), ChangeKind::Create, None),
            (
                5,
                "a:k".to_string(),
                ChangeKind::Delete,
                Some(Value::from("2"))
            ),
        ]
    );
}

#[tokio::test]
async fn a_slow_subscriber_lags_instead_of_growing_memory() {
    let store = Store::builder()
        .event_capacity(8)
        .open_in_memory()
        .await
        .unwrap();
    let mut feed = store.subscribe().unwrap();
    for i in 0..20 {
        store.put(&format!("a:k{i}"), i as i64).await.unwrap();
    }
    assert_eq!(
        feed.recv().await.unwrap_err(),
        SubscriptionError::Lagged { missed: 12 }
    );
    assert_eq!(feed.recv().await.unwrap().key, "a:k12");
}

#[tokio::test]
async fn scan_stream_yields_every_key_once_in_batches() {
    let store = Store::in_memory().await.unwrap();
    let items: Vec<(String, Value)> = (0..1000)
        .map(|i| (format!("log:msg.{i:04}"), Value::Integer(i)))
        .collect();
    store.multi_put(&items).await.unwrap();
    store
        .put("log:other", "not under the prefix")
        .await
        .unwrap();
    let mut stream = store.scan_stream("log:msg.", 64);
    let mut keys = Vec::new();
    let mut batches = 0;
    while let Some(batch) = stream.next_batch().await {
        let batch = batch.unwrap();
        assert!(batch.len() <= 64);
        batches += 1;
        // Writes between pages: a key behind the cursor is not seen, one ahead of it is.
        if batches == 2 {
            store.put("log:msg.0000a", "behind").await.unwrap();
            store.put("log:msg.9999", "ahead").await.unwrap();
        }
        keys.extend(batch.into_iter().map(|(k, _)| k));
    }
    assert_eq!(batches, 16);
    let mut expected: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
    expected.push("log:msg.9999".into());
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn metadata_and_put_options() {
    let (store, clock) = manual_store().await;
    let meta: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"owner":"agent-7","tags":["a"]}"#).unwrap();
    store
        .put_with(
            "m:doc",
            Value::Json(serde_json::json!({"v": 1})),
            &PutOptions::default().ttl_ms(5_000).metadata(meta.clone()),
        )
        .await
        .unwrap();
    clock.advance(10);
    let rec = store.get_record("m:doc").await.unwrap().unwrap();
    assert_eq!(rec.meta.user, meta);
    assert_eq!(rec.meta.content_type, "application/json");
    assert_eq!(rec.meta.expires_at, Some(Timestamp(1_005_000)));
    assert_eq!(
        (rec.meta.created_at, rec.meta.updated_at),
        (Timestamp(1_000_000), Timestamp(1_000_000))
    );
    store
        .put_with("m:doc", "v2", &PutOptions::default().keep_ttl())
        .await
        .unwrap();
    let m = store.get_metadata("m:doc").await.unwrap().unwrap();
    assert_eq!(
        (m.version, m.expires_at, m.updated_at),
        (2, Some(Timestamp(1_005_000)), Timestamp(1_000_010))
    );
    assert_eq!(m.user, meta, "a put keeps user metadata");
    store
        .set_metadata("m:doc", &serde_json::Map::new())
        .await
        .unwrap();
    assert!(
        store
            .get_metadata("m:doc")
            .await
            .unwrap()
            .unwrap()
            .user
            .is_empty()
    );
}

#[tokio::test]
async fn snapshot_reopens_the_same_state() {
    let (store, clock) = manual_store().await;
    store.put("a:x", 1i64).await.unwrap();
    store.put_with_ttl("a:y", "ttl", 60_000).await.unwrap();
    store.put("b:z", vec![1u8, 2, 3]).await.unwrap();
    let bytes = store.snapshot().await.unwrap();
    let reopened = Store::builder()
        .clock(clock.clone())
        .open_snapshot(&bytes)
        .await
        .unwrap();
    assert_eq!(reopened.revision(), 3);
    assert_eq!(reopened.snapshot().await.unwrap(), bytes);
    assert_eq!(
        reopened.get("b:z").await.unwrap(),
        Some(Value::Bytes(vec![1, 2, 3]))
    );
    clock.advance(60_000);
    assert_eq!(reopened.get("a:y").await.unwrap(), None);
    let bad = Store::builder()
        .separator('/')
        .open_snapshot(&bytes)
        .await
        .unwrap_err();
    assert!(matches!(bad, Error::Format(_)), "{bad}");
}

#[tokio::test]
async fn close_stops_every_clone_and_ends_feeds() {
    let store = Store::in_memory().await.unwrap();
    let other = store.clone();
    let mut feed = store.subscribe().unwrap();
    store.put("a:k", "v").await.unwrap();
    store.close().await;
    assert_eq!(other.get("a:k").await.unwrap_err(), Error::Closed);
    assert_eq!(other.put("a:k", "w").await.unwrap_err(), Error::Closed);
    assert!(
        feed.recv().await.is_ok(),
        "buffered events are still delivered"
    );
    assert_eq!(feed.recv().await.unwrap_err(), SubscriptionError::Closed);
}

#[test]
fn opening_outside_a_runtime_is_a_clear_error() {
    let err = futures_block_on(Store::builder().open_in_memory()).unwrap_err();
    assert_eq!(err, Error::NoRuntime);
}

fn futures_block_on<F: std::future::Future>(fut: F) -> F::Output {
    // The future never waits, so one poll with a no-op waker completes it.
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("future waited"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_lose_no_update() {
    let store = Store::in_memory().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..500 {
                s.increment("c:counter", 1).await.unwrap();
                s.get("c:counter").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        store.get("c:counter").await.unwrap(),
        Some(Value::Integer(4000))
    );
    assert_eq!(store.revision(), 4000);
}
