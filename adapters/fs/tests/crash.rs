//! Simulated crashes and IO failures: a fixed workload of real engine records (appends, two
//! snapshots, more appends) runs with a power cut after every single IO, under every crash mode,
//! and with every single IO failing (once, or from then on). After the crash (or failure),
//! reopening must recover a prefix of what was appended that holds every acknowledged record,
//! byte for byte, and replaying it must rebuild exactly the reference engine's state.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;

use common::*;
use statemesh_core::{Engine, EngineConfig, LogBytes, Recovered, StorageError, Timestamp, Value};
use statemesh_fs::{CrashMode, FsOptions, FsStorage, SimDisk, SyncPolicy};

/// Records made by a real engine, and the engine's snapshot after every revision.
struct Workload {
    records: Vec<LogBytes>,
    /// `states[r]`: the reference engine's snapshot at revision `r`.
    states: Vec<Vec<u8>>,
}

fn workload() -> Workload {
    let mut engine = Engine::new(EngineConfig::default()).unwrap();
    let mut states = vec![engine.snapshot().unwrap()];
    let mut records = Vec::new();
    for i in 0..14u64 {
        let now = Timestamp::from_millis(1_000 + i);
        match i % 5 {
            0 => {
                engine
                    .put(
                        now,
                        &format!("s:user.{i}"),
                        &Value::from("x".repeat(20 + i as usize * 7)),
                    )
                    .unwrap();
            }
            1 => {
                engine
                    .multi_put(
                        now,
                        &[
                            (format!("s:a.{i}"), Value::Integer(i as i64)),
                            (format!("s:b.{i}"), Value::from("batch")),
                        ],
                    )
                    .unwrap();
            }
            2 => {
                engine.delete(now, &format!("s:user.{}", i - 2)).unwrap();
            }
            3 => {
                engine.increment(now, "s:counter", 1).unwrap();
            }
            _ => {
                engine
                    .put(now, "s:doc", &Value::from(format!("{{\"n\": {i}}}")))
                    .unwrap();
            }
        }
        let record = engine.poll_log().unwrap();
        assert!(engine.poll_log().is_none());
        records.push(LogBytes {
            revision: record.revision,
            bytes: record.encode().unwrap(),
        });
        states.push(engine.snapshot().unwrap());
    }
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.revision, i as u64 + 1);
    }
    Workload { records, states }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Append revisions `from..=to` in one call.
    Append(u64, u64),
    Snapshot(u64),
    Sync,
}

const STEPS: &[Step] = &[
    Step::Append(1, 2),
    Step::Append(3, 3),
    Step::Append(4, 6),
    Step::Snapshot(5),
    Step::Append(7, 7),
    Step::Append(8, 9),
    Step::Snapshot(9),
    Step::Append(10, 12),
    Step::Sync,
    Step::Append(13, 14),
    Step::Sync,
];

fn options(sync: SyncPolicy) -> FsOptions {
    // Small segments, so the workload rolls several times.
    FsOptions::default().segment_bytes(300).sync(sync)
}

/// What the workload was told was durable before things went wrong.
#[derive(Debug, Default)]
struct Outcome {
    /// Every revision up to this one was acknowledged durable.
    acked: u64,
    /// The newest snapshot whose `write_snapshot` returned `Ok`.
    acked_snapshot: Option<u64>,
    /// The first error, if any.
    error: Option<StorageError>,
}

fn run(disk: &SimDisk, w: &Workload, sync: SyncPolicy) -> Outcome {
    let mut out = Outcome::default();
    let Ok(mut s) = FsStorage::open_with_disk(disk.clone(), DIR, options(sync)) else {
        return out;
    };
    if let Err(e) = block_on(statemesh_core::Storage::load(&mut s)) {
        out.error = Some(e);
        assert_poisoned(&mut s, w);
        return out;
    }
    let mut appended = 0;
    for &step in STEPS {
        let result = match step {
            Step::Append(from, to) => {
                let batch = &w.records[from as usize - 1..to as usize];
                append(&mut s, batch).map(|()| {
                    appended = to;
                    if sync == SyncPolicy::Always {
                        out.acked = to;
                    }
                })
            }
            Step::Snapshot(rev) => snapshot(&mut s, rev, &w.states[rev as usize]).map(|()| {
                out.acked_snapshot = Some(rev);
                // The snapshot fsyncs the log before it rolls it.
                out.acked = out.acked.max(appended);
            }),
            Step::Sync => common::sync(&mut s).map(|()| out.acked = appended),
        };
        if let Err(e) = result {
            assert!(
                matches!(e, StorageError::Io { .. }),
                "{step:?} failed with {e}"
            );
            out.error = Some(e);
            assert_poisoned(&mut s, w);
            return out;
        }
    }
    out
}

