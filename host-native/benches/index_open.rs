//! Open time of a durable store with search indexes: loading the index images its last
//! checkpoint stored, against rebuilding every index from the restored keyspace (the images
//! deleted first), against opening with no index declared (recovery alone).
//!
//! Text: `STATEMESH_BENCH_DOCS` documents (default 100,000) of ~50 words from a Zipfian
//! vocabulary of 20,000 (as the `search_text` bench), indexed by a text index on field `body`,
//! checkpointed, then 1,000 more documents written (the log tail an open replays). Vectors:
//! `STATEMESH_BENCH_VECTORS` (default 20,000) 128-d clustered vectors in a separate store, once
//! with the exact index and once with HNSW (M 16, ef_construction 200). Every open is done
//! `STATEMESH_BENCH_ROUNDS` times (default 3), alternating the kinds; the table gives the
//! median. Release build: `cargo bench -p statemesh --bench index_open`
//! (`STATEMESH_BENCH_DOCS=0` skips the text store, `STATEMESH_BENCH_KINDS=hnsw` the exact one;
//! the vectors come from their own seeded generator, so they are the same either way).
//!
//! HNSW images carry the graph, so their open reloads it (statemesh-hnsw's `image` module)
//! where the rebuild builds it serially from the keyspace.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use statemesh::{Metric, Store, StoreBuilder, TextIndexDef, Value, VectorIndexDef};

const VOCABULARY: usize = 20_000;

fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut total = 0.0;
    let cdf: Vec<f64> = (1..=n)
        .map(|rank| {
            total += 1.0 / rank as f64;
            total
        })
        .collect();
    cdf.into_iter().map(|c| c / total).collect()
}

