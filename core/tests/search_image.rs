//! Index images: an engine restored from a snapshot plus the images taken with it must answer
//! every search exactly like the engine they were taken from (text hits, order and scores;
//! value lookups; vector top-k), before and after further writes and deletes. Images that do
//! not match (stale, another declaration, damaged, of another kind) are ignored and the index
//! is rebuilt.
#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use serde_json::json;
use statemesh_core::search::{TextIndexDef, ValueIndexDef, VectorIndexDef};
use statemesh_core::{
    Engine, EngineConfig, ImageError, IndexImage, Metric, PutOptions, Timestamp, Value,
};

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
    Search(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..40, prop::collection::vec(0u8..6, 1..5), 0u8..3, any::<(i8, i8)>(),
              prop::option::of(1u16..400))
            .prop_map(|(key, words, tag, v, ttl)| Op::Put { key, words, tag, v, ttl }),
        2 => (0u8..40).prop_map(Op::Delete),
        1 => (0u16..100).prop_map(Op::Advance),
        // A search flushes pending text writes into a segment: images then span several.
        1 => (0u8..6).prop_map(Op::Search),
    ]
}

fn declare(engine: &mut Engine) {
    engine
        .declare_text_index(TextIndexDef::new("text", "m:**").field("text"))
        .unwrap();
    engine
        .declare_value_index(ValueIndexDef::new("tag", "m:**").field("tag"))
        .unwrap();
    engine
        .declare_vector_index(VectorIndexDef::new("vec", "m:**", 2, Metric::L2).field("v"))
        .unwrap();
}

fn apply(engine: &mut Engine, now: &mut u64, op: &Op) {
    let t = Timestamp(*now);
    match op {
        Op::Put {
            key,
            words,
            tag,
            v,
            ttl,
        } => {
            let text: Vec<&str> = words.iter().map(|w| WORDS[*w as usize]).collect();
            let value = Value::Json(json!({
                "text": text.join(" "), "tag": tag, "v": [f32::from(v.0), f32::from(v.1)]
            }));
            let opts = match ttl {
                Some(ms) => PutOptions::default().ttl_ms(u64::from(*ms)),
                None => PutOptions::default(),
            };
            engine
                .put_with(t, &format!("m:k{key}"), &value, &opts)
                .unwrap();
        }
        Op::Delete(key) => {
            engine.delete(t, &format!("m:k{key}")).unwrap();
        }
        Op::Advance(ms) => *now += u64::from(*ms),
        Op::Search(w) => {
            engine
                .search_text(t, "text", WORDS[*w as usize], None, 10)
                .unwrap();
        }
    }
}

/// Every search answer of the engine at `now`, scores to the bit.
fn answers(engine: &Engine, now: u64) -> Vec<String> {
    let t = Timestamp(now);
    let mut out = Vec::new();
    for word in WORDS {
        for query in [word.to_owned(), format!("{word} OR apple")] {
            let hits = engine.search_text(t, "text", &query, None, 50).unwrap();
            out.push(format!(
                "{query}: {:?}",
                hits.iter()
                    .map(|h| (h.key.clone(), h.score.to_bits()))
                    .collect::<Vec<_>>()
            ));
        }
    }
    for tag in 0..3 {
        let keys = engine
            .search_by_value(t, "tag", Some("tag"), &json!(tag), None)
            .unwrap();
        out.push(format!("tag {tag}: {keys:?}"));
    }
    for q in [[0.0f32, 0.0], [50.0, -20.0], [-128.0, 127.0]] {
        let hits = engine.vector_search(t, "vec", &q, 7, None).unwrap();
        out.push(format!(
            "vec {q:?}: {:?}",
            hits.iter()
                .map(|h| (h.key.clone(), h.distance.to_bits()))
                .collect::<Vec<_>>()
        ));
    }
    out
}

/// A restored engine: the snapshot, the offered images, the declarations.
fn reopen(snapshot: &[u8], images: Vec<IndexImage>) -> Engine {
    let mut engine = Engine::restore(EngineConfig::default(), snapshot).unwrap();
    engine.offer_index_images(images);
    declare(&mut engine);
    engine.clear_offered_images();
    engine
}

