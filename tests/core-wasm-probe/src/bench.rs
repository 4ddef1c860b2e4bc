//! The search workloads of issue 5 at 10k items, as exports a host times from outside: Node
//! calls them on the wasm32 build (`bench.mjs`) and the `search-bench` binary calls the very same
//! functions natively, so both targets run the same code on the same generated data. The module
//! still imports nothing: the clock is the caller's.
//!
//! Text: documents of ~50 words from a Zipfian vocabulary of 20,000 synthetic words, one- and
//! two-word queries, top 10. Vectors: clustered Gaussian vectors, cosine, exact index (the only
//! one on wasm32), top 10.

use std::cell::RefCell;

use statemesh_core::search::{TextIndexDef, VectorIndexDef};
use statemesh_core::{Engine, EngineConfig, Metric, Timestamp, Value};

const T: Timestamp = Timestamp(1_700_000_000_000);
const VOCABULARY: usize = 20_000;
const WORDS_PER_DOC: usize = 50;
const CLUSTERS: usize = 32;
/// Queries prepared per workload; callers cycle through them.
pub const QUERIES: u32 = 1_000;

#[derive(Default)]
struct State {
    engine: Option<Engine>,
    docs: Vec<String>,
    text_queries: Vec<String>,
    vectors: Vec<Vec<f32>>,
    vector_queries: Vec<Vec<f32>>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// xorshift64*: small, the same on every target.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}

fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut total = 0.0;
    let mut cdf: Vec<f64> = (1..=n)
        .map(|rank| {
            total += 1.0 / rank as f64;
            total
        })
        .collect();
    for c in &mut cdf {
        *c /= total;
    }
    cdf
}

/// Synthetic words: a few real stop words among the most frequent, then letter strings.
fn word(rank: usize) -> String {
    const STOP: [&str; 5] = ["the", "and", "of", "to", "a"];
    if let Some(w) = STOP.get(rank) {
        return (*w).to_owned();
    }
    let mut s = String::new();
    let mut n = rank;
    loop {
        s.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            break;
        }
    }
    s.push_str("ing");
    s
}

/// Generates `n` documents and the queries, and a fresh engine with a text index (not timed).
#[unsafe(no_mangle)]
pub extern "C" fn bench_text_generate(n: u32) -> u32 {
    let mut rng = Rng(0x5EED_0001);
    let cdf = zipf_cdf(VOCABULARY);
    let words: Vec<String> = (0..VOCABULARY).map(word).collect();
    let pick = |rng: &mut Rng| {
        let x = rng.unit();
        &words[cdf.partition_point(|c| *c < x).min(VOCABULARY - 1)]
    };
    let docs = (0..n)
        .map(|_| {
            let mut doc = String::new();
            for i in 0..WORDS_PER_DOC {
                if i > 0 {
                    doc.push(' ');
                }
                doc.push_str(pick(&mut rng));
            }
            doc
        })
        .collect();
    let queries = (0..QUERIES)
        .map(|q| {
            if q % 2 == 0 {
                pick(&mut rng).clone()
            } else {
                format!("{} {}", pick(&mut rng), pick(&mut rng))
            }
        })
        .collect();
    let engine = Engine::new(EngineConfig::default()).ok().and_then(|mut e| {
        e.declare_text_index(TextIndexDef::new("text", "docs:**"))
            .ok()?;
        Some(e)
    });
    STATE.with_borrow_mut(|s| {
        s.engine = engine;
        s.docs = docs;
        s.text_queries = queries;
    });
    n
}

/// Puts every generated document and builds the index's segment (timed: indexing).
#[unsafe(no_mangle)]
pub extern "C" fn bench_text_index() -> u32 {
    STATE.with_borrow_mut(|s| {
        let State { engine, docs, .. } = s;
        let Some(engine) = engine else { return 0 };
        let mut done = 0;
        for (i, doc) in docs.drain(..).enumerate() {
            if engine
                .put(T, &format!("docs:d{i:07}"), &Value::String(doc))
                .is_ok()
            {
                done += 1;
            }
        }
        // The first search after writes builds the segment: make that part of indexing.
        match engine.flush_search() {
            Ok(()) => done,
            Err(_) => 0,
        }
    })
}

/// Runs text query `q` (cycling); returns its number of hits (timed: one query).
#[unsafe(no_mangle)]
pub extern "C" fn bench_text_query(q: u32) -> u32 {
    STATE.with_borrow(|s| {
        let (Some(engine), Some(query)) = (&s.engine, s.text_queries.get((q % QUERIES) as usize))
        else {
            return 0;
        };
        engine
            .search_text(T, "text", query, None, 10)
            .map_or(0, |hits| hits.len() as u32)
    })
}

/// Generates `n` clustered Gaussian vectors of `dim` dimensions and the queries, and a fresh
/// engine with an exact cosine index (not timed).
#[unsafe(no_mangle)]
pub extern "C" fn bench_vector_generate(n: u32, dim: u32) -> u32 {
    let dim = dim as usize;
    let mut rng = Rng(0x5EED_0002);
    let centers: Vec<Vec<f64>> = (0..CLUSTERS)
        .map(|_| (0..dim).map(|_| rng.normal() * 4.0).collect())
        .collect();
    let sample = |rng: &mut Rng| -> Vec<f32> {
        let center = &centers[(rng.next() % CLUSTERS as u64) as usize];
        center.iter().map(|c| (c + rng.normal()) as f32).collect()
    };
    let vectors = (0..n).map(|_| sample(&mut rng)).collect();
    let queries = (0..QUERIES).map(|_| sample(&mut rng)).collect();
    let engine = Engine::new(EngineConfig::default()).ok().and_then(|mut e| {
        e.declare_vector_index(VectorIndexDef::new("vec", "vec:**", dim, Metric::Cosine))
            .ok()?;
        Some(e)
    });
    STATE.with_borrow_mut(|s| {
        s.engine = engine;
        s.vectors = vectors;
        s.vector_queries = queries;
    });
    n
}

/// Adds every generated vector (timed: indexing).
#[unsafe(no_mangle)]
pub extern "C" fn bench_vector_index() -> u32 {
    STATE.with_borrow_mut(|s| {
        let State {
            engine, vectors, ..
        } = s;
        let Some(engine) = engine else { return 0 };
        let mut done = 0;
        for (i, v) in vectors.drain(..).enumerate() {
            if engine
                .add_vector(T, "vec", &format!("vec:v{i:07}"), &v)
                .is_ok()
            {
                done += 1;
            }
        }
        done
    })
}

/// Runs vector query `q` (cycling), top 10; returns its number of hits (timed: one query).
#[unsafe(no_mangle)]
pub extern "C" fn bench_vector_query(q: u32) -> u32 {
    STATE.with_borrow(|s| {
        let (Some(engine), Some(query)) = (&s.engine, s.vector_queries.get((q % QUERIES) as usize))
        else {
            return 0;
        };
        engine
            .vector_search(T, "vec", query, 10, None)
            .map_or(0, |hits| hits.len() as u32)
    })
}
