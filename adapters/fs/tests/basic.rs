//! FsStorage basics: roundtrips, segment rolling, snapshots, the lock, temp files, sync
//! policies, group commit and the poisoned state.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;

use common::*;
use statemesh_core::{Storage, StorageError};
use statemesh_fs::{CrashMode, FsOptions, FsStorage, SimDisk, StdDisk, SyncPolicy};

#[test]
fn roundtrip_across_reopen_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    {
        let mut s = FsStorage::open(&dir, FsOptions::default()).unwrap();
        let r = load(&mut s);
        assert!(r.snapshot.is_none() && r.records.is_empty() && r.repairs.is_empty());
        append(&mut s, &recs(1, 3)).unwrap();
        append(&mut s, &recs(4, 4)).unwrap();
        append(&mut s, &[rec(5, b"")]).unwrap(); // empty payloads are records too
        append(&mut s, &[]).unwrap();
    }
    let (mut s, r) = reopen(&StdDisk, &dir, FsOptions::default()).unwrap();
    let mut expected = recs(1, 4);
    expected.push(rec(5, b""));
    assert_eq!(r.records, expected);
    assert!(r.repairs.is_empty());
    // Appends continue in the same segment after a reopen.
    append(&mut s, &recs(6, 8)).unwrap();
    snapshot(&mut s, 7, b"snapshot at 7").unwrap();
    s.close().unwrap();
    let (_s, r) = reopen(&StdDisk, &dir, FsOptions::default()).unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(&b"snapshot at 7"[..]));
    assert_eq!(r.records, recs(8, 8));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&"snapshot-00000000000000000007.snap".to_string()),
        "{names:?}"
    );
}

#[test]
fn segments_roll_past_the_size_limit() {
    let disk = SimDisk::new();
    let options = FsOptions::default().segment_bytes(100);
    let mut s = open_sim(&disk, options.clone()).unwrap();
    load(&mut s);
    for r in 1..=20 {
        append(&mut s, &recs(r, r)).unwrap();
    }
    append(&mut s, &recs(21, 40)).unwrap(); // one batch spanning several segments
    let segs = segments(&disk);
    assert!(segs.len() > 5, "{segs:?}");
    assert_eq!(segs[0], "wal-00000000000000000001.log");
    // Each segment is named by its first revision and stops at the first frame that reaches
    // the limit: 16-byte header + frames of 20 + 9 or 10 bytes.
    for name in &segs {
        let bytes = disk.read_file(&Path::new(DIR).join(name)).unwrap();
        assert!(bytes.len() < 100 + 30, "{name}: {} bytes", bytes.len());
    }
    drop(s);
    let (_s, r) = reopen(&disk, Path::new(DIR), options).unwrap();
    assert_eq!(r.records, recs(1, 40));
}

#[test]
fn snapshot_drops_covered_segments_and_keeps_later_records() {
    let disk = SimDisk::new();
    let options = FsOptions::default().segment_bytes(100);
    let mut s = open_sim(&disk, options.clone()).unwrap();
    load(&mut s);
    for r in 1..=30 {
        append(&mut s, &recs(r, r)).unwrap();
    }
    let before = segments(&disk);
    snapshot(&mut s, 20, b"state@20").unwrap();
    let after = segments(&disk);
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    // The oldest remaining segment still holds a record above 20; no record above 20 is gone.
    drop(s);
    let (mut s, r) = reopen(&disk, Path::new(DIR), options.clone()).unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(&b"state@20"[..]));
    assert_eq!(r.records, recs(21, 30));
    assert!(r.repairs.is_empty());

    append(&mut s, &recs(31, 35)).unwrap();
    // A snapshot at the last revision drops every segment, the active one included, and the
    // older snapshot.
    snapshot(&mut s, 35, b"state@35").unwrap();
    assert!(segments(&disk).is_empty(), "{:?}", segments(&disk));
    let files = disk.files(Path::new(DIR));
    assert_eq!(files, ["LOCK", "snapshot-00000000000000000035.snap"]);
    append(&mut s, &recs(36, 37)).unwrap();
    drop(s);
    let (_s, r) = reopen(&disk, Path::new(DIR), options).unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(&b"state@35"[..]));
    assert_eq!(r.records, recs(36, 37));
}