fn restored(engine: &Engine) -> Vec<bool> {
    ["text", "tag", "vec"]
        .iter()
        .map(|n| engine.index_origin(n).unwrap().restored_from_image)
        .collect()
}

proptest! {
    #![proptest_config(common::cases(48))]

    #[test]
    fn an_image_round_trip_preserves_every_search(
        before in prop::collection::vec(op(), 1..80),
        after in prop::collection::vec(op(), 0..40),
    ) {
        let mut a = Engine::new(EngineConfig::default()).unwrap();
        declare(&mut a);
        let mut now = 1_000u64;
        for op in &before {
            apply(&mut a, &mut now, op);
        }
        let images = a.index_images().unwrap();
        prop_assert_eq!(images.len(), 3);
        let mut b = reopen(&a.snapshot().unwrap(), images);
        prop_assert_eq!(restored(&b), vec![true, true, true]);
        prop_assert!(b.take_image_rejections().is_empty());
        prop_assert_eq!(b.index_origin("text").unwrap().backfilled, 0);
        prop_assert_eq!(answers(&a, now), answers(&b, now));
        for name in ["text", "tag", "vec"] {
            prop_assert_eq!(a.index_stats(name), b.index_stats(name));
        }
        // Writes and deletes after the load reach the loaded indexes the same way.
        let mut now_b = now;
        for op in &after {
            apply(&mut a, &mut now, op);
            apply(&mut b, &mut now_b, op);
        }
        prop_assert_eq!(answers(&a, now), answers(&b, now));
        // And an image of the loaded index is again a faithful one.
        let mut c = reopen(&b.snapshot().unwrap(), b.index_images().unwrap());
        prop_assert_eq!(restored(&c), vec![true, true, true]);
        prop_assert_eq!(answers(&b, now), answers(&c, now));
        apply(&mut c, &mut now_b, &Op::Delete(0));
        apply(&mut b, &mut now, &Op::Delete(0));
        prop_assert_eq!(answers(&b, now), answers(&c, now));
    }
}

fn sample() -> (Engine, u64) {
    let mut e = Engine::new(EngineConfig::default()).unwrap();
    declare(&mut e);
    let mut now = 1_000;
    for i in 0..60u8 {
        let op = Op::Put {
            key: i % 40,
            words: vec![i % 6, (i / 6) % 6],
            tag: i % 3,
            v: (i as i8, -(i as i8)),
            ttl: None,
        };
        apply(&mut e, &mut now, &op);
        if i % 17 == 0 {
            apply(&mut e, &mut now, &Op::Search(0));
        }
    }
    apply(&mut e, &mut now, &Op::Delete(3));
    (e, now)
}

fn rejections(engine: &mut Engine) -> Vec<(String, ImageError)> {
    let mut r = engine.take_image_rejections();
    r.sort_by(|a, b| a.0.cmp(&b.0));
    r
}

