//! Vector search through the engine (HNSW adapter) against raw hnsw_rs with the same M and ef.
//!
//! `STATEMESH_BENCH_VECTORS` vectors (default 100,000) of 128 dimensions from 100 Gaussian
//! clusters, 1,000 queries from the same clusters, top 10, L2. Both graphs are built by serial
//! inserts with M 16 and ef_construction 200, and searched with the same ef, at 64, 128 and
//! 256. Recall is against the exact index. Then 10% of the keys are deleted and 10% get new
//! vectors, and recall and QPS are measured again (tombstones hidden by the filter until a
//! rebuild). Prints a table.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use hnsw_rs::anndists::dist::DistL2;
use hnsw_rs::hnsw::Hnsw;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statemesh_core::search::{ExactVectorIndex, VectorIndex, VectorIndexDef, VectorSpec};
use statemesh_core::{Engine, EngineConfig, Metric, Timestamp};
use statemesh_hnsw::{HnswIndex, HnswParams};

const DIM: usize = 128;
const QUERIES: usize = 1_000;
const K: usize = 10;
/// Search breadths measured, the same for both sides.
const EFS: [usize; 3] = [64, 128, 256];

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box-Muller.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

fn clustered(n: usize, centres: &[Vec<f32>], rng: &mut StdRng) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            c.iter().map(|x| x + gaussian(rng)).collect()
        })
        .collect()
}

fn recall(truth: &[Vec<u64>], got: &[Vec<u64>]) -> f64 {
    let found: usize = truth
        .iter()
        .zip(got)
        .map(|(t, g)| g.iter().filter(|id| t.contains(id)).count())
        .sum();
    found as f64 / (truth.len() * K) as f64
}

fn main() {
    let n: usize = std::env::var("STATEMESH_BENCH_VECTORS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut rng = StdRng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..100)
        .map(|_| (0..DIM).map(|_| gaussian(&mut rng) * 4.0).collect())
        .collect();
    let data = clustered(n, &centres, &mut rng);
    let queries = clustered(QUERIES, &centres, &mut rng);
    let spec = VectorSpec {
        dimension: DIM,
        metric: Metric::L2,
    };
    let params = HnswParams::default();

    // Ground truth.
    let mut exact = ExactVectorIndex::new(spec);
    for (i, v) in data.iter().enumerate() {
        exact.insert(i as u64, v);
    }
    let truth: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| exact.search(q, K, None).iter().map(|n| n.id).collect())
        .collect();

    // Raw hnsw_rs, serial inserts.
    let start = Instant::now();
    let raw: Hnsw<'static, f32, DistL2> =
        Hnsw::new(params.m, n, 16, params.ef_construction, DistL2 {});
    for (i, v) in data.iter().enumerate() {
        raw.insert_slice((v, i));
    }
    let raw_build = start.elapsed();

    // The engine with the HNSW adapter, keys as `vec:<i>`.
    let mut engine = Engine::new(EngineConfig::default()).unwrap();
    engine.set_capture_log(false);
    engine.set_capture_events(false);
    let def = VectorIndexDef::new("v", "vec:**", DIM, Metric::L2);
    engine
        .declare_vector_index_with(def, Box::new(HnswIndex::new(spec, params).unwrap()))
        .unwrap();
    let now = Timestamp(1);
    let start = Instant::now();
    for (i, v) in data.iter().enumerate() {
        engine.add_vector(now, "v", &format!("vec:{i}"), v).unwrap();
    }
    let ours_build = start.elapsed();
    let key_id = |key: &str| key[4..].parse::<u64>().unwrap();

    println!(
        "vectors: {n} x {DIM} clustered Gaussian, {QUERIES} queries, top {K}, L2, M {}, ef_construction {}",
        params.m, params.ef_construction
    );
    println!(
        "build (serial): engine {:.1} s, raw hnsw_rs {:.1} s",
        ours_build.as_secs_f64(),
        raw_build.as_secs_f64()
    );
    println!("| ef | engine recall@10 | engine QPS | raw recall@10 | raw QPS | QPS ratio |");
    println!("|---|---|---|---|---|---|");
    let measure_ours = |engine: &Engine| {
        let start = Instant::now();
        let got: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| {
                engine
                    .vector_search(now, "v", q, K, None)
                    .unwrap()
                    .iter()
                    .map(|h| key_id(&h.key))
                    .collect()
            })
            .collect();
        (got, QUERIES as f64 / start.elapsed().as_secs_f64())
    };
    // Queries alternate between the two sides, so load from other processes hits both alike.
    for ef in EFS {
        engine.set_vector_search_effort("v", ef).unwrap();
        let (mut raw_time, mut ours_time) = (Duration::ZERO, Duration::ZERO);
        let (mut raw_got, mut got) = (Vec::new(), Vec::new());
        for q in &queries {
            let t = Instant::now();
            let r: Vec<u64> = raw.search(q, K, ef).iter().map(|n| n.d_id as u64).collect();
            raw_time += t.elapsed();
            let t = Instant::now();
            let o: Vec<u64> = engine
                .vector_search(now, "v", q, K, None)
                .unwrap()
                .iter()
                .map(|h| key_id(&h.key))
                .collect();
            ours_time += t.elapsed();
            raw_got.push(r);
            got.push(o);
        }
        let raw_qps = QUERIES as f64 / raw_time.as_secs_f64();
        let qps = QUERIES as f64 / ours_time.as_secs_f64();
        println!(
            "| {ef} | {:.3} | {:.0} | {:.3} | {:.0} | {:.2}x |",
            recall(&truth, &got),
            qps,
            recall(&truth, &raw_got),
            raw_qps,
            qps / raw_qps
        );
    }

    // Churn: delete 10%, give another 10% new vectors.
    let fresh = clustered(n / 10, &centres, &mut rng);
    for i in (0..n).step_by(10) {
        engine.delete(now, &format!("vec:{i}")).unwrap();
        exact.remove(i as u64);
    }
    for (j, i) in (5..n).step_by(10).enumerate() {
        if let Some(v) = fresh.get(j) {
            engine.add_vector(now, "v", &format!("vec:{i}"), v).unwrap();
            exact.insert(i as u64, v);
        }
    }
    let truth: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| exact.search(q, K, None).iter().map(|n| n.id).collect())
        .collect();
    for ef in EFS {
        engine.set_vector_search_effort("v", ef).unwrap();
        let (got, qps) = measure_ours(&engine);
        println!(
            "after deleting 10% and updating 10%: engine recall@10 {:.3}, {:.0} QPS (ef {ef}, tombstones filtered)",
            recall(&truth, &got),
            qps,
        );
    }
}
