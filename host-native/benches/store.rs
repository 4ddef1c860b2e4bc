//! Store benchmark (a plain table, no criterion), all in one run on the same generated data:
//!
//! 1. Per-op latency of the in-memory [`Store`] loaded with 1M keys: get, put (update), delete
//!    and re-put (insert), scan(prefix, 100), multi_put(100 items), keys(pattern).
//! 2. Throughput: uniform random gets in one thread against the Store and against redb 4 (a
//!    database file under `std::env::temp_dir()`, one table, read through one read
//!    transaction), same keys, values and random order for both.
//!
//! Run with `cargo bench -p statemesh --bench store`. Options (environment or argv after `--`):
//! `STATEMESH_BENCH_KEYS` / `--keys N` keys loaded (default 1,000,000; a multiple of 100, at
//! least 1,000), `STATEMESH_BENCH_GETS` / `--gets N` random gets per round in the comparison
//! (default 1,000,000), `STATEMESH_BENCH_ROUNDS` / `--rounds N` timed rounds per side (default
//! 3). Example quick run: `STATEMESH_BENCH_KEYS=100000 cargo bench -p statemesh --bench store`.
//!
//! Data: key `i` (0-based) is `bench:grp.GGGGGGGG.keyJJ` with `G = i / 100` and `J = i % 100`,
//! zero-padded: always 24 bytes as written (namespace `bench`, 18-byte path), so each group
//! prefix `bench:grp.GGGGGGGG.` holds exactly 100 keys. Values are 150 bytes from a seeded
//! `StdRng`, stored as `Value::Bytes`. Every write in the latency table writes the key's own
//! generated value again, so the data stays identical for the whole run.
//!
//! Latency: `Instant::now()` around every single operation (the cheapest one, get, costs well
//! over ten timer reads; the timer's own cost is printed in the header). ops/s in the latency
//! table is samples / sum of sampled latencies: timer overhead included, the harness work between
//! operations (choosing keys, building values and cursors) excluded. Results returned by an
//! operation are dropped inside the timed region. The throughput comparison takes no per-op
//! samples: it times whole passes. It runs first, right after loading (both sides warmed by one
//! untimed pass), and the latency table is measured after it.
//!
//! Caveat: "put (insert)" re-puts the key the delete just removed, so the hash bucket and the
//! ordered-index path are already in cache: it is a best case for an insert.

// A bench reports on stdout.
#![allow(clippy::print_stdout)]

mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use redb::{Database, ReadableDatabase, TableDefinition};
use statemesh::{Cursor, Store, Value, WriteOp};

const KEY_LEN: usize = 24;
const VALUE_LEN: usize = 150;
/// Keys per group prefix, and items per scan page, keys() result and multi_put.
const GROUP: usize = 100;
const NAMESPACE_PREFIX: &str = "bench:";
/// Seed of the data; the random orders use seeds derived from it.
const SEED: u64 = 0x5EED_5747_E3E5;
/// redb write transactions used to load the keys.
const REDB_LOAD_TXNS: usize = 4;
/// Untimed operations before each latency measurement.
const WARMUP_OPS: usize = 1_000;

const TABLE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("kv");

struct Config {
    keys: usize,
    gets: usize,
    rounds: usize,
}

impl Config {
    fn from_env_and_args() -> Result<Config> {
        let env = |name: &str, default: usize| -> Result<usize> {
            match std::env::var(name) {
                Ok(text) => common::parse_count(&text).with_context(|| format!("{name}={text}")),
                Err(_) => Ok(default),
            }
        };
        let mut config = Config {
            keys: env("STATEMESH_BENCH_KEYS", 1_000_000)?,
            gets: env("STATEMESH_BENCH_GETS", 1_000_000)?,
            rounds: env("STATEMESH_BENCH_ROUNDS", 3)?,
        };
        // `cargo bench` appends `--bench`; anything not ours is ignored.
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            let slot = match flag.as_str() {
                "--keys" => &mut config.keys,
                "--gets" => &mut config.gets,
                "--rounds" => &mut config.rounds,
                _ => continue,
            };
            let text = match inline {
                Some(text) => text,
                None => args
                    .next()
                    .with_context(|| format!("{flag} needs a value"))?,
            };
            *slot = common::parse_count(&text).with_context(|| format!("{flag} {text}"))?;
        }
        ensure!(
            config.keys >= 1_000
                && config.keys.is_multiple_of(GROUP)
                && config.keys <= 1_000_000_000,
            "keys must be a multiple of {GROUP} between 1,000 and 1,000,000,000 (got {})",
            config.keys
        );
        ensure!(
            config.gets >= 1 && config.rounds >= 1,
            "gets and rounds must be at least 1"
        );
        Ok(config)
    }
}