#[test]
fn mismatched_or_damaged_images_are_ignored_and_the_index_rebuilt() {
    let (mut a, now) = sample();
    let snapshot = a.snapshot().unwrap();
    let images = a.index_images().unwrap();
    // A rebuilt text index has one segment where `a`'s had several (and deletes), so BM25
    // statistics, and scores, differ from `a`'s: the reference is a rebuild without images.
    let expected = answers(&reopen(&snapshot, Vec::new()), now);
    assert_eq!(
        answers(&reopen(&snapshot, images.clone()), now),
        answers(&a, now)
    );

    // Damage: a flipped byte anywhere, or a truncation, is caught.
    let text = images.iter().find(|i| i.name == "text").unwrap().clone();
    for at in [0, 1, 5, text.bytes.len() / 2, text.bytes.len() - 1] {
        let mut bad = text.clone();
        bad.bytes[at] ^= 0x40;
        let mut b = reopen(&snapshot, vec![bad]);
        assert_eq!(restored(&b), vec![false, false, false], "flip at {at}");
        assert_eq!(rejections(&mut b).len(), 1, "flip at {at}");
        assert_eq!(answers(&b, now), expected, "flip at {at}");
    }
    for len in [0, 1, 10, text.bytes.len() / 3, text.bytes.len() - 1] {
        let mut bad = text.clone();
        bad.bytes.truncate(len);
        let mut b = reopen(&snapshot, vec![bad]);
        assert!(!restored(&b)[0], "truncated to {len}");
        assert_eq!(rejections(&mut b).len(), 1);
        assert_eq!(answers(&b, now), expected);
    }

    // Stale: images from an earlier revision than the snapshot restored.
    let old_images = a.index_images().unwrap();
    apply(&mut a, &mut now.clone(), &Op::Delete(7));
    let newer = a.snapshot().unwrap();
    let expected_newer = answers(&reopen(&newer, Vec::new()), now);
    let mut b = reopen(&newer, old_images);
    assert_eq!(restored(&b), vec![false, false, false]);
    let r = rejections(&mut b);
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|(_, e)| matches!(e, ImageError::Stale { .. })));
    assert_eq!(answers(&b, now), expected_newer);

    // A changed declaration (another field, another dimension) and an image of another kind.
    let mut b = Engine::restore(EngineConfig::default(), &snapshot).unwrap();
    let mut swapped = images.clone();
    for image in &mut swapped {
        if image.name == "vec" {
            image.name = "tag".into();
        } else if image.name == "tag" {
            image.name = "vec".into();
        }
    }
    b.offer_index_images(swapped);
    b.declare_text_index(
        TextIndexDef::new("text", "m:**")
            .field("text")
            .field("title"),
    )
    .unwrap();
    b.declare_value_index(ValueIndexDef::new("tag", "m:**").field("tag"))
        .unwrap();
    b.declare_vector_index(VectorIndexDef::new("vec", "m:**", 2, Metric::L2).field("v"))
        .unwrap();
    let r = rejections(&mut b);
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(
        r[0].1,
        ImageError::KindMismatch {
            expected: "value",
            found: "vector"
        }
    );
    assert_eq!(r[1].1, ImageError::DeclarationChanged);
    assert_eq!(
        r[2].1,
        ImageError::KindMismatch {
            expected: "vector",
            found: "value"
        }
    );
    assert_eq!(restored(&b), vec![false, false, false]);
    assert!(b.index_origin("text").unwrap().backfilled > 0);
    assert_eq!(answers(&b, now), expected);

    // Unknown format version.
    let mut bad = text.clone();
    bad.bytes[0] = 99;
    let mut b = reopen(&snapshot, vec![bad]);
    assert_eq!(rejections(&mut b)[0].1, ImageError::UnknownVersion(99));
}

#[test]
fn keys_expired_in_the_image_are_not_returned_after_a_restore() {
    let mut a = Engine::new(EngineConfig::default()).unwrap();
    declare(&mut a);
    let mut now = 1_000;
    let put = |key, ttl| Op::Put {
        key,
        words: vec![0],
        tag: 1,
        v: (1, 1),
        ttl,
    };
    apply(&mut a, &mut now, &put(1, Some(50)));
    apply(&mut a, &mut now, &put(2, None));
    let mut b = reopen(&a.snapshot().unwrap(), a.index_images().unwrap());
    assert_eq!(restored(&b), vec![true, true, true]);
    let later = Timestamp(now + 100);
    let keys = |e: &Engine| -> Vec<String> {
        e.search_text(later, "text", "apple", None, 10)
            .unwrap()
            .into_iter()
            .map(|h| h.key)
            .collect()
    };
    assert_eq!(keys(&b), vec!["m:k2"]);
    b.handle_timeout(later);
    assert_eq!(keys(&b), vec!["m:k2"]);
    assert_eq!(
        b.search_by_value(later, "tag", Some("tag"), &json!(1), None)
            .unwrap(),
        vec!["m:k2"]
    );
}