fn word(rank: usize) -> String {
    const STOP: [&str; 5] = ["the", "and", "of", "to", "a"];
    if rank < STOP.len() {
        return STOP[rank].to_owned();
    }
    let mut s = String::new();
    let mut n = rank;
    loop {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    s.push_str("ing");
    s
}

fn docs(n: usize, rng: &mut StdRng) -> Vec<(String, Value)> {
    let cdf = zipf_cdf(VOCABULARY);
    (0..n)
        .map(|i| {
            let len = 40 + rng.random_range(0..20);
            let body: Vec<String> = (0..len)
                .map(|_| {
                    let x: f64 = rng.random();
                    word(cdf.partition_point(|c| *c < x).min(VOCABULARY - 1))
                })
                .collect();
            (
                format!("docs:d{i:07}"),
                Value::Json(json!({ "body": body.join(" ") })),
            )
        })
        .collect()
}

fn vectors(n: usize, rng: &mut StdRng) -> Vec<(String, Value)> {
    let centres: Vec<Vec<f32>> = (0..100)
        .map(|_| (0..128).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[rng.random_range(0..centres.len())];
            let v: Vec<f32> = c
                .iter()
                .map(|x| x + rng.random_range(-0.1f32..0.1))
                .collect();
            (format!("vecs:v{i:07}"), Value::Json(json!({ "v": v })))
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Open {
    Images,
    Rebuild,
    Bare,
}

fn remove_images(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("index-"))
        {
            std::fs::remove_file(path).unwrap();
        }
    }
}

fn image_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("index-"))
        })
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Copies the store directory (without the lock) to a scratch one, so each open starts alike.
fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name != "LOCK" {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

async fn open_once(
    build: &dyn Fn() -> StoreBuilder,
    bare: &dyn Fn() -> StoreBuilder,
    src: &Path,
    scratch: &Path,
    how: Open,
    index: &str,
) -> Duration {
    copy_dir(src, scratch);
    if how == Open::Rebuild {
        remove_images(scratch);
    }
    let builder = if how == Open::Bare { bare() } else { build() };
    let start = Instant::now();
    let store = builder.open(scratch).await.unwrap();
    let took = start.elapsed();
    if how != Open::Bare {
        let origin = store.index_origin(index).unwrap().unwrap();
        assert_eq!(origin.restored_from_image, how == Open::Images);
    }
    store.close().await;
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn measure(
    label: &str,
    build: &dyn Fn() -> StoreBuilder,
    items: Vec<(String, Value)>,
    tail: Vec<(String, Value)>,
    index: &str,
    rounds: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("store");
    let scratch = dir.path().join("scratch");
    let n = items.len();
    let bare = || Store::builder().checkpoint_every(u64::MAX);
    {
        let store = build().open(&src).await.unwrap();
        let start = Instant::now();
        store.import(items, 1_000).await.unwrap();
        let load = start.elapsed();
        let start = Instant::now();
        store.checkpoint().await.unwrap();
        let checkpoint = start.elapsed();
        store.import(tail, 100).await.unwrap();
        store.close().await;
        println!(
            "{label}: {} items loaded in {:.2} s; checkpoint with images {:.2} s; images {:.1} MB",
            common::thousands(n as u64),
            load.as_secs_f64(),
            checkpoint.as_secs_f64(),
            image_bytes(&src) as f64 / 1e6
        );
    }
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (slot, how) in [Open::Images, Open::Rebuild, Open::Bare]
            .into_iter()
            .enumerate()
        {
            times[slot].push(open_once(build, &bare, &src, &scratch, how, index).await);
        }
    }
    let [images, rebuild, bare_t] = times.map(median);
    println!(
        "| {label} | {:.2} s | {:.2} s | {:.2} s | {:.1}x |",
        images.as_secs_f64(),
        rebuild.as_secs_f64(),
        bare_t.as_secs_f64(),
        rebuild.as_secs_f64() / images.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n_docs = common::env_count("STATEMESH_BENCH_DOCS", 100_000)?;
    let n_vecs = common::env_count("STATEMESH_BENCH_VECTORS", 20_000)?;
    let rounds = common::env_count("STATEMESH_BENCH_ROUNDS", 3)?.max(1);
    let mut rng = StdRng::seed_from_u64(42);
    println!("| store | open, images | open, rebuild | open, no index | rebuild / images |");
    println!("|---|---|---|---|---|");
    let all = docs(n_docs + 1_000, &mut rng);
    let (items, tail) = all.split_at(n_docs);
    let text = || {
        Store::builder()
            .checkpoint_every(u64::MAX)
            .checkpoint_bytes(u64::MAX)
            .text_index(TextIndexDef::new("docs", "docs:**").field("body"))
    };
    if n_docs > 0 {
        measure(
            &format!("text, {} docs", common::thousands(n_docs as u64)),
            &text,
            items.to_vec(),
            tail.to_vec(),
            "docs",
            rounds,
        )
        .await;
    }
    // STATEMESH_BENCH_KINDS: `exact`, `hnsw` or both (the default).
    let kinds = std::env::var("STATEMESH_BENCH_KINDS").unwrap_or_else(|_| "exact,hnsw".into());
    if n_vecs > 0 {
        let all = vectors(n_vecs + 200, &mut StdRng::seed_from_u64(7));
        let (items, tail) = all.split_at(n_vecs);
        for exact in [true, false] {
            if !kinds.contains(if exact { "exact" } else { "hnsw" }) {
                continue;
            }
            let build = move || {
                Store::builder()
                    .checkpoint_every(u64::MAX)
                    .checkpoint_bytes(u64::MAX)
                    .exact_vectors(exact)
                    .vector_index(
                        VectorIndexDef::new("vecs", "vecs:**", 128, Metric::L2).field("v"),
                    )
            };
            let label = format!(
                "vectors ({}), {} x 128",
                if exact { "exact" } else { "HNSW" },
                common::thousands(n_vecs as u64)
            );
            measure(
                &label,
                &build,
                items.to_vec(),
                tail.to_vec(),
                "vecs",
                rounds,
            )
            .await;
        }
    }
    Ok(())
}
