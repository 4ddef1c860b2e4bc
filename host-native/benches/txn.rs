//! Transaction benchmark (a plain table, no criterion), on the in-memory [`Store`]:
//!
//! 1. Commit throughput for 1, 4 and 16 keys per transaction, one task:
//!    - compare-then-else: one `Compare::exists` on the first key, then a put of every key;
//!    - interactive: `begin`, a get of every key, a put of every key, `commit` (read-modify-write,
//!      serializable).
//!
//!    Keys are drawn at random (seeded) from 10,000 keys preloaded with 100-byte values.
//! 2. Contention: 8 tokio tasks on a 2-worker runtime run interactive serializable
//!    read-modify-write transactions (2 random keys each: get both, yield once as a client round
//!    trip would, put both, commit; retried on conflict) over 10 hot keys and over 10,000 keys,
//!    for a fixed time. Reported: commits/s and the share of attempts that conflicted.
//!
//! Run with `cargo bench -p statemesh --bench txn`. Options (environment): `STATEMESH_BENCH_TXNS`
//! transactions per throughput row (default 20,000), `STATEMESH_BENCH_MILLIS` duration of each
//! contention row (default 2,000).

// A bench reports on stdout.
#![allow(clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statemesh::{Compare, EngineError, Error, Isolation, Store, Txn, TxnOp, TxnOpResult, Value};

const SEED: u64 = 0x7A11_5EED;
const KEYS: usize = 10_000;
const VALUE_LEN: usize = 100;
const TASKS: u64 = 8;
const LONG: Duration = Duration::from_secs(3600);

fn key(i: usize) -> String {
    format!("bench:acct.{i:05}")
}

async fn load(store: &Store, keys: usize) -> Result<()> {
    let items: Vec<_> = (0..keys)
        .map(|i| (key(i), Value::Integer(i as i64)))
        .collect();
    for chunk in items.chunks(5_000) {
        store.multi_put(chunk).await?;
    }
    Ok(())
}

