//! The engine's write path encodes its log records itself (no `LogOp` is built for single-key
//! writes); those bytes must be exactly the bytes postcard writes for the decoded record, for
//! every kind of op the engine logs, and however the host takes them.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::json;
use statemesh_core::{
    EncodedLog, Engine, EngineConfig, Isolation, LogOp, LogRecord, Patch, PutOptions, Timestamp,
    Value, WaitPolicy,
};

/// One write, chosen by the strategy below.
#[derive(Debug, Clone)]
enum Write {
    Put {
        key: u8,
        value: Value,
        ttl_ms: Option<u64>,
        meta: bool,
    },
    Delete(u8),
    Increment(u8, i64),
    /// A put that keeps the key's TTL.
    PutKeepTtl(u8, Value),
    /// An increment whose check refuses values of an odd length.
    IncrementChecked(u8, i64),
    Patch(u8, String),
    Metadata(u8, String),
    Expire(u64),
    Prepared {
        key: u8,
        commit: bool,
    },
}

fn key(k: u8) -> String {
    // Namespaces and paths of several lengths, past one byte of varint length too.
    format!("ns{}:p/{k}/{}", k % 3, "x".repeat(usize::from(k) * 3))
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        ".{0,40}".prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        4 => (0u8..60, value(), prop::option::of(prop_oneof![1u64..200_000, 1u64..u64::from(u32::MAX)]), any::<bool>())
            .prop_map(|(key, value, ttl_ms, meta)| Write::Put { key, value, ttl_ms, meta }),
        1 => (0u8..60).prop_map(Write::Delete),
        1 => (0u8..60, any::<i64>()).prop_map(|(k, n)| Write::Increment(k, n)),
        1 => (0u8..60, value()).prop_map(|(k, v)| Write::PutKeepTtl(k, v)),
        1 => (0u8..60, -5i64..5).prop_map(|(k, n)| Write::IncrementChecked(k, n)),
        1 => (0u8..60, "[a-z]{0,20}").prop_map(|(k, s)| Write::Patch(k, s)),
        1 => (0u8..60, "[a-z]{0,20}").prop_map(|(k, s)| Write::Metadata(k, s)),
        1 => (1u64..100_000).prop_map(Write::Expire),
        1 => (0u8..60, any::<bool>()).prop_map(|(key, commit)| Write::Prepared { key, commit }),
    ]
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default().with_memory_limits(Some(12), None)).unwrap()
}

/// Applies the writes and returns every record the engine logged.
fn run(writes: &[Write]) -> Vec<LogRecord> {
    let mut e = engine();
    let mut now = 1_700_000_000_000u64;
    apply(&mut e, &mut now, writes);
    std::iter::from_fn(|| e.poll_log()).collect()
}

/// Applies the writes and returns the engine's encoded log, taken once at the end.
fn run_encoded(writes: &[Write]) -> Vec<(u64, Vec<u8>)> {
    let mut e = engine();
    let mut now = 1_700_000_000_000u64;
    apply(&mut e, &mut now, writes);
    let mut log = EncodedLog::new();
    e.take_log(&mut log);
    assert!(!e.has_log());
    log.records().map(|(r, b)| (r, b.to_vec())).collect()
}

