//! Durable-write benchmark (a plain table, no criterion): the CP [`Store`] on the file adapter
//! (`Store::builder().open(dir)`, default `SyncPolicy::Always`) against redb 4
//! (`Durability::Immediate`), in one run on the same generated data, on this machine.
//!
//! 1. Single durable puts, one after the other (Store: `put(..).await`; redb: one write
//!    transaction and commit per put).
//! 2. 2 and 8 concurrent writers, each doing sequential durable single puts (Store: tokio tasks
//!    on a multi-thread runtime sharing one Store, so the committer's group commit can share an
//!    fsync; redb: std threads sharing one `Database`, a write transaction per put, which redb
//!    serializes).
//! 3. Bulk load (Store: `import` in batches of 10,000 keys, one revision each, durable when it
//!    returns, the committer writing one batch while the next is applied; redb: 10,000 keys per
//!    write transaction).
//! 4. Recovery after the bulk load: the time to reopen and serve one read (Store: `open` with the
//!    log only, and again after `checkpoint()`; redb: `Database::open` plus one read). The page
//!    cache is warm: the files were just written.
//!
//! Then a breakdown of where the Store's time goes, measured piece by piece with the same public
//! building blocks the Store uses (`statemesh_core::Engine`, `LogRecord`, `FsStorage`): recovery
//! as storage load vs record decode vs replay vs snapshot restore, and bulk load as engine apply
//! vs log-record encode vs log append vs fsync.
//!
//! Run with `cargo bench -p statemesh --bench durable`. Environment: `STATEMESH_BENCH_KEYS` keys
//! in the bulk load and recovery (default 1,000,000), `STATEMESH_BENCH_SINGLE` single puts
//! (default 1,000), `STATEMESH_BENCH_CONCURRENT` puts per concurrent run, all writers together
//! (default 2,000), `STATEMESH_BENCH_ROUNDS` rounds of the put and recovery measurements, the
//! median is reported (default 3), `STATEMESH_BENCH_BREAKDOWN=0` skips the breakdown.
//!
//! Data: key `i` is `bench:user.{i:08}` (19 bytes as written while `i` < 10^8; redb stores the
//! same bytes as its key), value `i` is 100 bytes from a seeded `StdRng` (`Value::Bytes` in the
//! Store, the raw bytes in redb). Every database lives in its own directory under a fresh
//! directory in `std::env::temp_dir()`, removed at the end.

// A bench reports on stdout.
#![allow(clippy::print_stdout)]

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use statemesh::core::{EncodedLog, Engine, EngineConfig, LogBytes, LogRecord, Storage, Timestamp};
use statemesh::{Store, Value};
use statemesh_fs::{FsOptions, FsStorage, SyncPolicy};

const VALUE_LEN: usize = 100;
const BATCH: usize = 10_000;
const SEED: u64 = 0xD05A_B1E5_EED5;
const TABLE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("kv");

// ---------------------------------------------------------------------------------------------
// Configuration, data, temp dirs

struct Config {
    keys: usize,
    single: usize,
    concurrent: usize,
    rounds: usize,
    breakdown: bool,
}

impl Config {
    fn from_env() -> Result<Config> {
        let env = common::env_count;
        let config = Config {
            keys: env("STATEMESH_BENCH_KEYS", 1_000_000)?,
            single: env("STATEMESH_BENCH_SINGLE", 1_000)?,
            concurrent: env("STATEMESH_BENCH_CONCURRENT", 2_000)?,
            rounds: env("STATEMESH_BENCH_ROUNDS", 3)?,
            breakdown: env("STATEMESH_BENCH_BREAKDOWN", 1)? != 0,
        };
        ensure!(
            (1..=99_999_999).contains(&config.keys),
            "STATEMESH_BENCH_KEYS must be between 1 and 99,999,999"
        );
        ensure!(
            config.single >= 1 && config.concurrent >= 8 && config.rounds >= 1,
            "single and rounds must be at least 1, concurrent at least 8"
        );
        Ok(config)
    }
}

/// Keys back to back in one string, values back to back in one buffer.
struct Data {
    keys: String,
    key_len: usize,
    values: Vec<u8>,
}

impl Data {
    fn generate(n: usize) -> Result<Data> {
        let key_len = "bench:user.".len() + 8;
        let mut keys = String::with_capacity(n * key_len);
        for i in 0..n {
            write!(keys, "bench:user.{i:08}")?;
        }
        ensure!(keys.len() == n * key_len, "keys are not {key_len} bytes");
        let mut values = vec![0u8; n * VALUE_LEN];
        StdRng::seed_from_u64(SEED).fill_bytes(&mut values);
        Ok(Data {
            keys,
            key_len,
            values,
        })
    }