/// `n` distinct random keys.
fn pick(rng: &mut StdRng, n: usize, universe: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let k = rng.random_range(0..universe);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

struct Throughput {
    kind: &'static str,
    keys: usize,
    txns: usize,
    elapsed: Duration,
}

async fn compare_then_else(store: &Store, keys: usize, txns: usize) -> Result<Throughput> {
    let mut rng = StdRng::seed_from_u64(SEED ^ keys as u64);
    let value = Value::Bytes(vec![7; VALUE_LEN]);
    let start = Instant::now();
    for _ in 0..txns {
        let chosen = pick(&mut rng, keys, KEYS);
        let mut txn = Txn::new().when(Compare::exists(key(chosen[0])));
        for &k in &chosen {
            txn = txn.then(TxnOp::put(key(k), value.clone()));
        }
        let result = store.txn(txn).await?;
        ensure!(result.succeeded, "compare failed");
    }
    Ok(Throughput {
        kind: "compare-then-else",
        keys,
        txns,
        elapsed: start.elapsed(),
    })
}

async fn interactive(store: &Store, keys: usize, txns: usize) -> Result<Throughput> {
    let mut rng = StdRng::seed_from_u64(SEED ^ 0x1000 ^ keys as u64);
    let value = Value::Bytes(vec![9; VALUE_LEN]);
    let start = Instant::now();
    for _ in 0..txns {
        let chosen = pick(&mut rng, keys, KEYS);
        let t = store.begin(Isolation::Serializable, LONG).await?;
        for &k in &chosen {
            t.get(&key(k)).await?;
        }
        for &k in &chosen {
            t.put(&key(k), value.clone()).await?;
        }
        t.commit().await?;
    }
    Ok(Throughput {
        kind: "interactive (serializable)",
        keys,
        txns,
        elapsed: start.elapsed(),
    })
}

struct Contention {
    keys: usize,
    commits: u64,
    conflicts: u64,
    elapsed: Duration,
}

/// One read-modify-write transaction over two keys; `Ok(false)` on a conflict.
async fn transfer(store: &Store, a: &str, b: &str) -> Result<bool> {
    let t = store.begin(Isolation::Serializable, LONG).await?;
    let int = |v: Option<Value>| match v {
        Some(Value::Integer(i)) => i,
        _ => 0,
    };
    let x = int(t.get(a).await?);
    let y = int(t.get(b).await?);
    tokio::task::yield_now().await;
    t.put(a, x - 1).await?;
    t.put(b, y + 1).await?;
    match t.commit().await {
        Ok(_) => Ok(true),
        Err(Error::Engine(EngineError::TxnConflict { .. })) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn contention(keys: usize, millis: u64) -> Result<Contention> {
    let store = Store::in_memory().await?;
    load(&store, keys).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for task in 0..TASKS {
        let (store, stop) = (store.clone(), stop.clone());
        let (commits, conflicts) = (commits.clone(), conflicts.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(SEED ^ (task << 8) ^ keys as u64);
            while !stop.load(Ordering::Relaxed) {
                let chosen = pick(&mut rng, 2, keys);
                let (a, b) = (key(chosen[0]), key(chosen[1]));
                loop {
                    if transfer(&store, &a, &b).await? {
                        commits.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    conflicts.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(millis)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed();
    // The transfers moved units around; none appeared or vanished.
    let total: i64 = (0..keys as i64).sum();
    let page = store.get_pattern("bench:acct.*").await?;
    let sum: i64 = page
        .iter()
        .map(|(_, v)| match v {
            Value::Integer(i) => *i,
            _ => 0,
        })
        .sum();
    ensure!(sum == total, "total changed: {sum} != {total}");
    Ok(Contention {
        keys,
        commits: commits.load(Ordering::Relaxed),
        conflicts: conflicts.load(Ordering::Relaxed),
        elapsed,
    })
}

fn main() -> Result<()> {
    let txns = common::env_count("STATEMESH_BENCH_TXNS", 20_000)?;
    let millis = common::env_count("STATEMESH_BENCH_MILLIS", 2_000)? as u64;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let profile = if cfg!(debug_assertions) {
        "debug (numbers are not meaningful)"
    } else {
        "optimized"
    };
    println!("statemesh txn bench | cores: {cores} | profile: {profile} | seed {SEED:#x}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let rows = rt.block_on(async {
        let store = Store::in_memory().await?;
        load(&store, KEYS).await?;
        // Warm-up: one untimed pass of each kind.
        compare_then_else(&store, 4, txns / 10 + 1).await?;
        interactive(&store, 4, txns / 10 + 1).await?;
        let mut rows = Vec::new();
        for keys in [1, 4, 16] {
            rows.push(compare_then_else(&store, keys, txns).await?);
            rows.push(interactive(&store, keys, txns).await?);
        }
        // A sanity check that reads see the puts.
        let check = store.txn(Txn::new().then(TxnOp::get(key(0)))).await?;
        ensure!(
            matches!(check.results[0], TxnOpResult::Get(Some(_))),
            "key 0 missing"
        );
        anyhow::Ok(rows)
    })?;

    println!();
    println!(
        "Commit throughput, one task, {KEYS} keys, {VALUE_LEN}-byte values, {txns} transactions per row"
    );
    println!();
    println!("| transaction | keys/txn | txn/s | keys written/s | µs/txn |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        let secs = r.elapsed.as_secs_f64();
        let per_s = r.txns as f64 / secs;
        println!(
            "| {} | {} | {} | {} | {:.1} |",
            r.kind,
            r.keys,
            common::thousands(per_s as u64),
            common::thousands((per_s * r.keys as f64) as u64),
            secs * 1e6 / r.txns as f64
        );
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()?;
    let mut contended = Vec::new();
    for keys in [10, 10_000] {
        contended.push(rt.block_on(contention(keys, millis))?);
    }
    println!();
    println!(
        "Contention: {TASKS} tasks, 2 worker threads, serializable read-modify-write of 2 random \
         keys (one yield between reads and writes), retried on conflict, {millis} ms per row"
    );
    println!();
    println!("| keys | commits/s | attempts | conflicts | % conflicts |");
    println!("|---|---|---|---|---|");
    for c in &contended {
        let attempts = c.commits + c.conflicts;
        println!(
            "| {} | {} | {} | {} | {:.1}% |",
            common::thousands(c.keys as u64),
            common::thousands((c.commits as f64 / c.elapsed.as_secs_f64()) as u64),
            common::thousands(attempts),
            common::thousands(c.conflicts),
            100.0 * c.conflicts as f64 / attempts.max(1) as f64
        );
    }
    Ok(())
}
