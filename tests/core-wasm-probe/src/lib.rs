//! A fixed workload over statemesh-core, built both natively and for wasm32-unknown-unknown.
//!
//! tests/run builds this crate to wasm, checks that the module imports nothing from its host
//! (core does no IO and reads no clock), runs [`probe`] under Node and compares the result with
//! the native run: the same inputs must give the same snapshot bytes on both targets.

use statemesh_core::search::{TextIndexDef, ValueIndexDef, VectorIndexDef};
use statemesh_core::{Engine, EngineConfig, Metric, Patch, PutOptions, Timestamp, Value};

pub mod bench;
mod rng;

/// Runs the workload and returns XXH3-64 of the final snapshot and every log record, or 0 when
/// an operation fails (which the comparison then reports).
#[unsafe(no_mangle)]
pub extern "C" fn probe() -> u64 {
    workload().unwrap_or(0)
}

fn workload() -> Option<u64> {
    let mut engine = Engine::new(EngineConfig::default()).ok()?;
    declare_indexes(&mut engine)?;
    let mut digest = Vec::new();
    let mut records = Vec::new();
    let mut now = 1_700_000_000_000u64;
    for i in 0..2_000u64 {
        now += i % 7;
        let key = format!("ns{}:user.{}.item{}", i % 3, i % 50, i % 17);
        let t = Timestamp(now);
        match i % 9 {
            0 => drop(engine.delete(t, &key).ok()?),
            1 => drop(
                engine
                    .put_with(
                        t,
                        &key,
                        &Value::Integer(i as i64),
                        &PutOptions::default().ttl_ms(500),
                    )
                    .ok()?,
            ),
            2 => drop(
                engine
                    .increment(t, &format!("ns0:counter.{}", i % 5), 3)
                    .ok()?,
            ),
            3 => drop(
                engine
                    .append(t, &format!("ns1:log.{}", i % 4), &Value::from("line;"))
                    .ok()?,
            ),
            4 => drop(
                engine
                    .put(t, &key, &Value::Json(serde_json_value(i)))
                    .ok()?,
            ),
            5 if i % 2 == 0 => drop(engine.delete_pattern(t, "ns2:user.1*.**").ok()?),
            // Patches of a JSON document: a patch logged in place of the value must replay to
            // the same bytes on both targets.
            5 => {
                let doc = format!("ns0:doc.{}", i % 6);
                let mut patch = serde_json::Map::new();
                patch.insert(format!("f{}", i % 11), serde_json::Value::from(i));
                patch.insert(
                    "pad".into(),
                    serde_json::Value::from("x".repeat((i % 40) as usize)),
                );
                engine.patch(t, &doc, &Patch::merge(patch.into())).ok()?;
                let ops = serde_json::json!([{"op": "add", "path": "/seen", "value": i}]);
                engine.patch(t, &doc, &Patch::json(ops).ok()?).ok()?;
            }
            6 => drop(engine.handle_timeout(t)),
            _ => drop(engine.put(t, &key, &Value::Float(i as f64 / 3.0)).ok()?),
        }
        while let Some(record) = engine.poll_log() {
            let bytes = record.encode().ok()?;
            digest.extend_from_slice(&bytes);
            records.push(bytes);
        }
        while engine.poll_event().is_some() {}
        // Searches in the middle of the writes: each one flushes a segment of its own, so the
        // merge and delete paths of the text index run too.
        if i.is_multiple_of(97) {
            search_digest(&engine, Timestamp(now), &mut digest)?;
        }
    }
    search_digest(&engine, Timestamp(now), &mut digest)?;
    // Replaying the log from scratch must rebuild the same state (patch records included).
    let mut replayed = Engine::new(EngineConfig::default()).ok()?;
    for record in &records {
        replayed.replay_bytes(record).ok()?;
    }
    let snapshot = engine.snapshot().ok()?;
    if replayed.snapshot().ok()? != snapshot {
        return None;
    }
    digest.extend_from_slice(&snapshot);
    Some(statemesh_core::value::checksum(&digest))
}

/// Indexes over the workload's keys: text over JSON documents and strings, exact values,
/// and an exact vector index over the JSON arrays the workload writes.
fn declare_indexes(engine: &mut Engine) -> Option<()> {
    engine
        .declare_text_index(TextIndexDef::new("text", "ns*:**").field("pad").field("f3"))
        .ok()?;
    engine
        .declare_value_index(ValueIndexDef::new("seen", "ns0:doc.*").field("seen"))
        .ok()?;
    engine
        .declare_vector_index(VectorIndexDef::new("vec", "ns*:user.**", 3, Metric::L2))
        .ok()?;
    Some(())
}

/// Appends every hit (key, and score or distance to 4 decimals) of a few searches.
fn search_digest(engine: &Engine, now: Timestamp, digest: &mut Vec<u8>) -> Option<()> {
    for query in ["xxxx", "xxxxxxxxxx OR xxx", "f3:*"] {
        let Ok(hits) = engine.search_text(now, "text", query, None, 20) else {
            // "f3:*" is not valid in tantivy's grammar: the error must be the same everywhere.
            digest.extend_from_slice(b"malformed");
            continue;
        };
        for hit in hits {
            digest.extend_from_slice(format!("{}={:.4};", hit.key, hit.score).as_bytes());
        }
    }
    for hit in engine
        .vector_search(now, "vec", &[100.0, 200.0, 300.0], 10, Some("ns1:**"))
        .ok()?
    {
        digest.extend_from_slice(format!("{}@{:.4};", hit.key, hit.distance).as_bytes());
    }
    for key in engine
        .search_by_value(now, "seen", Some("seen"), &serde_json::json!(1985), None)
        .ok()?
    {
        digest.extend_from_slice(key.as_bytes());
    }
    Some(())
}

fn serde_json_value(i: u64) -> statemesh_core::value::JsonValue {
    statemesh_core::value::JsonValue::from(vec![i, i * 2, i * 3])
}
