//! Change-feed fan-out benchmark (a plain table): a burst of writes to an in-memory Store with
//! 1,000 pattern subscribers, each a tokio task, counting what every subscriber receives.
//!
//! Two shapes, same burst of `STATEMESH_BENCH_WRITES` single puts (default 10,000) to keys
//! `bench:grp{g}.key{i}` with `g = i % 100`:
//! - selective: subscriber `s` watches `bench:grp{s % 100}.*`, so each gets 1% of the burst;
//! - broadcast: every subscriber watches `bench:**` and gets all of it.
//!
//! Reported: the time from the first write until every subscriber has every event it should,
//! events delivered per second, and the loss (must be zero: each subscriber's buffer,
//! `event_capacity`, holds the whole burst). `STATEMESH_BENCH_SUBSCRIBERS` sets the number of
//! subscribers (default 1,000). Run with `cargo bench -p statemesh --bench feed`.

#![allow(clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use statemesh::{Store, SubscriptionError, Value};

const GROUPS: usize = 100;

struct Outcome {
    elapsed: Duration,
    delivered: u64,
    expected: u64,
    lagged: u64,
}

async fn run(subscribers: usize, writes: usize, selective: bool) -> Result<Outcome> {
    let store = Store::builder()
        .event_capacity(writes + 1)
        .open_in_memory()
        .await?;
    let delivered = Arc::new(AtomicU64::new(0));
    let lagged = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(subscribers);
    let mut expected = 0u64;
    for s in 0..subscribers {
        let (pattern, wanted) = if selective {
            let group = s % GROUPS;
            let wanted = (0..writes).filter(|i| i % GROUPS == group).count();
            (format!("bench:grp{group}.*"), wanted)
        } else {
            ("bench:**".to_owned(), writes)
        };
        expected += wanted as u64;
        let mut subscription = store.subscribe_pattern(&pattern)?;
        let (delivered, lagged) = (delivered.clone(), lagged.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < wanted {
                match subscription.recv().await {
                    Ok(_) => got += 1,
                    Err(SubscriptionError::Lagged { missed }) => {
                        lagged.fetch_add(missed, Ordering::Relaxed);
                    }
                    Err(_) => break,
                }
            }
            delivered.fetch_add(got as u64, Ordering::Relaxed);
        }));
    }
    let start = Instant::now();
    for i in 0..writes {
        let key = format!("bench:grp{}.key{i}", i % GROUPS);
        store.put(&key, Value::Integer(i as i64)).await?;
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = start.elapsed();
    store.close().await;
    Ok(Outcome {
        elapsed,
        delivered: delivered.load(Ordering::Relaxed),
        expected,
        lagged: lagged.load(Ordering::Relaxed),
    })
}

fn main() -> Result<()> {
    let subscribers = common::env_count("STATEMESH_BENCH_SUBSCRIBERS", 1_000)?;
    let writes = common::env_count("STATEMESH_BENCH_WRITES", 10_000)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "statemesh change-feed fan-out: {} pattern subscribers (tokio tasks, 2 workers), a burst of {} puts",
        common::thousands(subscribers as u64),
        common::thousands(writes as u64)
    );
    println!(
        "{:<44} {:>12} {:>14} {:>16} {:>8}",
        "shape", "burst+drain", "delivered", "events/s", "lost"
    );
    for (name, selective) in [
        ("selective: each watches 1 of 100 groups", true),
        ("broadcast: every subscriber watches all", false),
    ] {
        let out = rt.block_on(run(subscribers, writes, selective))?;
        let rate = out.delivered as f64 / out.elapsed.as_secs_f64();
        println!(
            "{:<44} {:>9.0} ms {:>14} {:>16} {:>8}",
            name,
            out.elapsed.as_secs_f64() * 1e3,
            common::thousands(out.delivered),
            common::thousands(rate as u64),
            out.expected - out.delivered
        );
        ensure!(
            out.delivered == out.expected && out.lagged == 0,
            "{name}: delivered {} of {}, lagged {}",
            out.delivered,
            out.expected,
            out.lagged
        );
    }
    Ok(())
}