/// The generated data: keys back to back in one string, values back to back in one buffer, so
/// the harness itself adds no pointer chase per operation.
struct Data {
    n: usize,
    keys: String,
    values: Vec<u8>,
}

impl Data {
    fn generate(n: usize) -> Result<Data> {
        let mut keys = String::with_capacity(n * KEY_LEN);
        for i in 0..n {
            write!(
                keys,
                "{NAMESPACE_PREFIX}grp.{:08}.key{:02}",
                i / GROUP,
                i % GROUP
            )?;
            ensure!(
                keys.len() == (i + 1) * KEY_LEN,
                "key {i} is not {KEY_LEN} bytes"
            );
        }
        let mut values = vec![0u8; n * VALUE_LEN];
        StdRng::seed_from_u64(SEED).fill_bytes(&mut values);
        Ok(Data { n, keys, values })
    }

    /// The written key, `bench:grp.GGGGGGGG.keyJJ`.
    fn key(&self, i: usize) -> &str {
        &self.keys[i * KEY_LEN..(i + 1) * KEY_LEN]
    }

    /// The key's path (what a scan cursor holds).
    fn path(&self, i: usize) -> &str {
        &self.key(i)[NAMESPACE_PREFIX.len()..]
    }

    fn value(&self, i: usize) -> &[u8] {
        &self.values[i * VALUE_LEN..(i + 1) * VALUE_LEN]
    }

    fn groups(&self) -> usize {
        self.n / GROUP
    }
}

/// Reads the first and last byte and the length: the same "use" of a value on both sides.
#[inline]
fn touch(bytes: &[u8]) -> u64 {
    let first = u64::from(bytes.first().copied().unwrap_or(0));
    let last = u64::from(bytes.last().copied().unwrap_or(0));
    (bytes.len() as u64) ^ first ^ (last << 8)
}

fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `n` uniform random indices below `below`.
fn uniform(seed: u64, below: usize, n: usize) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let below = u32::try_from(below).unwrap_or(u32::MAX);
    (0..n).map(|_| rng.random_range(0..below)).collect()
}

// ---------------------------------------------------------------------------------------------
// Latency table

struct Row {
    op: &'static str,
    note: String,
    samples: Vec<u64>,
}

impl Row {
    fn new(op: &'static str, note: impl Into<String>, capacity: usize) -> Row {
        Row {
            op,
            note: note.into(),
            samples: Vec::with_capacity(capacity),
        }
    }
}