/// Applies the writes (failures, such as an increment of a string, are part of the run),
/// advancing `now`. Returns each write's outcome, as text.
fn apply(e: &mut Engine, now: &mut u64, writes: &[Write]) -> Vec<String> {
    let mut outcomes = Vec::with_capacity(writes.len());
    for w in writes {
        *now += 7;
        let t = Timestamp(*now);
        let outcome = match w {
            Write::Put {
                key: k,
                value,
                ttl_ms,
                meta,
            } => {
                let mut opts = PutOptions::default();
                if let Some(ttl) = ttl_ms {
                    opts = opts.ttl_ms(*ttl);
                }
                if *meta {
                    let m = json!({"owner": "ada", "n": k});
                    opts = opts.metadata(m.as_object().cloned().unwrap_or_default());
                }
                e.put_with(t, &key(*k), value, &opts).map(|_| ())
            }
            Write::Delete(k) => e.delete(t, &key(*k)).map(|_| ()),
            Write::Increment(k, n) => e.increment(t, &key(*k), *n).map(|_| ()),
            Write::PutKeepTtl(k, value) => e
                .put_with(t, &key(*k), value, &PutOptions::default().keep_ttl())
                .map(|_| ()),
            Write::IncrementChecked(k, n) => e
                .increment_checked(t, &key(*k), *n, |v| match v.len() % 2 {
                    0 => Ok(()),
                    _ => Err("odd"),
                })
                // A refusal writes nothing: the revision after it tells.
                .map(|_done_or_refused| ()),
            Write::Patch(k, s) => e
                .patch(t, &key(*k), &Patch::merge(json!({ "field": s })))
                .map(|_| ()),
            Write::Metadata(k, s) => {
                let m = json!({ "tag": s });
                e.set_metadata(t, &key(*k), &m.as_object().cloned().unwrap_or_default())
                    .map(|_| ())
            }
            Write::Expire(ms) => {
                *now += ms;
                e.handle_timeout(Timestamp(*now));
                Ok(())
            }
            Write::Prepared { key: k, commit } => (|| {
                let id = e.begin_txn(t, Isolation::Snapshot, 60_000)?;
                e.txn_put(t, id, &key(*k), &Value::Integer(1))?;
                e.prepare_txn(t, id, WaitPolicy::Fail)?;
                if *commit {
                    e.commit_prepared(t, id).map(|_| ())
                } else {
                    e.cancel_prepared(t, id).map(|_| ())
                }
            })(),
        };
        outcomes.push(format!("{outcome:?}"));
    }
    outcomes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_engines_bytes_are_postcards(writes in prop::collection::vec(write(), 1..40)) {
        let encoded = run_encoded(&writes);
        let first = encoded.first().map_or(0, |(r, _)| *r);
        for (expected_revision, (revision, bytes)) in (first..).zip(&encoded) {
            let record = LogRecord::decode(bytes).unwrap();
            prop_assert_eq!(record.revision, *revision);
            prop_assert_eq!(*revision, expected_revision, "revisions follow one another");
            let reference = record.encode_with_postcard().unwrap();
            prop_assert_eq!(bytes, &reference, "record {:?}", record);
            prop_assert_eq!(&record.encode().unwrap(), bytes);
            prop_assert_eq!(LogRecord::peek_op_count(bytes), Some(record.ops.len()));
        }
        // `poll_log` hands out the same records, decoded.
        let polled = run(&writes);
        prop_assert_eq!(polled.len(), encoded.len());
        for (record, (_, bytes)) in polled.iter().zip(&encoded) {
            prop_assert_eq!(&record.encode().unwrap(), bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// How a host takes the log changes nothing the engine logs: taking it after every write
    /// into two logs passed back and forth (as the native host does, reusing their buffers), or
    /// polling some records and then taking the rest, gives the bytes of one take at the end.
    #[test]
    fn taking_the_log_often_logs_the_same_bytes(
        writes in prop::collection::vec(write(), 1..40),
        polls in prop::collection::vec(0usize..3, 40),
    ) {
        let expected = run_encoded(&writes);
        let mut e = engine();
        let mut now = 1_700_000_000_000u64;
        let mut got = Vec::new();
        let mut logs = [EncodedLog::new(), EncodedLog::new()];
        for (i, w) in writes.iter().enumerate() {
            apply(&mut e, &mut now, std::slice::from_ref(w));
            for _ in 0..polls[i] {
                if let Some(record) = e.poll_log() {
                    got.push((record.revision, record.encode().unwrap()));
                }
            }
            let log = &mut logs[i % 2];
            e.take_log(log);
            got.extend(log.records().map(|(r, b)| (r, b.to_vec())));
        }
        prop_assert!(!e.has_log());
        prop_assert_eq!(got, expected);
    }

    /// Collecting the records of many writes in one log, as the native host's outbox does
    /// (`append_log_to` after each write, the log emptied into a second one now and then, as
    /// its committer does), with some records polled in between, gives the bytes of one take.
    #[test]
    fn appending_the_log_to_an_outbox_logs_the_same_bytes(
        writes in prop::collection::vec(write(), 1..40),
        polls in prop::collection::vec(0usize..3, 40),
        drains in prop::collection::vec(any::<bool>(), 40),
    ) {
        let expected = run_encoded(&writes);
        let mut e = engine();
        let mut now = 1_700_000_000_000u64;
        let mut got = Vec::new();
        let (mut outbox, mut taken) = (EncodedLog::new(), EncodedLog::new());
        for (i, w) in writes.iter().enumerate() {
            apply(&mut e, &mut now, std::slice::from_ref(w));
            for _ in 0..polls[i] {
                if let Some(record) = e.poll_log() {
                    // Records polled after earlier ones went to the outbox: drain it first.
                    got.extend(outbox.records().map(|(r, b)| (r, b.to_vec())));
                    outbox.clear();
                    got.push((record.revision, record.encode().unwrap()));
                }
            }
            e.append_log_to(&mut outbox);
            if drains[i] {
                std::mem::swap(&mut outbox, &mut taken);
                got.extend(taken.records().map(|(r, b)| (r, b.to_vec())));
                taken.clear();
            }
        }
        got.extend(outbox.records().map(|(r, b)| (r, b.to_vec())));
        prop_assert!(!e.has_log());
        prop_assert_eq!(got, expected);
    }
}

/// The strategy reaches every op kind the engine logs, so the property above covers each
/// encoder branch (a strategy change that dropped one would leave it untested).
#[test]
fn the_writes_cover_every_op_kind() {
    let mut rng = proptest::test_runner::TestRunner::deterministic();
    let mut seen = [false; 10];
    for _ in 0..200 {
        let writes = prop::collection::vec(write(), 40)
            .new_tree(&mut rng)
            .unwrap()
            .current();
        for record in run(&writes) {
            for op in &record.ops {
                let kind = match op {
                    LogOp::Put { .. } => 0,
                    LogOp::Delete { .. } => 1,
                    LogOp::Evict { .. } => 2,
                    LogOp::Expire { .. } => 3,
                    LogOp::Patch { .. } => 4,
                    LogOp::Prepare { .. } => 5,
                    LogOp::CommitPrepared { .. } => 6,
                    LogOp::CancelPrepared { .. } => 7,
                    LogOp::Metadata { .. } => 8,
                    LogOp::Update { .. } => 9,
                };
                seen[kind] = true;
            }
        }
    }
    assert_eq!(seen, [true; 10]);
}

/// A record is written straight into the log with a one-byte op count, which records of more
/// than 127 ops outgrow: a multi-put, a multi-delete and an expiry sweep of that many keys
/// each log one such record, between small ones, and every record is postcard's bytes.
#[test]
fn records_of_many_ops_are_postcards() {
    let mut e = Engine::new(EngineConfig::default()).unwrap();
    let t = |ms: u64| Timestamp(1_700_000_000_000 + ms);
    let keys: Vec<String> = (0..200).map(|i| format!("ns{}:k/{i}", i % 3)).collect();
    e.put(t(1), "a:b", &Value::Integer(1)).unwrap();
    let items: Vec<(String, Value)> = keys
        .iter()
        .map(|k| (k.clone(), Value::String(k.clone())))
        .collect();
    e.multi_put(t(2), &items).unwrap();
    e.increment(t(3), "a:b", 2).unwrap();
    e.multi_delete(t(4), &keys[..50]).unwrap();
    for k in &keys[50..] {
        e.put_with_ttl(t(5), k, &Value::Integer(7), 10).unwrap();
    }
    e.handle_timeout(t(100));
    e.put(t(101), "a:b", &Value::Bool(true)).unwrap();

    let mut log = EncodedLog::new();
    e.take_log(&mut log);
    let mut counts = Vec::new();
    for (revision, bytes) in log.records() {
        let record = LogRecord::decode(bytes).unwrap();
        assert_eq!(record.revision, revision);
        assert_eq!(bytes, record.encode_with_postcard().unwrap().as_slice());
        counts.push(record.ops.len());
    }
    let mut expected = vec![1, 200, 1, 50];
    expected.extend([1; 150]);
    expected.extend([150, 1]);
    assert_eq!(counts, expected);
    assert_eq!(log.byte_len(), log.ends().last().unwrap().1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Single-key updates change the entry where it lies instead of building a new one and
    /// installing it: the results, the state, the log's bytes, the change events and the
    /// history are those of the general path, write after write.
    #[test]
    fn updates_in_place_are_the_general_path(
        writes in prop::collection::vec(write(), 1..60),
        evict in any::<bool>(),
    ) {
        let config = || match evict {
            true => EngineConfig::default().with_memory_limits(Some(12), None),
            false => EngineConfig::default(),
        };
        let mut fast = Engine::new(config()).unwrap();
        let mut general = Engine::new(config()).unwrap();
        general.set_in_place_updates(false);
        fast.set_capture_events(true);
        general.set_capture_events(true);
        let (mut now_a, mut now_b) = (1_700_000_000_000u64, 1_700_000_000_000u64);
        let (mut log_a, mut log_b) = (EncodedLog::new(), EncodedLog::new());
        for w in &writes {
            let a = apply_one(&mut fast, &mut now_a, w);
            let b = apply_one(&mut general, &mut now_b, w);
            prop_assert_eq!(a, b, "{:?}", w);
            fast.take_log(&mut log_a);
            general.take_log(&mut log_b);
            prop_assert_eq!(log_a.as_bytes(), log_b.as_bytes());
            prop_assert_eq!(log_a.ends(), log_b.ends());
            let events_a: Vec<_> = std::iter::from_fn(|| fast.poll_event()).collect();
            let events_b: Vec<_> = std::iter::from_fn(|| general.poll_event()).collect();
            prop_assert_eq!(events_a, events_b);
        }
        prop_assert_eq!(fast.snapshot().unwrap(), general.snapshot().unwrap());
        prop_assert_eq!(
            fast.changes_since(fast.history_floor(), usize::MAX).unwrap(),
            general.changes_since(general.history_floor(), usize::MAX).unwrap()
        );
        for k in 0..60 {
            let history_a = fast.key_history(&key(k)).unwrap();
            prop_assert_eq!(history_a, general.key_history(&key(k)).unwrap());
        }
    }
}

/// One write's outcome and the revision, memory use and key count after it.
fn apply_one(e: &mut Engine, now: &mut u64, w: &Write) -> (Vec<String>, u64, u64, usize) {
    let outcome = apply(e, now, std::slice::from_ref(w));
    (outcome, e.revision(), e.approx_bytes(), e.len())
}
