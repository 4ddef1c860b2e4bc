//! Full-text search through the engine against raw tantivy on the same documents.
//!
//! `STATEMESH_BENCH_DOCS` documents (default 100,000) of ~50 words drawn from a Zipfian
//! vocabulary of 20,000 words; 2,000 one- and two-word queries. Both sides use the same analyzer
//! (English stemming and stop words) and return the top 10. Raw tantivy indexes with its normal
//! threaded `IndexWriter` and searches with `TopDocs`; the engine indexes through `put` and
//! maps hits back to keys. Prints a table with the p50 ratio (target <= 1.15x).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statemesh_core::search::TextIndexDef;
use statemesh_core::{Engine, EngineConfig, Language, Timestamp, Value};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, TantivyDocument};

const VOCABULARY: usize = 20_000;
const QUERIES: usize = 2_000;

struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut total = 0.0;
        let cdf = (1..=n)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect::<Vec<_>>();
        Zipf {
            cdf: cdf.into_iter().map(|c| c / total).collect(),
        }
    }
    fn sample(&self, rng: &mut StdRng) -> usize {
        let x: f64 = rng.random();
        self.cdf.partition_point(|c| *c < x).min(self.cdf.len() - 1)
    }
}

/// Synthetic words: a few real stop words among the most frequent, then letter strings.
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).unwrap())
        .filter(Stemmer::new(Language::English))
        .build()
}

fn main() {
    let n: usize = std::env::var("STATEMESH_BENCH_DOCS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let zipf = Zipf::new(VOCABULARY);
    let mut rng = StdRng::seed_from_u64(42);
    let docs: Vec<String> = (0..n)
        .map(|_| {
            let len = 40 + rng.random_range(0..20);
            (0..len)
                .map(|_| word(zipf.sample(&mut rng)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let queries: Vec<String> = (0..QUERIES)
        .map(|i| {
            // Skip the stop words: ranks 5.. ; every other query has two terms.
            let a = word(5 + zipf.sample(&mut rng) % (VOCABULARY - 5));
            if i.is_multiple_of(2) {
                a
            } else {
                format!("{a} {}", word(5 + zipf.sample(&mut rng) % (VOCABULARY - 5)))
            }
        })
        .collect();

    // ---- raw tantivy ----
    let mut builder = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("bench")
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = builder.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(indexing),
    );
    let index = Index::create_in_ram(builder.build());
    index.tokenizers().register("bench", analyzer());
    let start = Instant::now();
    let mut writer = index.writer::<TantivyDocument>(200 << 20).unwrap();
    for d in &docs {
        let mut doc = TantivyDocument::default();
        doc.add_text(text, d);
        writer.add_document(doc).unwrap();
    }
    writer.commit().unwrap();
    let raw_index_time = start.elapsed();
    let reader = index.reader().unwrap();
    reader.reload().unwrap();
    let searcher = reader.searcher();
    let parser = QueryParser::for_index(&index, vec![text]);

    // ---- the engine ----
    let mut engine = Engine::new(EngineConfig::default()).unwrap();
    engine.set_capture_log(false);
    engine.set_capture_events(false);
    engine
        .declare_text_index(TextIndexDef::new("docs", "docs:**"))
        .unwrap();
    let now = Timestamp(1);
    let start = Instant::now();
    for (i, d) in docs.iter().enumerate() {
        engine
            .put(now, &format!("docs:d{i:07}"), &Value::String(d.clone()))
            .unwrap();
    }
    engine.flush_search().unwrap();
    let ours_index_time = start.elapsed();
    // Queries alternate between the two sides, so load from other processes hits both alike.
    let (mut raw, mut ours) = (Vec::with_capacity(QUERIES), Vec::with_capacity(QUERIES));
    let (mut raw_hits, mut ours_hits) = (0usize, 0usize);
    for q in &queries {
        let t = Instant::now();
        let query = parser.parse_query(q).unwrap();
        let top = searcher
            .search(&query, &TopDocs::with_limit(10).order_by_score())
            .unwrap();
        raw.push(t.elapsed());
        raw_hits += top.len();
        let t = Instant::now();
        let hits = engine.search_text(now, "docs", q, None, 10).unwrap();
        ours.push(t.elapsed());
        ours_hits += hits.len();
    }
    assert_eq!(
        raw_hits, ours_hits,
        "both sides must find the same number of hits"
    );

    // What an open does: declare the index over keys already held, then build the segments.
    assert!(engine.drop_index("docs"));
    let start = Instant::now();
    engine
        .declare_text_index(TextIndexDef::new("docs", "docs:**"))
        .unwrap();
    engine.flush_search().unwrap();
    let rebuild = start.elapsed();

    raw.sort();
    ours.sort();
    let rate = |t: Duration| n as f64 / t.as_secs_f64();
    println!("full-text search, {n} Zipfian docs (~50 words), {QUERIES} queries, top 10");
    println!("| | engine (put + flush) | raw tantivy (IndexWriter) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| indexing docs/s | {:.0} | {:.0} | {:.2}x |",
        rate(ours_index_time),
        rate(raw_index_time),
        rate(ours_index_time) / rate(raw_index_time)
    );
    println!(
        "| rebuild on open (declare over {n} held keys) | {:.0} ms | | |",
        rebuild.as_secs_f64() * 1e3
    );
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (a, b) = (percentile(&ours, p), percentile(&raw, p));
        println!(
            "| query {name} | {:.1} µs | {:.1} µs | {:.2}x |",
            a.as_secs_f64() * 1e6,
            b.as_secs_f64() * 1e6,
            a.as_secs_f64() / b.as_secs_f64()
        );
    }
}