#[test]
fn load_finishes_an_interrupted_cleanup() {
    // A crash after the snapshot was durable but before old files were removed leaves them
    // behind; load removes what the newest snapshot covers.
    let disk = SimDisk::new();
    let options = FsOptions::default().segment_bytes(60);
    let mut s = open_sim(&disk, options.clone()).unwrap();
    load(&mut s);
    for r in 1..=10 {
        append(&mut s, &recs(r, r)).unwrap();
    }
    snapshot(&mut s, 3, b"old").unwrap();
    drop(s);
    let dir = Path::new(DIR);
    let segs_before = segments(&disk);
    let seg_bytes: Vec<Vec<u8>> = segs_before
        .iter()
        .map(|n| disk.read_file(&dir.join(n)).unwrap())
        .collect();
    let old_snapshot = disk
        .read_file(&dir.join("snapshot-00000000000000000003.snap"))
        .unwrap();
    // Plant a newer snapshot as if the storage had written it and then crashed.
    let mut s = open_sim(&disk, options.clone()).unwrap();
    load(&mut s);
    snapshot(&mut s, 6, b"new").unwrap();
    let new_snapshot = disk
        .read_file(&dir.join("snapshot-00000000000000000006.snap"))
        .unwrap();
    drop(s);
    let disk2 = SimDisk::new();
    for (name, bytes) in segs_before.iter().zip(&seg_bytes) {
        disk2.write_file(&dir.join(name), bytes);
    }
    disk2.write_file(
        &dir.join("snapshot-00000000000000000003.snap"),
        &old_snapshot,
    );
    disk2.write_file(
        &dir.join("snapshot-00000000000000000006.snap"),
        &new_snapshot,
    );
    let (_s, r) = reopen(&disk2, dir, options).unwrap();
    assert_eq!(r.snapshot.as_deref(), Some(&b"new"[..]));
    assert_eq!(r.records, recs(7, 10));
    let files = disk2.files(dir);
    assert!(!files.contains(&"snapshot-00000000000000000003.snap".to_string()));
    let segs_after = segments(&disk2);
    assert!(
        segs_after.len() < segs_before.len(),
        "{segs_before:?} -> {segs_after:?}"
    );
    assert_eq!(
        segs_after,
        segments(&disk),
        "the same segments the snapshot dropped"
    );
}

#[test]
fn a_second_open_is_locked_in_the_same_process() {
    let tmp = tempfile::tempdir().unwrap();
    let first = FsStorage::open(tmp.path(), FsOptions::default()).unwrap();
    let err = FsStorage::open(tmp.path(), FsOptions::default()).unwrap_err();
    assert_eq!(
        err,
        StorageError::Locked {
            path: tmp.path().display().to_string()
        }
    );
    drop(first);
    FsStorage::open(tmp.path(), FsOptions::default()).unwrap();

    let disk = SimDisk::new();
    let first = open_sim(&disk, FsOptions::default()).unwrap();
    assert!(matches!(
        open_sim(&disk, FsOptions::default()),
        Err(StorageError::Locked { .. })
    ));
    first.close().unwrap();
    open_sim(&disk, FsOptions::default()).unwrap();
}

#[test]
fn leftover_temp_files_are_removed_and_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let mut s = FsStorage::open(dir, FsOptions::default()).unwrap();
        load(&mut s);
        append(&mut s, &recs(1, 2)).unwrap();
    }
    std::fs::write(
        dir.join("snapshot-00000000000000000009.snap.tmp"),
        b"half a snapshot",
    )
    .unwrap();
    std::fs::write(dir.join("wal-00000000000000000003.log.tmp"), b"junk").unwrap();
    std::fs::write(dir.join("notes.txt"), b"not ours").unwrap();
    let (_s, r) = reopen(&StdDisk, dir, FsOptions::default()).unwrap();
    assert_eq!(r.records, recs(1, 2));
    assert!(r.snapshot.is_none());
    assert!(!dir.join("snapshot-00000000000000000009.snap.tmp").exists());
    assert!(!dir.join("wal-00000000000000000003.log.tmp").exists());
    assert!(
        dir.join("notes.txt").exists(),
        "unknown files are left alone"
    );
}

#[test]
fn misuse_is_refused_without_poisoning() {
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    assert!(matches!(
        append(&mut s, &recs(1, 1)),
        Err(StorageError::Invalid { .. })
    ));
    load(&mut s);
    append(&mut s, &recs(1, 3)).unwrap();
    for bad in [vec![rec(3, b"x")], vec![rec(5, b"x"), rec(4, b"y")]] {
        assert!(matches!(
            append(&mut s, &bad),
            Err(StorageError::Invalid { .. })
        ));
    }
    snapshot(&mut s, 3, b"s3").unwrap();
    assert!(matches!(
        snapshot(&mut s, 2, b"s2"),
        Err(StorageError::Invalid { .. })
    ));
    assert!(!s.is_poisoned());
    append(&mut s, &recs(4, 4)).unwrap();
}