/// After a failure, every write is refused.
fn assert_poisoned(s: &mut FsStorage<SimDisk>, w: &Workload) {
    assert!(s.is_poisoned());
    assert_eq!(append(s, &w.records[13..]), Err(StorageError::Poisoned));
    assert_eq!(common::sync(s), Err(StorageError::Poisoned));
    assert_eq!(snapshot(s, 14, &w.states[14]), Err(StorageError::Poisoned));
}

/// Reopens `disk` and checks what it recovers against the workload and the outcome.
fn verify(disk: &SimDisk, w: &Workload, out: &Outcome, sync: SyncPolicy, label: &str) {
    let (mut s, r) = FsStorage::open_with_disk(disk.clone(), DIR, options(sync))
        .and_then(|mut s| {
            let r = block_on(statemesh_core::Storage::load(&mut s))?;
            Ok((s, r))
        })
        .unwrap_or_else(|e| panic!("{label}: recovery failed: {e} ({out:?})"));
    let recovered = check_recovered(&r, w, out, label);
    // The store goes on from what it recovered, and that survives another power cut: repairs
    // were durable and new frames do not land behind garbage.
    let Some(next) = w.records.get(recovered as usize) else {
        return;
    };
    append(&mut s, std::slice::from_ref(next))
        .unwrap_or_else(|e| panic!("{label}: append after recovery: {e}"));
    common::sync(&mut s).unwrap();
    drop(s);
    let again = disk.fork();
    again.crash(CrashMode::DropUnsynced);
    let (_s, r) = FsStorage::open_with_disk(again, DIR, options(sync))
        .and_then(|mut s| {
            let r = block_on(statemesh_core::Storage::load(&mut s))?;
            Ok((s, r))
        })
        .unwrap_or_else(|e| panic!("{label}: second recovery failed: {e}"));
    assert!(r.repairs.is_empty(), "{label}: {:?}", r.repairs);
    let out = Outcome {
        acked: recovered + 1,
        acked_snapshot: out.acked_snapshot,
        error: None,
    };
    check_recovered(&r, w, &out, &format!("{label}, after one more append"));
}