    fn key(&self, i: usize) -> &str {
        &self.keys[i * self.key_len..(i + 1) * self.key_len]
    }

    fn value(&self, i: usize) -> &[u8] {
        &self.values[i * VALUE_LEN..(i + 1) * VALUE_LEN]
    }

    /// The Store's items for keys `range`.
    fn items(&self, range: std::ops::Range<usize>) -> Vec<(&str, Value)> {
        range
            .map(|i| (self.key(i), Value::from(self.value(i))))
            .collect()
    }
}

/// A fresh directory under the system temp dir, removed (with everything in it) on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new() -> Result<TempRoot> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let path =
            std::env::temp_dir().join(format!("statemesh-durable-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(TempRoot(path))
    }

    /// A new empty directory `name` inside the root.
    fn dir(&self, name: &str) -> Result<PathBuf> {
        let path = self.0.join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(path)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

fn redb_create(dir: &Path) -> Result<Database> {
    Ok(Database::create(dir.join("bench.redb"))?)
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

fn now_ts() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp::from_millis(millis)
}

// ---------------------------------------------------------------------------------------------
// Formatting

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-12)
}

fn fmt_rate(r: f64, unit: &str) -> String {
    format!("{} {unit}", common::thousands(r.round() as u64))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    fn row(
        &mut self,
        test: impl Into<String>,
        store: impl Into<String>,
        redb: impl Into<String>,
        ratio: f64,
        target: &str,
        met: Option<bool>,
    ) {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        };
        self.rows.push([
            test.into(),
            store.into(),
            redb.into(),
            format!("{ratio:.2}x"),
            target.to_owned(),
            verdict.to_owned(),
        ]);
    }

    fn print(&self) {
        let header = ["test", "Store", "redb", "Store/redb", "target", "verdict"];
        let mut widths = header.map(str::len);
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |cells: [&str; 6]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i == 0 {
                    let _ = write!(s, "{cell:<w$}");
                } else {
                    let _ = write!(s, "  {cell:>w$}");
                }
            }
            println!("{s}");
        };
        line(header);
        println!(
            "{}",
            "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
        );
        for row in &self.rows {
            line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. single durable puts

struct Singles {
    total: Duration,
    /// Sorted per-put latencies.
    latencies: Vec<Duration>,
}

async fn store_singles(dir: &Path, data: &Data, count: usize) -> Result<Singles> {
    let store = Store::builder().open(dir).await?;
    let mut latencies = Vec::with_capacity(count);
    let start = Instant::now();
    for i in 0..count {
        let t = Instant::now();
        store.put(data.key(i), Value::from(data.value(i))).await?;
        latencies.push(t.elapsed());
    }
    let total = start.elapsed();
    store.close().await;
    latencies.sort_unstable();
    Ok(Singles { total, latencies })
}

fn redb_singles(dir: &Path, data: &Data, count: usize) -> Result<Singles> {
    let db = redb_create(dir)?;
    let mut latencies = Vec::with_capacity(count);
    let start = Instant::now();
    for i in 0..count {
        let t = Instant::now();
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(TABLE)?;
            table.insert(data.key(i).as_bytes(), data.value(i))?;
        }
        txn.commit()?;
        latencies.push(t.elapsed());
    }
    let total = start.elapsed();
    drop(db);
    latencies.sort_unstable();
    Ok(Singles { total, latencies })
}

// ---------------------------------------------------------------------------------------------
// 2. concurrent writers