#[test]
fn a_failure_poisons_until_reopened() {
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    load(&mut s);
    append(&mut s, &recs(1, 2)).unwrap();
    // The next IO (the write of the frame) fails, once.
    disk.fail_nth_io(disk.io_count() + 1, false);
    assert!(matches!(
        append(&mut s, &recs(3, 3)),
        Err(StorageError::Io { op: "write", .. })
    ));
    assert!(s.is_poisoned());
    assert_eq!(append(&mut s, &recs(3, 3)), Err(StorageError::Poisoned));
    assert_eq!(sync(&mut s), Err(StorageError::Poisoned));
    assert_eq!(snapshot(&mut s, 2, b"x"), Err(StorageError::Poisoned));
    assert_eq!(block_on(s.load()), Err(StorageError::Poisoned));
    assert!(matches!(s.close(), Err(StorageError::Poisoned)));
    // Reopening repairs the half-written frame and carries on.
    let (mut s, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(r.records, recs(1, 2));
    assert_eq!(r.repairs.len(), 1, "{:?}", r.repairs);
    append(&mut s, &recs(3, 4)).unwrap();
    drop(s);
    let (_s, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(r.records, recs(1, 4));
}

#[test]
fn sync_always_is_one_write_and_one_fsync_per_batch() {
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    load(&mut s);
    // The first batch creates the segment: create, write, fsync, fsync dir.
    let start = disk.io_count();
    append(&mut s, &recs(1, 10)).unwrap();
    assert_eq!(disk.io_count() - start, 4);
    // Later batches, however many records: write, fsync.
    let start = disk.io_count();
    append(&mut s, &recs(11, 110)).unwrap();
    assert_eq!(disk.io_count() - start, 2);
    drop(s);
    disk.crash(CrashMode::DropUnsynced);
    let (_s, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(r.records, recs(1, 110));
}

#[test]
fn sync_never_defers_durability_to_sync() {
    let disk = SimDisk::new();
    let options = FsOptions::default().sync(SyncPolicy::Never);
    let mut s = open_sim(&disk, options.clone()).unwrap();
    load(&mut s);
    append(&mut s, &recs(1, 3)).unwrap();
    sync(&mut s).unwrap();
    let start = disk.io_count();
    append(&mut s, &recs(4, 6)).unwrap();
    assert_eq!(disk.io_count() - start, 1, "only the write");
    // Power loss before any sync: 4..=6 are gone, 1..=3 are not.
    disk.crash_after(disk.io_count());
    drop(s);
    disk.crash(CrashMode::DropUnsynced);
    let (mut s, r) = reopen(&disk, Path::new(DIR), options.clone()).unwrap();
    assert_eq!(r.records, recs(1, 3));
    append(&mut s, &recs(4, 6)).unwrap();
    s.close().unwrap();
    disk.crash(CrashMode::DropUnsynced);
    let (_s, r) = reopen(&disk, Path::new(DIR), options).unwrap();
    assert_eq!(r.records, recs(1, 6), "close syncs");
}

#[test]
fn sync_every_millis_syncs_when_the_last_sync_is_old() {
    let disk = SimDisk::new();
    let options = FsOptions::default().sync(SyncPolicy::EveryMillis(0));
    let mut s = open_sim(&disk, options).unwrap();
    load(&mut s);
    append(&mut s, &recs(1, 1)).unwrap();
    let start = disk.io_count();
    append(&mut s, &recs(2, 2)).unwrap();
    assert_eq!(
        disk.io_count() - start,
        2,
        "write + fsync: the last sync is >= 0 ms old"
    );
    drop(s);

    let disk = SimDisk::new();
    let options = FsOptions::default().sync(SyncPolicy::EveryMillis(3_600_000));
    let mut s = open_sim(&disk, options).unwrap();
    load(&mut s);
    append(&mut s, &recs(1, 1)).unwrap();
    let start = disk.io_count();
    append(&mut s, &recs(2, 2)).unwrap();
    assert_eq!(disk.io_count() - start, 1, "no fsync within the hour");
    let start = disk.io_count();
    sync(&mut s).unwrap();
    assert_eq!(
        disk.io_count() - start,
        2,
        "sync: fsync + the new segment's dir fsync"
    );
}

#[test]
fn works_through_the_trait_object() {
    let disk = SimDisk::new();
    let mut s: Box<dyn Storage> = Box::new(open_sim(&disk, FsOptions::default()).unwrap());
    load(&mut *s);
    append(&mut *s, &recs(1, 2)).unwrap();
    sync(&mut *s).unwrap();
    snapshot(&mut *s, 2, b"two").unwrap();
}