/// The recovered revision, after checking the prefix property and replaying.
fn check_recovered(r: &Recovered, w: &Workload, out: &Outcome, label: &str) -> u64 {
    let snapshot_rev = match &r.snapshot {
        None => {
            assert!(
                out.acked_snapshot.is_none(),
                "{label}: acknowledged snapshot lost"
            );
            0
        }
        Some(bytes) => {
            let rev = STEPS
                .iter()
                .find_map(|s| match s {
                    Step::Snapshot(rev) if w.states[*rev as usize] == *bytes => Some(*rev),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{label}: recovered a snapshot never written"));
            assert!(
                out.acked_snapshot.is_none_or(|a| rev >= a),
                "{label}: snapshot {rev} recovered, {:?} was acknowledged",
                out.acked_snapshot
            );
            rev
        }
    };
    let mut next = snapshot_rev + 1;
    for rec in &r.records {
        if rec.revision < next {
            // Covered by the snapshot; allowed, but still exact.
            assert_eq!(
                rec.bytes,
                w.records[rec.revision as usize - 1].bytes,
                "{label}"
            );
            continue;
        }
        assert_eq!(rec.revision, next, "{label}: gap or reordering");
        assert_eq!(
            rec.bytes,
            w.records[next as usize - 1].bytes,
            "{label}: bytes differ"
        );
        next += 1;
    }
    let recovered = next - 1;
    assert!(
        recovered >= out.acked,
        "{label}: recovered up to {recovered}, {} was acknowledged ({out:?})",
        out.acked
    );

    let config = EngineConfig::default();
    let mut engine = match &r.snapshot {
        Some(bytes) => Engine::restore(config, bytes).unwrap(),
        None => Engine::new(config).unwrap(),
    };
    for rec in &r.records {
        engine.replay_bytes(&rec.bytes).unwrap();
    }
    assert_eq!(engine.revision(), recovered, "{label}");
    assert_eq!(
        engine.snapshot().unwrap(),
        w.states[recovered as usize],
        "{label}: replayed state differs from the reference engine"
    );
    recovered
}

fn total_ios(w: &Workload, sync: SyncPolicy) -> u64 {
    let disk = SimDisk::new();
    let out = run(&disk, w, sync);
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(out.acked, 14);
    let total = disk.io_count();
    // Sanity: the workload rolled segments and the final state is complete.
    disk.crash(CrashMode::DropUnsynced);
    verify(&disk, w, &out, sync, "no crash");
    total
}

fn modes(k: u64) -> [CrashMode; 7] {
    [
        CrashMode::DropUnsynced,
        CrashMode::KeepUnsynced,
        CrashMode::KeepPrefix { seed: k },
        CrashMode::Tear { seed: k },
        CrashMode::Tear { seed: k ^ 0x5eed },
        CrashMode::Reorder { seed: k },
        CrashMode::Reorder { seed: k ^ 0x5eed },
    ]
}

fn crash_at_every_io(sync: SyncPolicy) {
    let w = workload();
    let total = total_ios(&w, sync);
    assert!(total > 40, "{total} IOs");
    let mut runs = 0;
    for k in 0..=total {
        for mode in modes(k) {
            let disk = SimDisk::new();
            disk.crash_after(k);
            let out = run(&disk, &w, sync);
            disk.crash(mode);
            verify(
                &disk,
                &w,
                &out,
                sync,
                &format!("{sync:?}, crash after IO {k}, {mode:?}"),
            );
            runs += 1;
        }
    }
    assert!(runs > 200);
}

#[test]
fn crash_after_every_io_with_sync_always() {
    crash_at_every_io(SyncPolicy::Always);
}

#[test]
fn crash_after_every_io_with_sync_never() {
    crash_at_every_io(SyncPolicy::Never);
}

#[test]
fn crash_during_recovery_after_every_crash_point() {
    let w = workload();
    let sync = SyncPolicy::Always;
    let total = total_ios(&w, sync);
    for k in 0..=total {
        let disk = SimDisk::new();
        disk.crash_after(k);
        let out = run(&disk, &w, sync);
        disk.crash(CrashMode::Tear { seed: k });
        // How many IOs a recovery takes from here.
        let probe = disk.fork();
        let before = probe.io_count();
        let _ = FsStorage::open_with_disk(probe.clone(), DIR, options(sync))
            .and_then(|mut s| block_on(statemesh_core::Storage::load(&mut s)));
        let recovery = probe.io_count() - before;
        for j in 0..recovery {
            let again = disk.fork();
            again.crash_after(again.io_count() + j);
            if let Ok(mut s) = FsStorage::open_with_disk(again.clone(), DIR, options(sync)) {
                let _ = block_on(statemesh_core::Storage::load(&mut s));
            }
            for mode in [
                CrashMode::DropUnsynced,
                CrashMode::Tear { seed: j },
                CrashMode::Reorder { seed: j },
            ] {
                let d = again.fork();
                d.crash(mode);
                verify(
                    &d,
                    &w,
                    &out,
                    sync,
                    &format!("crash after IO {k}, then again after recovery IO {j}, {mode:?}"),
                );
            }
        }
    }
}

#[test]
fn every_failing_io_poisons_and_reopen_recovers() {
    let w = workload();
    for sync in [SyncPolicy::Always, SyncPolicy::Never] {
        let total = total_ios(&w, sync);
        for n in 1..=total {
            for persistent in [false, true] {
                let disk = SimDisk::new();
                disk.fail_nth_io(n, persistent);
                let out = run(&disk, &w, sync);
                let label = format!("{sync:?}, IO {n} fails, persistent: {persistent}");
                // The failure surfaced as an error (open failures have none to keep).
                if n > 3 {
                    assert!(out.error.is_some(), "{label}: no error reported");
                }
                // Reopened in the same "boot": what the system sees is recovered.
                let same_boot = disk.fork();
                same_boot.clear_faults();
                verify(&same_boot, &w, &out, sync, &format!("{label}, reopened"));
                // Or the machine went down right after the failure.
                disk.crash(CrashMode::DropUnsynced);
                verify(&disk, &w, &out, sync, &format!("{label}, crashed"));
            }
        }
    }
}

#[test]
fn the_workload_rolls_segments_and_snapshots_drop_them() {
    let w = workload();
    let disk = SimDisk::new();
    let out = run(&disk, &w, SyncPolicy::Always);
    assert!(out.error.is_none());
    let names = disk.files(Path::new(DIR));
    assert!(
        names.contains(&format!("snapshot-{:020}.snap", 9)),
        "{names:?}"
    );
    assert!(
        !names.contains(&format!("snapshot-{:020}.snap", 5)),
        "{names:?}"
    );
    let segs = segments(&disk);
    assert!(segs.len() >= 2, "{segs:?}");
    assert!(
        segs.iter()
            .all(|n| n.as_str() > "wal-00000000000000000009.log"),
        "every segment at or below the snapshot is gone: {segs:?}"
    );
}
