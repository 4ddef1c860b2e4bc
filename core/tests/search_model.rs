//! Model-based test of search: random puts, TTL puts, deletes, time and sweeps against a plain
//! map. Every search must agree with a filter over the model's live keys: text search returns
//! exactly the live keys holding the word, value search exactly those with the tag, and the
//! exact vector index the brute-force nearest distances.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use statemesh_core::search::{TextIndexDef, ValueIndexDef, VectorIndexDef};
use statemesh_core::{Engine, EngineConfig, Metric, PutOptions, Timestamp, Value};

const WORDS: [&str; 6] = ["apple", "banana", "cherry", "delta", "echo", "fox"];

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: u8,
        words: Vec<u8>,
        tag: u8,
        v: (i8, i8),
        ttl: Option<u16>,
    },
    Delete(u8),
    Advance(u16),
    Sweep,
    Check {
        word: u8,
        tag: u8,
        q: (i8, i8),
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, prop::collection::vec(0u8..6, 1..4), 0u8..3, any::<(i8, i8)>(),
              prop::option::of(1u16..200))
            .prop_map(|(key, words, tag, v, ttl)| Op::Put { key, words, tag, v, ttl }),
        2 => (0u8..12).prop_map(Op::Delete),
        1 => (0u16..150).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
        2 => (0u8..6, 0u8..3, any::<(i8, i8)>()).prop_map(|(word, tag, q)| Op::Check { word, tag, q }),
    ]
}

struct Doc {
    words: Vec<u8>,
    tag: u8,
    v: [f32; 2],
    expires: Option<u64>,
}

fn check(engine: &Engine, model: &BTreeMap<String, Doc>, now: u64, word: u8, tag: u8, q: [f32; 2]) {
    let t = Timestamp(now);
    let live: Vec<(&String, &Doc)> = model
        .iter()
        .filter(|(_, d)| d.expires.is_none_or(|e| e > now))
        .collect();
    let mut want: Vec<&str> = live
        .iter()
        .filter(|(_, d)| d.words.contains(&word))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut got: Vec<String> = engine
        .search_text(t, "text", WORDS[word as usize], None, 1000)
        .unwrap()
        .into_iter()
        .map(|h| h.key)
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "text search for {}", WORDS[word as usize]);

    let want: Vec<&str> = live
        .iter()
        .filter(|(_, d)| d.tag == tag)
        .map(|(k, _)| k.as_str())
        .collect();
    let got = engine
        .search_by_value(t, "tag", Some("tag"), &json!(tag), None)
        .unwrap();
    assert_eq!(got, want, "value search for tag {tag}");

    let metric = Metric::L2;
    let mut want: Vec<f32> = live
        .iter()
        .map(|(_, d)| metric.distance(&q, &d.v))
        .collect();
    want.sort_by(f32::total_cmp);
    want.truncate(5);
    let got = engine.vector_search(t, "vec", &q, 5, None).unwrap();
    let distances: Vec<f32> = got.iter().map(|h| h.distance).collect();
    assert_eq!(distances, want, "vector search");
    for hit in got {
        let doc = &model[&hit.key];
        assert_eq!(metric.distance(&q, &doc.v), hit.distance);
        assert!(doc.expires.is_none_or(|e| e > now));
    }
}

proptest! {
    #![proptest_config(common::cases(64))]

    #[test]
    fn searches_agree_with_a_model_of_live_keys(ops in prop::collection::vec(op(), 1..60)) {
        let mut engine = Engine::new(EngineConfig::default()).unwrap();
        engine.declare_text_index(TextIndexDef::new("text", "m:**").field("text").language(None)).unwrap();
        engine.declare_value_index(ValueIndexDef::new("tag", "m:**").field("tag")).unwrap();
        engine.declare_vector_index(VectorIndexDef::new("vec", "m:**", 2, Metric::L2).field("v")).unwrap();
        let mut model: BTreeMap<String, Doc> = BTreeMap::new();
        let mut now = 1_000u64;
        for op in ops {
            // The engine sweeps due keys before every write: so does the model.
            let sweep = |model: &mut BTreeMap<String, Doc>, now: u64| {
                model.retain(|_, d| d.expires.is_none_or(|e| e > now));
            };
            match op {
                Op::Put { key, words, tag, v, ttl } => {
                    sweep(&mut model, now);
                    let key = format!("m:k{key}");
                    let text: Vec<&str> = words.iter().map(|w| WORDS[*w as usize]).collect();
                    let v = [f32::from(v.0), f32::from(v.1)];
                    let value = Value::Json(json!({"text": text.join(" "), "tag": tag, "v": v}));
                    let opts = match ttl {
                        Some(ms) => PutOptions::default().ttl_ms(u64::from(ms)),
                        None => PutOptions::default(),
                    };
                    engine.put_with(Timestamp(now), &key, &value, &opts).unwrap();
                    let expires = ttl.map(|ms| now + u64::from(ms));
                    model.insert(key, Doc { words, tag, v, expires });
                }
                Op::Delete(key) => {
                    sweep(&mut model, now);
                    let key = format!("m:k{key}");
                    engine.delete(Timestamp(now), &key).unwrap();
                    model.remove(&key);
                }
                Op::Advance(ms) => now += u64::from(ms),
                Op::Sweep => {
                    engine.handle_timeout(Timestamp(now));
                    sweep(&mut model, now);
                }
                Op::Check { word, tag, q } => {
                    check(&engine, &model, now, word, tag, [f32::from(q.0), f32::from(q.1)]);
                }
            }
        }
        check(&engine, &model, now, 0, 0, [0.0, 0.0]);
    }
}
