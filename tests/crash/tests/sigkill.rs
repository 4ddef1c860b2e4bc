//! Crash safety, proven with real processes: a child writes under load through a CP store and
//! is SIGKILLed at a random moment; the store is reopened and must hold every acknowledged
//! write, and nothing beyond the writes that were in flight. 100 cycles by default on one data
//! directory (so recovery of recovered state, torn tails and checkpoints are all exercised);
//! `STATEMESH_CRASH_CYCLES=2000` for a long run. The store has a value index over every value
//! (with index images at every checkpoint): after every kill, lookups must find exactly the
//! keys present, whether the index was loaded from an image or rebuilt.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use statemesh::{Store, Value, ValueIndexDef};

const WRITERS: u32 = 4;

#[test]
fn acknowledged_writes_survive_sigkill() {
    let cycles: u32 = std::env::var("STATEMESH_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("STATEMESH_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = std::env::temp_dir().join(format!("statemesh-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Everything ever acknowledged, per writer: must never go backwards.
    let mut acked: BTreeMap<u32, i64> = BTreeMap::new();
    let mut total_acks = 0u64;
    let mut restored = 0u32;
    for cycle in 0..cycles {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-child"))
            .arg(&dir)
            .arg(WRITERS.to_string())
            .arg("100")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it write for a random while (after its first ack, so a cycle is never empty).
        let first = rx.recv_timeout(Duration::from_secs(30));
        assert!(
            first.is_ok(),
            "cycle {cycle}: child produced no ack; stderr: {}",
            stderr_of(&mut child)
        );
        let mut lines = vec![first.unwrap()];
        let deadline = Instant::now() + Duration::from_millis(rng.random_range(1..40));
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(1)) {
                lines.push(line);
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        for line in &lines {
            let mut parts = line.split_whitespace().skip(1);
            let t: u32 = parts.next().unwrap().parse().unwrap();
            let i: i64 = parts.next().unwrap().parse().unwrap();
            let slot = acked.entry(t).or_insert(-1);
            assert!(i > *slot, "acks go forward");
            *slot = i;
            total_acks += 1;
        }
        runtime.block_on(async {
            let store = Store::builder()
                .value_index(ValueIndexDef::new("by_value", "w*:**"))
                .open(&dir)
                .await
                .unwrap_or_else(|e| panic!("cycle {cycle}: reopen failed: {e}"));
            for t in 0..WRITERS {
                let keys = store.keys(&format!("w{t}:*")).await.unwrap();
                let present = keys.len() as i64;
                let acked_t = acked.get(&t).copied().unwrap_or(-1);
                // Every acknowledged write is there...
                assert!(
                    present > acked_t,
                    "cycle {cycle}: writer {t} acked up to {acked_t}, store has {present}"
                );
                // ...and beyond them at most the one write (of up to 3 keys) that was in flight.
                assert!(
                    present <= acked_t + 1 + 3,
                    "cycle {cycle}: writer {t}: {present} keys, acked {acked_t}"
                );
                // Contiguous, each holding its own index: no hole, no torn batch, no garbage.
                for (i, key) in keys.iter().enumerate() {
                    assert_eq!(key, &format!("w{t}:k{i:08}"), "cycle {cycle}");
                }
                // Spot-check values (a writer may not have written anything yet).
                for i in [0, present / 2, present - 1]
                    .into_iter()
                    .filter(|&i| i >= 0 && i < present)
                {
                    let v = store.get(&format!("w{t}:k{i:08}")).await.unwrap();
                    assert_eq!(v, Some(Value::Integer(i)), "cycle {cycle}");
                }
                // The index holds exactly the keys present, image or not.
                for i in [0, present / 2, present - 1, present, present + 1] {
                    let found = store
                        .search_by_value(
                            "by_value",
                            None,
                            &serde_json::json!(i),
                            Some(&format!("w{t}:*")),
                        )
                        .await
                        .unwrap();
                    let expected: Vec<String> = if (0..present).contains(&i) {
                        vec![format!("w{t}:k{i:08}")]
                    } else {
                        Vec::new()
                    };
                    assert_eq!(found, expected, "cycle {cycle}: value index, writer {t}");
                }
                // A multi_put of three is atomic: the store never ends inside one.
                assert!(
                    !inside_batch(present),
                    "cycle {cycle}: writer {t} ends inside a batch at {present}"
                );
                // In-flight writes that did land count as acknowledged from now on.
                acked.insert(t, present - 1);
            }
            let origin = store.index_origin("by_value").unwrap().unwrap();
            restored += u32::from(origin.restored_from_image);
            // Now and then a checkpoint here too, so the next reopen can find a matching image
            // even when the child was killed before its own checkpoint finished.
            if cycle % 4 == 3 {
                store.checkpoint().await.unwrap();
            }
            store.close().await;
        });
    }
    // The child checkpoints every 100 records, this loop every fourth cycle: many reopens find
    // a matching image.
    assert!(
        cycles < 20 || restored > 0,
        "no reopen loaded an index image ({cycles} cycles)"
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        total_acks > u64::from(cycles),
        "the children made progress: {total_acks} acks"
    );
}

/// Whether `count` keys would end inside one of the child's three-key batches. The child writes
/// index `i` alone, or `i..i+3` in one multi_put when `i % 5 == 4` (see src/main.rs).
fn inside_batch(count: i64) -> bool {
    let mut i = 0;
    while i < count {
        i += if i % 5 == 4 { 3 } else { 1 };
    }
    i != count
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let _ = child.kill();
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
    }
    s
}
