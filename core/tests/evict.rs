//! Memory limits of AP stores: eviction by a scan-resistant segmented LRU.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use statemesh_core::{
    ChangeKind, Engine, EngineConfig, EngineError, LogOp, Timestamp, Value, ValueError,
};

const T: Timestamp = Timestamp(1);

fn limited(entries: Option<u64>, bytes: Option<u64>) -> Engine {
    Engine::new(EngineConfig::default().with_memory_limits(entries, bytes)).unwrap()
}

#[test]
fn max_entries_evicts_the_oldest_unused_keys_in_the_same_revision() {
    let mut e = limited(Some(5), None);
    for i in 0..10 {
        e.put(T, &format!("a:k{i}"), &Value::Integer(i)).unwrap();
        assert!(e.len() <= 5);
    }
    assert_eq!(
        e.keys(T, "a:*").unwrap(),
        vec!["a:k5", "a:k6", "a:k7", "a:k8", "a:k9"]
    );
    let events: Vec<_> = std::iter::from_fn(|| e.poll_event()).collect();
    let evicted: Vec<_> = events
        .iter()
        .filter(|ev| ev.kind == ChangeKind::Evict)
        .collect();
    assert_eq!(evicted.len(), 5);
    // k0 was evicted by the write of k5, in k5's revision.
    assert_eq!((evicted[0].key.as_str(), evicted[0].revision), ("a:k0", 6));
    assert_eq!(
        evicted[0].old.as_ref().unwrap().decode().unwrap(),
        Value::Integer(0)
    );
    let records: Vec<_> = std::iter::from_fn(|| e.poll_log()).collect();
    assert!(matches!(&records[5].ops[1], LogOp::Evict { path, .. } if path == "k0"));
    assert_eq!(e.revision(), 10);
}

#[test]
fn a_hot_set_survives_a_scan_of_cold_keys() {
    let mut e = limited(Some(100), None);
    let hot: Vec<String> = (0..60).map(|i| format!("hot:k{i}")).collect();
    for k in &hot {
        e.put(T, k, &Value::from("hot")).unwrap();
    }
    for k in &hot {
        assert!(e.get(T, k).unwrap().is_some());
    }
    // A burst of 5,000 keys written once and never read, like a bulk import.
    for i in 0..5_000 {
        e.put(T, &format!("cold:k{i}"), &Value::from("cold"))
            .unwrap();
    }
    for k in &hot {
        assert!(e.exists(T, k).unwrap(), "{k} was evicted by the scan");
    }
    assert_eq!(e.len(), 100);
    assert_eq!(e.keys(T, "cold:*").unwrap().len(), 40);
}

#[test]
fn a_write_counts_as_a_use() {
    let mut e = limited(Some(3), None);
    for k in ["a:x", "a:y", "a:z"] {
        e.put(T, k, &Value::Bool(true)).unwrap();
    }
    e.put(T, "a:x", &Value::Bool(false)).unwrap();
    e.put(T, "a:w", &Value::Bool(true)).unwrap();
    assert_eq!(e.keys(T, "a:*").unwrap(), vec!["a:w", "a:x", "a:z"]);
}

#[test]
fn max_bytes_is_respected_and_oversized_values_are_refused() {
    let mut e = limited(None, Some(10_000));
    for i in 0..200 {
        e.put(T, &format!("b:k{i}"), &Value::Bytes(vec![0; 100]))
            .unwrap();
        assert!(e.approx_bytes() <= 10_000, "{} bytes", e.approx_bytes());
    }
    assert!(e.len() > 10 && e.len() < 200);
    let err = e
        .put(T, "b:huge", &Value::Bytes(vec![0; 20_000]))
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Value(ValueError::TooLarge { limit: 10_000, .. })
    ));
}

#[test]
fn replay_of_a_run_with_evictions_reproduces_the_state() {
    let cfg = EngineConfig::default().with_memory_limits(Some(50), Some(20_000));
    let mut e = Engine::new(cfg.clone()).unwrap();
    let mut replica = Engine::new(cfg).unwrap();
    for i in 0..2_000u64 {
        let key = format!("r:k{}", (i * 7919) % 400);
        match i % 5 {
            0 => drop(e.get(T, &key).unwrap()),
            1 => drop(e.delete(T, &key).unwrap()),
            _ => drop(
                e.put(T, &key, &Value::Bytes(vec![1; (i % 300) as usize]))
                    .unwrap(),
            ),
        }
        while let Some(r) = e.poll_log() {
            replica.replay_bytes(&r.encode().unwrap()).unwrap();
        }
        assert!(e.len() <= 50 && e.approx_bytes() <= 20_000);
    }
    assert_eq!(replica.snapshot().unwrap(), e.snapshot().unwrap());
    assert_eq!(
        (replica.len(), replica.approx_bytes()),
        (e.len(), e.approx_bytes())
    );
}