async fn store_concurrent(
    dir: &Path,
    data: &Arc<Data>,
    writers: usize,
    total: usize,
) -> Result<Duration> {
    let store = Store::builder().open(dir).await?;
    let per = total / writers;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let store = store.clone();
        let data = Arc::clone(data);
        tasks.push(tokio::spawn(async move {
            for j in 0..per {
                let i = j * writers + w;
                store.put(data.key(i), Value::from(data.value(i))).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed();
    ensure!(store.len() == per * writers, "store lost puts");
    store.close().await;
    Ok(elapsed)
}

fn redb_concurrent(dir: &Path, data: &Data, writers: usize, total: usize) -> Result<Duration> {
    let db = redb_create(dir)?;
    let per = total / writers;
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let db = &db;
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                s.spawn(move || -> Result<()> {
                    for j in 0..per {
                        let i = j * writers + w;
                        let mut txn = db.begin_write()?;
                        txn.set_durability(Durability::Immediate)?;
                        {
                            let mut table = txn.open_table(TABLE)?;
                            table.insert(data.key(i).as_bytes(), data.value(i))?;
                        }
                        txn.commit()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("redb writer panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed();
    drop(db);
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------------
// 3. bulk load, 4. recovery

async fn store_bulk(dir: &Path, data: &Data, n: usize) -> Result<Duration> {
    // No automatic checkpoint: the recovery rows measure the log alone, then after an explicit
    // `checkpoint()`. (By default a store checkpoints after 64 MiB of log, so a default store
    // that imported this much recovers by the second row's path.)
    let store = Store::builder()
        .checkpoint_bytes(u64::MAX)
        .open(dir)
        .await?;
    let start = Instant::now();
    let items = (0..n).map(|i| (data.key(i), Value::from(data.value(i))));
    let written = store.import(items, BATCH).await?;
    let elapsed = start.elapsed();
    ensure!(written == n as u64, "import wrote {written} keys, not {n}");
    ensure!(
        store.len() == n,
        "store holds {} keys, not {n}",
        store.len()
    );
    store.close().await;
    Ok(elapsed)
}

fn redb_bulk(dir: &Path, data: &Data, n: usize) -> Result<Duration> {
    let db = redb_create(dir)?;
    let start = Instant::now();
    for first in (0..n).step_by(BATCH) {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(TABLE)?;
            for i in first..(first + BATCH).min(n) {
                table.insert(data.key(i).as_bytes(), data.value(i))?;
            }
        }
        txn.commit()?;
    }
    let elapsed = start.elapsed();
    drop(db);
    Ok(elapsed)
}

/// Opens the store, reads one key; returns the time to that point. Checks the contents after.
async fn store_recover(dir: &Path, data: &Data, n: usize) -> Result<Duration> {
    let start = Instant::now();
    let store = Store::builder().open(dir).await?;
    let got = store.get(data.key(n / 2)).await?;
    let elapsed = start.elapsed();
    ensure!(
        got == Some(Value::from(data.value(n / 2))),
        "recovered store misses a key"
    );
    ensure!(store.len() == n, "recovered {} keys, not {n}", store.len());
    store.close().await;
    Ok(elapsed)
}

fn redb_recover(dir: &Path, data: &Data, n: usize) -> Result<Duration> {
    let start = Instant::now();
    let db = Database::open(dir.join("bench.redb"))?;
    let ok = {
        let txn = db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let got = table.get(data.key(n / 2).as_bytes())?;
        got.is_some_and(|v| v.value() == data.value(n / 2))
    };
    let elapsed = start.elapsed();
    ensure!(ok, "recovered redb misses a key");
    drop(db);
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------------
// Breakdown: the Store's steps, one at a time

#[derive(Default)]
struct BulkParts {
    build: Duration,
    apply: Duration,
    encode: Duration,
    append: Duration,
    fsync: Duration,
    log_bytes: u64,
}

/// The Store's bulk-load path without the Store: build items, `Engine::multi_put` (which
/// encodes the log record), take the record, `FsStorage::append` (policy Never, so no fsync inside), then `sync`.
async fn bulk_breakdown(dir: &Path, data: &Data, n: usize) -> Result<BulkParts> {
    let mut engine = Engine::new(EngineConfig::default())?;
    engine.set_capture_log(true);
    engine.set_capture_events(false);
    let mut storage = FsStorage::open(dir, FsOptions::default().sync(SyncPolicy::Never))?;
    storage.load().await?;
    let mut parts = BulkParts::default();
    for first in (0..n).step_by(BATCH) {
        let t0 = Instant::now();
        let items = data.items(first..(first + BATCH).min(n));
        let t1 = Instant::now();
        engine.multi_put(now_ts(), &items)?;
        let t2 = Instant::now();
        // The engine encodes as it writes; this takes the bytes and splits them as `append`
        // takes them (what the committer does).
        let mut log = EncodedLog::new();
        engine.take_log(&mut log);
        let records: Vec<LogBytes> = log.to_log_bytes().collect();
        let t3 = Instant::now();
        storage.append(&records).await?;
        let t4 = Instant::now();
        storage.sync().await?;
        let t5 = Instant::now();
        parts.build += t1 - t0;
        parts.apply += t2 - t1;
        parts.encode += t3 - t2;
        parts.append += t4 - t3;
        parts.fsync += t5 - t4;
        parts.log_bytes += records.iter().map(|r| r.bytes.len() as u64).sum::<u64>();
    }
    storage.close()?;
    Ok(parts)
}

#[derive(Default)]
struct RecoveryParts {
    load: Duration,
    snapshot_restore: Duration,
    decode: Duration,
    replay: Duration,
    records: usize,
    record_bytes: u64,
    snapshot_bytes: u64,
}

/// The Store's recovery path without the Store: `FsStorage::open` + `load` (read, checksum,
/// copy out the payloads, fsync the tail), `Engine::restore`, then `LogRecord::decode` and
/// `Engine::replay` of every record, decode and replay timed apart.
async fn recovery_breakdown(dir: &Path, n: usize) -> Result<RecoveryParts> {
    let mut parts = RecoveryParts::default();
    let t0 = Instant::now();
    let mut storage = FsStorage::open(dir, FsOptions::default())?;
    let recovered = storage.load().await?;
    let t1 = Instant::now();
    let mut engine = match &recovered.snapshot {
        Some(bytes) => Engine::restore(EngineConfig::default(), bytes)?,
        None => Engine::new(EngineConfig::default())?,
    };
    let t2 = Instant::now();
    let mut decoded = Vec::with_capacity(recovered.records.len());
    for record in &recovered.records {
        decoded.push(LogRecord::decode(&record.bytes)?);
    }
    let t3 = Instant::now();
    for record in &decoded {
        engine.replay(record)?;
    }
    let t4 = Instant::now();
    ensure!(
        engine.len() == n,
        "breakdown recovered {} keys",
        engine.len()
    );
    parts.load = t1 - t0;
    parts.snapshot_restore = t2 - t1;
    parts.decode = t3 - t2;
    parts.replay = t4 - t3;
    parts.records = recovered.records.len();
    parts.record_bytes = recovered.records.iter().map(|r| r.bytes.len() as u64).sum();
    parts.snapshot_bytes = recovered.snapshot.as_ref().map_or(0, |s| s.len() as u64);
    drop(decoded);
    drop(engine);
    storage.close()?;
    Ok(parts)
}

/// One line per step: its time and its share of `whole`.
fn print_steps(steps: &[(&str, Duration)], whole: Duration) {
    for (step, took) in steps {
        println!("    {step:<50}{}", share(*took, whole));
    }
}

fn share(part: Duration, whole: Duration) -> String {
    format!(
        "{:>9.1} ms  {:>5.1}%",
        ms(part),
        100.0 * part.as_secs_f64() / whole.as_secs_f64().max(1e-12)
    )
}

// ---------------------------------------------------------------------------------------------

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{cores} cores (available_parallelism), {cpu}, {} {} kernel {kernel}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn main() -> Result<()> {
    let config = Config::from_env()?;
    let n = config.keys;
    let need = n.max(config.single).max(config.concurrent);
    let data = Arc::new(Data::generate(need)?);
    let root = TempRoot::new()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rounds = config.rounds;

    println!("statemesh durable writes: Store (CP, file adapter, SyncPolicy::Always) vs redb 4");
    println!("(Durability::Immediate)");
    println!("machine: {}", machine());
    println!(
        "profile: {} (debug_assertions {}); tokio multi-thread runtime, {} workers",
        if cfg!(debug_assertions) {
            "dev/test"
        } else {
            "bench (release: opt-level 3, codegen-units 4, debug off)"
        },
        if cfg!(debug_assertions) { "on" } else { "off" },
        rt.metrics().num_workers()
    );
    println!("temp dir: {}", root.0.display());
    println!(
        "data: keys `bench:user.NNNNNNNN` ({} bytes), {VALUE_LEN}-byte seeded random values; \
         {rounds} round(s), medians reported",
        data.key_len
    );
    println!();

    let mut table = Table { rows: Vec::new() };
    let mut notes: Vec<String> = Vec::new();

    // 1. single durable puts
    {
        let count = config.single;
        let (mut s_runs, mut r_runs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let dir = root.dir(&format!("store-single-{round}"))?;
            s_runs.push(rt.block_on(store_singles(&dir, &data, count))?);
            std::fs::remove_dir_all(&dir)?;
            let dir = root.dir(&format!("redb-single-{round}"))?;
            r_runs.push(redb_singles(&dir, &data, count)?);
            std::fs::remove_dir_all(&dir)?;
        }
        s_runs.sort_by_key(|s| s.total);
        r_runs.sort_by_key(|s| s.total);
        let (s, r) = (&s_runs[rounds / 2], &r_runs[rounds / 2]);
        let (sr, rr) = (rate(count, s.total), rate(count, r.total));
        table.row(
            format!("1. {} single durable puts", common::thousands(count as u64)),
            fmt_rate(sr, "put/s"),
            fmt_rate(rr, "put/s"),
            sr / rr,
            ">= 1.0x",
            Some(sr / rr >= 1.0),
        );
        let lat = |s: &Singles| {
            format!(
                "p50 {:.0} us, p99 {:.0} us, max {:.0} us",
                us(percentile(&s.latencies, 0.5)),
                us(percentile(&s.latencies, 0.99)),
                us(percentile(&s.latencies, 1.0))
            )
        };
        notes.push(format!(
            "1. latency per put (median round): Store {}; redb {}",
            lat(s),
            lat(r)
        ));
        notes.push(format!(
            "   rounds, put/s: Store {}; redb {}",
            s_runs
                .iter()
                .map(|s| common::thousands(rate(count, s.total).round() as u64))
                .collect::<Vec<_>>()
                .join(" "),
            r_runs
                .iter()
                .map(|s| common::thousands(rate(count, s.total).round() as u64))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }

    // 2. concurrent writers
    for writers in [2usize, 8] {
        let total = config.concurrent / writers * writers;
        let (mut s_runs, mut r_runs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let dir = root.dir(&format!("store-conc{writers}-{round}"))?;
            s_runs.push(rt.block_on(store_concurrent(&dir, &data, writers, total))?);
            std::fs::remove_dir_all(&dir)?;
            let dir = root.dir(&format!("redb-conc{writers}-{round}"))?;
            r_runs.push(redb_concurrent(&dir, &data, writers, total)?);
            std::fs::remove_dir_all(&dir)?;
        }
        let (sr, rr) = (
            rate(total, median(s_runs.clone())),
            rate(total, median(r_runs.clone())),
        );
        table.row(
            format!(
                "2. {writers} writers, {} durable puts in all",
                common::thousands(total as u64)
            ),
            fmt_rate(sr, "put/s"),
            fmt_rate(rr, "put/s"),
            sr / rr,
            ">= 2.0x",
            Some(sr / rr >= 2.0),
        );
        let fmt_runs = |runs: &[Duration]| {
            runs.iter()
                .map(|d| common::thousands(rate(total, *d).round() as u64))
                .collect::<Vec<_>>()
                .join(" ")
        };
        notes.push(format!(
            "2. {writers} writers, rounds, put/s: Store {}; redb {}",
            fmt_runs(&s_runs),
            fmt_runs(&r_runs)
        ));
    }

    // 3. bulk load
    let store_dir = root.dir("store-bulk")?;
    let redb_dir = root.dir("redb-bulk")?;
    {
        let s = rt.block_on(store_bulk(&store_dir, &data, n))?;
        let r = redb_bulk(&redb_dir, &data, n)?;
        let (sr, rr) = (rate(n, s), rate(n, r));
        table.row(
            format!(
                "3. bulk load {} keys, {} per batch",
                common::thousands(n as u64),
                common::thousands(BATCH as u64)
            ),
            fmt_rate(sr, "keys/s"),
            fmt_rate(rr, "keys/s"),
            sr / rr,
            ">= 1.5x",
            Some(sr / rr >= 1.5),
        );
        notes.push(format!(
            "3. bulk load wall time: Store {:.0} ms, redb {:.0} ms; on disk: Store {:.1} MiB \
             (log), redb {:.1} MiB",
            ms(s),
            ms(r),
            dir_bytes(&store_dir)? as f64 / 1048576.0,
            dir_bytes(&redb_dir)? as f64 / 1048576.0
        ));
    }

    // 4. recovery
    let per10k = |d: Duration| ms(d) * 10_000.0 / n as f64;
    let redb_rec = {
        let mut runs = Vec::new();
        for _ in 0..rounds {
            runs.push(redb_recover(&redb_dir, &data, n)?);
        }
        median(runs)
    };
    let mut log_runs = Vec::new();
    for _ in 0..rounds {
        log_runs.push(rt.block_on(store_recover(&store_dir, &data, n))?);
    }
    let log_rec = median(log_runs);
    let log_parts = if config.breakdown {
        Some(rt.block_on(recovery_breakdown(&store_dir, n))?)
    } else {
        None
    };
    let checkpoint_time = rt.block_on(async {
        let store = Store::builder().open(&store_dir).await?;
        let start = Instant::now();
        store.checkpoint().await?;
        let elapsed = start.elapsed();
        store.close().await;
        anyhow::Ok(elapsed)
    })?;
    let store_ckpt_bytes = dir_bytes(&store_dir)?;
    let mut ckpt_runs = Vec::new();
    for _ in 0..rounds {
        ckpt_runs.push(rt.block_on(store_recover(&store_dir, &data, n))?);
    }
    let ckpt_rec = median(ckpt_runs);
    let ckpt_parts = if config.breakdown {
        Some(rt.block_on(recovery_breakdown(&store_dir, n))?)
    } else {
        None
    };
    for (label, d) in [("log only", log_rec), ("after checkpoint()", ckpt_rec)] {
        table.row(
            format!(
                "4. recovery of {} keys, {label} (ms per 10k)",
                common::thousands(n as u64)
            ),
            format!("{:.0} ms ({:.2})", ms(d), per10k(d)),
            format!("{:.1} ms ({:.3})", ms(redb_rec), per10k(redb_rec)),
            ms(d) / ms(redb_rec),
            "<= 10 ms/10k",
            Some(per10k(d) <= 10.0),
        );
    }
    notes.push(format!(
        "4. checkpoint() of {} keys took {:.0} ms; directory after it: {:.1} MiB; recovery is \
         warm-cache (files just written); Store/redb is a time ratio there (lower is better)",
        common::thousands(n as u64),
        ms(checkpoint_time),
        store_ckpt_bytes as f64 / 1048576.0
    ));

    println!("Results");
    table.print();
    println!();
    for note in &notes {
        println!("{note}");
    }

    if let (Some(log), Some(ckpt)) = (log_parts, ckpt_parts) {
        println!();
        println!(
            "Breakdown: recovery of {} keys",
            common::thousands(n as u64)
        );
        let whole = log.load + log.decode + log.replay;
        println!(
            "  log only: {} records, {:.1} MiB of record payload; steps sum to {:.0} ms \
             (Store::open measured {:.0} ms)",
            log.records,
            log.record_bytes as f64 / 1048576.0,
            ms(whole),
            ms(log_rec)
        );
        print_steps(
            &[
                (
                    "FsStorage open+load (read, CRC, copy, tail fsync)",
                    log.load,
                ),
                ("LogRecord::decode (postcard)", log.decode),
                ("Engine::replay (key check, checksum, install)", log.replay),
            ],
            whole,
        );
        let whole = ckpt.load + ckpt.snapshot_restore + ckpt.decode + ckpt.replay;
        println!(
            "  after checkpoint: snapshot {:.1} MiB, {} records left; steps sum to {:.0} ms \
             (Store::open measured {:.0} ms)",
            ckpt.snapshot_bytes as f64 / 1048576.0,
            ckpt.records,
            ms(whole),
            ms(ckpt_rec)
        );
        print_steps(
            &[
                (
                    "FsStorage open+load (read, CRC, copy, tail fsync)",
                    ckpt.load,
                ),
                (
                    "Engine::restore (decode + install every entry)",
                    ckpt.snapshot_restore,
                ),
                ("log decode + replay", ckpt.decode + ckpt.replay),
            ],
            whole,
        );

        let dir = root.dir("store-bulk-breakdown")?;
        let parts = rt.block_on(bulk_breakdown(&dir, &data, n))?;
        let whole = parts.build + parts.apply + parts.encode + parts.append + parts.fsync;
        println!();
        println!(
            "Breakdown: bulk load of {} keys in {} batches ({:.1} MiB of log payload); steps sum \
             to {:.0} ms = {} keys/s",
            common::thousands(n as u64),
            n.div_ceil(BATCH),
            parts.log_bytes as f64 / 1048576.0,
            ms(whole),
            common::thousands(rate(n, whole).round() as u64)
        );
        print_steps(
            &[
                ("build items (Value::from, 100-byte copy)", parts.build),
                (
                    "Engine::multi_put (parse, encode value, install)",
                    parts.apply,
                ),
                ("take_log + split into records", parts.encode),
                ("FsStorage::append (frame, CRC, write(2))", parts.append),
                ("fsync (fdatasync per batch)", parts.fsync),
            ],
            whole,
        );
    }

    drop(rt);
    drop(root);
    Ok(())
}
