//! Criterion benchmarks of the bare engine (no host, no lock): the cost floor under every host.
#![allow(clippy::print_stdout)] // the replay bench prints each log's bytes per record

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng, rngs::StdRng};
use statemesh_core::{EncodedLog, Engine, EngineConfig, Timestamp, Value};
use std::hint::black_box;

const KEYS: usize = 100_000;

fn key(i: usize) -> String {
    format!("bench:user.{i:08}.session")
}

fn loaded() -> Engine {
    let mut e = Engine::new(EngineConfig::default()).expect("config");
    e.set_capture_log(false);
    e.set_capture_events(false);
    let now = Timestamp(1);
    for i in 0..KEYS {
        e.put(now, &key(i), &Value::Bytes(vec![7; 150]))
            .expect("put");
    }
    e
}

fn bench(c: &mut Criterion) {
    let mut engine = loaded();
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let mut rng = StdRng::seed_from_u64(7);
    let now = Timestamp(2);
    c.bench_function("engine/get", |b| {
        b.iter(|| {
            let k = &keys[rng.random_range(0..KEYS)];
            black_box(engine.get(now, k).expect("get"))
        })
    });
    let value = Value::Bytes(vec![9; 150]);
    c.bench_function("engine/put_update", |b| {
        b.iter(|| {
            let k = &keys[rng.random_range(0..KEYS)];
            black_box(engine.put(now, k, &value).expect("put"))
        })
    });
    c.bench_function("engine/scan_100", |b| {
        b.iter(|| {
            black_box(
                engine
                    .scan(now, "bench:user.0005", 100, None)
                    .expect("scan"),
            )
        })
    });
    c.bench_function("engine/keys_pattern", |b| {
        b.iter(|| black_box(engine.keys(now, "bench:user.00012*.session").expect("keys")))
    });
    c.bench_function("engine/snapshot_100k", |b| {
        b.iter_batched(
            || (),
            |_| black_box(engine.snapshot().expect("snapshot")),
            BatchSize::PerIteration,
        )
    });
}

/// Encoding log records into a reused buffer, as the native committer does: a small SET and
/// an INCR (the records redis-benchmark writes).
fn log_encode(c: &mut Criterion) {
    let mut e = Engine::new(EngineConfig::default()).expect("config");
    let now = Timestamp(1_700_000_000_000);
    e.put(now, "key:__rand_int__", &Value::String("xxx".into()))
        .expect("put");
    e.increment(now, "counter:__rand_int__", 1).expect("incr");
    let records: Vec<_> = std::iter::from_fn(|| e.poll_log()).collect();
    let mut buf = Vec::with_capacity(256);
    c.bench_function("log/encode_small_x2", |b| {
        b.iter(|| {
            for record in &records {
                buf.clear();
                record.encode_into(&mut buf).expect("encode");
                black_box(&buf);
            }
        })
    });
}

/// What a pipelined Redis-port write costs the engine alone: redis-benchmark's INCR and small
/// SET on one key, with the default history kept, no subscriber, and the log taken every 16
/// writes, as the native committer takes it.
fn small_writes(c: &mut Criterion) {
    let mut e = Engine::new(EngineConfig::default()).expect("config");
    // The native store takes events only while someone subscribes.
    e.set_capture_events(false);
    let now = Timestamp(1_700_000_000_000);
    let mut log = EncodedLog::new();
    let mut writes = 0u32;
    let mut take = |e: &mut Engine| {
        writes += 1;
        if writes.is_multiple_of(16) {
            e.take_log(&mut log);
        }
    };
    c.bench_function("engine/incr_logged", |b| {
        b.iter(|| {
            black_box(e.increment(now, "counter:__rand_int__", 1).expect("incr"));
            take(&mut e);
        })
    });
    let value = Value::String("xxx".into());
    c.bench_function("engine/set_small_logged", |b| {
        b.iter(|| {
            black_box(e.put(now, "key:__rand_int__", &value).expect("put"));
            take(&mut e);
        })
    });
}

/// Log replay of 100k records onto a store of 10k keys: records that create keys (`Put`)
/// against records that update them (`Update`: INCRs, which replay derives from the entry they
/// replace). Prints each log's bytes per record beside criterion's times.
fn replay(c: &mut Criterion) {
    const REPLAY_KEYS: usize = 10_000;
    const RECORDS: usize = 100_000;
    let now = Timestamp(1);
    let mut source = Engine::new(EngineConfig::default()).expect("config");
    source.set_capture_log(false);
    for i in 0..REPLAY_KEYS {
        source
            .put(now, &format!("s:k{i}"), &Value::Integer(0))
            .expect("put");
    }
    let start = source.snapshot().expect("snapshot");
    let mut creates = Engine::restore(EngineConfig::default(), &start).expect("restore");
    let mut updates = Engine::restore(EngineConfig::default(), &start).expect("restore");
    for n in 0..RECORDS {
        creates
            .put(now, &format!("s:new{n}"), &Value::Integer(1))
            .expect("put");
        let key = format!("s:k{}", (n * 7919) % REPLAY_KEYS);
        updates.increment(now, &key, 1).expect("incr");
    }
    for (name, engine) in [
        ("replay/100k_creates", &mut creates),
        ("replay/100k_updates", &mut updates),
    ] {
        let records: Vec<Vec<u8>> = std::iter::from_fn(|| engine.poll_log())
            .map(|r| r.encode().expect("encode"))
            .collect();
        let bytes: usize = records.iter().map(Vec::len).sum();
        println!(
            "{name}: {:.1} bytes per record",
            bytes as f64 / records.len() as f64
        );
        let decoded: Vec<statemesh_core::LogRecord> = records
            .iter()
            .map(|b| statemesh_core::LogRecord::decode(b).expect("decode"))
            .collect();
        c.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let e = Engine::restore(EngineConfig::default(), &start).expect("restore");
                    (e, decoded.clone())
                },
                |(mut e, records)| {
                    for record in records {
                        e.replay_owned(record).expect("replay");
                    }
                    e
                },
                BatchSize::LargeInput,
            )
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench, log_encode, small_writes, replay
}
criterion_main!(benches);