/// Runs every per-op measurement against the loaded store. Writes put back the key's own
/// generated value, and every deleted key is put back at once, so the store ends as it began.
async fn latency_rows(
    store: &Store,
    data: &Data,
    point_ops: usize,
    range_ops: usize,
) -> Result<Vec<Row>> {
    let n = data.n;
    let mut rng = StdRng::seed_from_u64(SEED ^ 0x1a7e);
    let mut rows = Vec::new();

    // get: uniform random existing keys.
    let order = uniform(SEED ^ 1, n, point_ops + WARMUP_OPS);
    let (warm, timed) = order.split_at(WARMUP_OPS);
    for &i in warm {
        black_box(store.get(data.key(i as usize)).await?);
    }
    let mut row = Row::new("get", "uniform random existing key", point_ops);
    for &i in timed {
        let key = data.key(i as usize);
        let start = Instant::now();
        let found = black_box(store.get(key).await?).is_some();
        row.samples.push(nanos_since(start));
        ensure!(found, "get {key}: missing");
    }
    rows.push(row);

    // put: update of uniform random existing keys (value built outside the timed region).
    let order = uniform(SEED ^ 2, n, point_ops + WARMUP_OPS);
    let (warm, timed) = order.split_at(WARMUP_OPS);
    for &i in warm {
        let i = i as usize;
        store
            .put(data.key(i), Value::Bytes(data.value(i).to_vec()))
            .await?;
    }
    let mut row = Row::new(
        "put (update)",
        "uniform random existing key, 150 B",
        point_ops,
    );
    for &i in timed {
        let i = i as usize;
        let value = Value::Bytes(data.value(i).to_vec());
        let start = Instant::now();
        let result = store.put(data.key(i), value).await?;
        row.samples.push(nanos_since(start));
        ensure!(
            result.op == WriteOp::Update,
            "put {}: {:?}",
            data.key(i),
            result.op
        );
    }
    rows.push(row);

    // delete + re-put: distinct random keys; each deleted key is put back right away, so the
    // store holds n or n - 1 keys throughout. The re-put is a real insert (a new key).
    let mut perm: Vec<u32> = (0..u32::try_from(n)?).collect();
    let (chosen, _) = perm.partial_shuffle(&mut rng, point_ops.min(n));
    let chosen = chosen.to_vec();
    let mut delete = Row::new(
        "delete",
        "distinct random keys, each re-put next",
        chosen.len(),
    );
    let mut insert = Row::new(
        "put (insert)",
        "re-put of the key just deleted (cache-warm)",
        chosen.len(),
    );
    for &i in &chosen {
        let (i, key) = (i as usize, data.key(i as usize));
        let start = Instant::now();
        let result = store.delete(key).await?;
        delete.samples.push(nanos_since(start));
        ensure!(result.affected == 1, "delete {key}: {result:?}");
        let value = Value::Bytes(data.value(i).to_vec());
        let start = Instant::now();
        let result = store.put(key, value).await?;
        insert.samples.push(nanos_since(start));
        ensure!(
            result.op == WriteOp::Create,
            "re-put {key}: {:?}",
            result.op
        );
    }
    rows.push(delete);
    rows.push(insert);
    ensure!(
        store.len() == n,
        "store holds {} keys after delete/re-put, not {n}",
        store.len()
    );

    // scan(prefix, 100): the whole page of a random group.
    let groups = data.groups();
    let mut row = Row::new(
        "scan(prefix, 100)",
        "prefix bench:grp.GGGGGGGG. (a random group)",
        range_ops,
    );
    for round in 0..WARMUP_OPS.min(range_ops) + range_ops {
        let prefix = format!("{NAMESPACE_PREFIX}grp.{:08}.", rng.random_range(0..groups));
        let start = Instant::now();
        let items = black_box(store.scan(&prefix, GROUP, None).await?)
            .items
            .len();
        let elapsed = nanos_since(start);
        ensure!(items == GROUP, "scan {prefix}: {items} items");
        if round >= WARMUP_OPS.min(range_ops) {
            row.samples.push(elapsed);
        }
    }
    rows.push(row);

    // scan(prefix, 100) from a random position: prefix `bench:grp.`, cursor at a random key.
    let mut row = Row::new(
        "scan(prefix, 100, cursor)",
        "prefix bench:grp., cursor at a random key",
        range_ops,
    );
    for round in 0..WARMUP_OPS.min(range_ops) + range_ops {
        let at = rng.random_range(0..n - GROUP);
        let cursor = Cursor::after(data.path(at));
        let start = Instant::now();
        let items = black_box(store.scan("bench:grp.", GROUP, Some(&cursor)).await?)
            .items
            .len();
        let elapsed = nanos_since(start);
        ensure!(items == GROUP, "scan after {}: {items} items", data.key(at));
        if round >= WARMUP_OPS.min(range_ops) {
            row.samples.push(elapsed);
        }
    }
    rows.push(row);

    // multi_put(100 items): updates of 100 uniform random existing keys (items built outside).
    let batches = range_ops;
    let mut row = Row::new(
        "multi_put(100 items)",
        "updates of 100 random existing keys",
        batches,
    );
    for round in 0..WARMUP_OPS.min(batches) + batches {
        let items: Vec<(&str, Value)> = (0..GROUP)
            .map(|_| {
                let i = rng.random_range(0..n);
                (data.key(i), Value::Bytes(data.value(i).to_vec()))
            })
            .collect();
        let start = Instant::now();
        let result = store.multi_put(&items).await?;
        let elapsed = nanos_since(start);
        ensure!(result.affected == GROUP as u64, "multi_put: {result:?}");
        if round >= WARMUP_OPS.min(batches) {
            row.samples.push(elapsed);
        }
    }
    rows.push(row);

    // keys(pattern): literal prefix `grp.GGGGGGGG.` selects exactly the 100 keys of a group.
    let mut row = Row::new(
        "keys(pattern)",
        "bench:grp.GGGGGGGG.* (100 keys)",
        range_ops,
    );
    for round in 0..WARMUP_OPS.min(range_ops) + range_ops {
        let pattern = format!("{NAMESPACE_PREFIX}grp.{:08}.*", rng.random_range(0..groups));
        let start = Instant::now();
        let found = black_box(store.keys(&pattern).await?).len();
        let elapsed = nanos_since(start);
        ensure!(found == GROUP, "keys {pattern}: {found} keys");
        if round >= WARMUP_OPS.min(range_ops) {
            row.samples.push(elapsed);
        }
    }
    rows.push(row);

    Ok(rows)
}

fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} us", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

fn fmt_rate(per_sec: f64) -> String {
    common::thousands(per_sec.round() as u64)
}

fn print_rows(rows: &mut [Row]) {
    println!(
        "{:<26} {:>8} {:>12} {:>10} {:>10} {:>10} {:>10}  what",
        "op", "samples", "ops/s", "mean", "p50", "p99", "p99.9"
    );
    for row in rows.iter_mut() {
        let samples = &mut row.samples;
        samples.sort_unstable();
        let count = samples.len().max(1);
        let total: u64 = samples.iter().sum();
        let at = |q: f64| -> f64 {
            let index = ((samples.len().saturating_sub(1)) as f64 * q).round() as usize;
            samples.get(index).copied().unwrap_or(0) as f64
        };
        let ops_per_sec = count as f64 / (total.max(1) as f64 / 1e9);
        println!(
            "{:<26} {:>8} {:>12} {:>10} {:>10} {:>10} {:>10}  {}",
            row.op,
            samples.len(),
            fmt_rate(ops_per_sec),
            fmt_ns(total as f64 / count as f64),
            fmt_ns(at(0.50)),
            fmt_ns(at(0.99)),
            fmt_ns(at(0.999)),
            row.note
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput comparison

/// One untimed-or-timed pass of gets over `order` against the store, awaiting every get on a
/// current-thread runtime. Returns the elapsed time and a checksum of the values read.
/// `zero_copy` reads through `get_stored` (the stored bytes shared, not copied or decoded: the
/// like-for-like of redb's borrowed `AccessGuard`) instead of `get`.
fn store_pass(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    data: &Data,
    order: &[u32],
    zero_copy: bool,
) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let sum = rt.block_on(async {
        let mut sum = 0u64;
        for &i in order {
            if zero_copy {
                let value = store
                    .get_stored(data.key(i as usize))
                    .await?
                    .context("store get_stored: missing key")?;
                sum = sum.wrapping_add(touch(black_box(&value).payload()));
                continue;
            }
            let value = store
                .get(data.key(i as usize))
                .await?
                .context("store get: missing key")?;
            let bytes = black_box(&value)
                .as_bytes()
                .context("store get: not bytes")?;
            sum = sum.wrapping_add(touch(bytes));
        }
        anyhow::Ok(sum)
    })?;
    Ok((start.elapsed(), black_box(sum)))
}

/// The same pass against redb, through one read transaction opened before the clock starts.
fn redb_pass(db: &Database, data: &Data, order: &[u32]) -> Result<(Duration, u64)> {
    let txn = db.begin_read()?;
    let table = txn.open_table(TABLE)?;
    let start = Instant::now();
    let mut sum = 0u64;
    for &i in order {
        let guard = table
            .get(data.key(i as usize).as_bytes())?
            .context("redb get: missing key")?;
        sum = sum.wrapping_add(touch(black_box(guard.value())));
    }
    Ok((start.elapsed(), black_box(sum)))
}

/// Deletes the redb file when dropped, on error paths too.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        // Nothing useful to do about a failure here; report it and move on.
        if let Err(e) = std::fs::remove_file(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

fn load_redb(db: &Database, data: &Data) -> Result<()> {
    let per_txn = data.n.div_ceil(REDB_LOAD_TXNS);
    for first in (0..data.n).step_by(per_txn) {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for i in first..(first + per_txn).min(data.n) {
                table.insert(data.key(i).as_bytes(), data.value(i))?;
            }
        }
        txn.commit()?;
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Median cost of one `Instant::now()` + `elapsed()` pair, the overhead inside every sample.
fn timer_cost() -> u64 {
    let mut samples: Vec<u64> = (0..200_000).map(|_| nanos_since(Instant::now())).collect();
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

fn main() -> Result<()> {
    let config = Config::from_env_and_args()?;
    let n = config.keys;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let profile = if cfg!(debug_assertions) {
        "debug (debug_assertions on: numbers are not meaningful)"
    } else {
        "optimized (release/bench, debug_assertions off)"
    };
    let point_ops = (n / 5).clamp(1_000, 200_000);
    let range_ops = (n / 100).clamp(100, 10_000);

    println!("statemesh store bench | cores: {cores} | cpu: {cpu} | profile: {profile}");
    println!(
        "keys: {} x {KEY_LEN} B (bench:grp.GGGGGGGG.keyJJ, {GROUP} per group) | values: {VALUE_LEN} B \
         Value::Bytes | seed {SEED:#x} | timer: Instant::now()+elapsed() median {} ns",
        fmt_rate(n as f64),
        timer_cost()
    );

    eprintln!("generating {n} keys ...");
    let data = Data::generate(n)?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let store = rt.block_on(Store::in_memory())?;
    let start = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            store
                .put(data.key(i), Value::Bytes(data.value(i).to_vec()))
                .await?;
        }
        anyhow::Ok(())
    })?;
    let store_load = start.elapsed();
    ensure!(
        store.len() == n,
        "store holds {} keys, not {n}",
        store.len()
    );

    let path = std::env::temp_dir().join(format!("statemesh-bench-{}.redb", std::process::id()));
    let file = TempFile(path.clone());
    let db = Database::create(&path).with_context(|| format!("create {}", path.display()))?;
    let start = Instant::now();
    load_redb(&db, &data)?;
    let redb_load = start.elapsed();
    let redb_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "load: Store {} puts/s ({:.2} s, one put each) | redb {} inserts/s ({:.2} s, {REDB_LOAD_TXNS} \
         write txns, file {:.0} MiB at {})",
        fmt_rate(n as f64 / store_load.as_secs_f64()),
        store_load.as_secs_f64(),
        fmt_rate(n as f64 / redb_load.as_secs_f64()),
        redb_load.as_secs_f64(),
        redb_bytes as f64 / (1 << 20) as f64,
        path.display()
    );

    // The comparison runs first, on the data exactly as loaded.
    eprintln!(
        "comparison: {} rounds of {} random gets per side ...",
        config.rounds, config.gets
    );
    let order = uniform(SEED ^ 3, n, config.gets);
    let (_, store_sum) = store_pass(&rt, &store, &data, &order, false)?; // warm-up
    let (_, redb_sum) = redb_pass(&db, &data, &order)?; // warm-up
    ensure!(store_sum == redb_sum, "Store and redb read different bytes");
    let (_, stored_sum) = store_pass(&rt, &store, &data, &order, true)?; // warm-up
    ensure!(
        stored_sum == redb_sum,
        "get_stored and redb read different bytes"
    );
    let mut stored_rates = Vec::new();
    let mut store_rates = Vec::new();
    let mut redb_rates = Vec::new();
    let mut round_lines = Vec::new();
    for round in 1..=config.rounds {
        let (store_time, _) = store_pass(&rt, &store, &data, &order, false)?;
        let (redb_time, _) = redb_pass(&db, &data, &order)?;
        let (stored_time, _) = store_pass(&rt, &store, &data, &order, true)?;
        let s = config.gets as f64 / store_time.as_secs_f64();
        let r = config.gets as f64 / redb_time.as_secs_f64();
        let z = config.gets as f64 / stored_time.as_secs_f64();
        round_lines.push(format!(
            "  round {round}: Store get {:>12} gets/s ({:.0} ns) | get_stored {:>12} ({:.0} ns) | redb {:>12} ({:.0} ns) | \
             get/redb {:.2}x, get_stored/redb {:.2}x",
            fmt_rate(s),
            1e9 / s,
            fmt_rate(z),
            1e9 / z,
            fmt_rate(r),
            1e9 / r,
            s / r,
            z / r
        ));
        stored_rates.push(z);
        store_rates.push(s);
        redb_rates.push(r);
    }
    drop(db);
    drop(file);

    eprintln!("latency table: {point_ops} point ops, {range_ops} range ops / batches ...");
    let mut rows = rt.block_on(latency_rows(&store, &data, point_ops, range_ops))?;

    println!();
    println!(
        "1. Store per-op latency (in-memory, {} keys, one thread, current_thread runtime)",
        fmt_rate(n as f64)
    );
    print_rows(&mut rows);

    let (s, r, z) = (
        median(store_rates),
        median(redb_rates),
        median(stored_rates),
    );
    println!();
    println!(
        "2. {} uniform random gets, one thread, same keys and order (warm-up pass each, then {} \
         timed rounds; value read: len + first + last byte)",
        fmt_rate(config.gets as f64),
        config.rounds
    );
    for line in &round_lines {
        println!("{line}");
    }
    println!(
        "  median : Store {:>12} gets/s | redb 4 {:>12} gets/s | ratio Store/redb {:.2}x (target >= 2.00x: {})",
        fmt_rate(s),
        fmt_rate(r),
        s / r,
        if s / r >= 2.0 { "met" } else { "NOT met" }
    );
    println!(
        "  median : Store get_stored {:>12} gets/s (zero-copy, like redb's AccessGuard) | ratio get_stored/redb {:.2}x",
        fmt_rate(z),
        z / r
    );
    Ok(())
}
