//! `statemesh bench`: a write/read load generator (the seeds' perf_write_test). `--clients`
//! tasks share `--ops` operations over `--keyspace` keys; each records its own latencies, and
//! the merged percentiles are printed per operation kind.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use statemesh::Value;

use crate::Target;
use crate::backend::{Access, Backend};
use crate::ops::BenchArgs;

/// Latencies of one operation kind, in nanoseconds.
#[derive(Default)]
struct Samples {
    puts: Vec<u64>,
    gets: Vec<u64>,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.clients == 0 || args.keyspace == 0 || args.read_percent > 100 {
        return Err(crate::exit::Failure::data(
            "--clients and --keyspace must be at least 1, --read-percent at most 100",
        ));
    }
    // Without a target, a throwaway directory: a benchmark should not write into real data.
    let scratch = match (&args.data_dir, &args.server) {
        (None, None) => {
            Some(std::env::temp_dir().join(format!("statemesh-bench-{}", std::process::id())))
        }
        _ => None,
    };
    let target = Target {
        data_dir: args
            .data_dir
            .clone()
            .or_else(|| scratch.clone())
            .unwrap_or_default(),
        server: args.server.clone(),
        auth_token: args.auth_token.clone(),
    };
    let result = load(&args, &target).await;
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn load(args: &BenchArgs, target: &Target) -> anyhow::Result<ExitCode> {
    let backend = Arc::new(Backend::open(target, Access::Write).await?);
    let value = Value::Bytes(vec![b'x'; args.value_size]);
    // Reads of keys nobody wrote measure misses: write the keyspace first.
    if args.read_percent > 0 {
        let items: Vec<(String, Value)> = (0..args.keyspace)
            .map(|i| (bench_key(i), value.clone()))
            .collect();
        backend.import(items).await?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    for client in 0..args.clients {
        let (backend, next, value) = (backend.clone(), next.clone(), value.clone());
        let (ops, keyspace, read_percent) = (args.ops, args.keyspace, args.read_percent);
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            // A per-client xorshift: reproducible key and op choice without a shared RNG.
            let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (client as u64 + 1);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= ops {
                    break;
                }
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let key = bench_key(state % keyspace);
                let read = (state >> 32) % 100 < u64::from(read_percent);
                let t = Instant::now();
                if read {
                    backend.get(&key).await?;
                    samples.gets.push(t.elapsed().as_nanos() as u64);
                } else {
                    backend.put(&key, value.clone(), None).await?;
                    samples.puts.push(t.elapsed().as_nanos() as u64);
                }
            }
            Ok::<_, statemesh::Error>(samples)
        }));
    }
    let mut all = Samples::default();
    let mut failure = None;
    for task in tasks {
        match task.await {
            Ok(Ok(s)) => {
                all.puts.extend(s.puts);
                all.gets.extend(s.gets);
            }
            Ok(Err(e)) => failure = Some(anyhow::Error::from(e)),
            Err(e) => failure = Some(anyhow::anyhow!("a bench client failed: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let closed = match Arc::try_unwrap(backend) {
        Ok(backend) => backend.close().await,
        Err(_) => Ok(()),
    };
    if let Some(e) = failure {
        return Err(e);
    }
    closed?;
    print_table(args, elapsed, &mut all)?;
    Ok(ExitCode::SUCCESS)
}

fn bench_key(i: u64) -> String {
    format!("bench:key.{i:08}")
}

fn print_table(args: &BenchArgs, elapsed: Duration, all: &mut Samples) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let total = (all.puts.len() + all.gets.len()) as f64;
    writeln!(
        out,
        "{} ops, {} clients, {}-byte values, {} keys: {:.0} ops/s in {:.2} s",
        args.ops,
        args.clients,
        args.value_size,
        args.keyspace,
        total / elapsed.as_secs_f64().max(1e-9),
        elapsed.as_secs_f64()
    )?;
    writeln!(
        out,
        "{:<4} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "op", "count", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
    )?;
    for (name, samples) in [("put", &mut all.puts), ("get", &mut all.gets)] {
        if samples.is_empty() {
            continue;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i] as f64 / 1_000.0
        };
        writeln!(
            out,
            "{:<4} {:>10} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            name,
            samples.len(),
            at(0.50),
            at(0.90),
            at(0.99),
            at(0.999),
            at(1.0)
        )?;
    }
    Ok(())
}
