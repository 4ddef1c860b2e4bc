//! The native side of the wasm-vs-native search benchmark: times the probe's `bench_*` exports
//! exactly as `bench.mjs` times them under Node, and prints the figures as one JSON object.
//! Run both through `tests/core-wasm-probe/bench.sh`.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use statemesh_core_wasm_probe::bench::{self, QUERIES};

const ITEMS: u32 = 10_000;
const DIMENSION: u32 = 128;
const WARMUP: u32 = 100;

fn percentiles(mut micros: Vec<f64>) -> (f64, f64) {
    micros.sort_by(f64::total_cmp);
    let at = |p: f64| micros[((micros.len() - 1) as f64 * p) as usize];
    (at(0.50), at(0.99))
}

/// Times `index` once and `query` per call (after a warm-up); returns the JSON fields.
fn measure(index: impl FnOnce() -> u32, query: impl Fn(u32) -> u32) -> String {
    let start = Instant::now();
    let indexed = index();
    let index_s = start.elapsed().as_secs_f64();
    for q in 0..WARMUP {
        query(q);
    }
    let mut hits = 0u64;
    let micros = (0..QUERIES)
        .map(|q| {
            let t = Instant::now();
            hits += u64::from(query(q));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    let (p50, p99) = percentiles(micros);
    format!(
        "{{\"indexed\":{indexed},\"per_s\":{:.1},\"p50_us\":{p50:.2},\"p99_us\":{p99:.2},\"hits\":{hits}}}",
        f64::from(indexed) / index_s
    )
}

fn main() {
    bench::bench_text_generate(ITEMS);
    let text = measure(|| bench::bench_text_index(), |q| bench::bench_text_query(q));
    bench::bench_vector_generate(ITEMS, DIMENSION);
    let vector = measure(
        || bench::bench_vector_index(),
        |q| bench::bench_vector_query(q),
    );
    println!("{{\"text\":{text},\"vector\":{vector}}}");
}
