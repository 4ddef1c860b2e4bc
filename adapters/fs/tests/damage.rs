//! Damaged files: every bit flip and truncation of the last frame is repaired; damage anywhere
//! else is `Corrupt` naming the file and offset; no file content makes load panic.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};

use common::*;
use statemesh_core::{Recovered, StorageError};
use statemesh_fs::format::SEGMENT_HEADER_LEN;
use statemesh_fs::{FsOptions, FsStorage, SimDisk, StdDisk};

fn seg_path(first: u64) -> PathBuf {
    Path::new(DIR).join(format!("wal-{first:020}.log"))
}

/// A segment holding records 1..=n, each appended alone, and the start offset of each frame.
fn one_segment(n: u64) -> (Vec<u8>, Vec<usize>) {
    grouped_segment(n, 1)
}

/// A segment holding records 1..=n appended `per` at a time (a frame each), and the start
/// offset of each frame.
fn grouped_segment(n: u64, per: u64) -> (Vec<u8>, Vec<usize>) {
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    load(&mut s);
    let mut offsets = Vec::new();
    for r in (1..=n).step_by(per as usize) {
        offsets.push(
            disk.read_file(&seg_path(1))
                .map_or(SEGMENT_HEADER_LEN, |b| b.len()),
        );
        append(&mut s, &recs(r, (r + per - 1).min(n))).unwrap();
    }
    (disk.read_file(&seg_path(1)).unwrap(), offsets)
}

/// Loads a directory holding exactly `files`.
fn load_files(files: &[(PathBuf, Vec<u8>)]) -> (SimDisk, Result<Recovered, StorageError>) {
    let disk = SimDisk::new();
    for (path, bytes) in files {
        disk.write_file(path, bytes);
    }
    let result = reopen(&disk, Path::new(DIR), FsOptions::default()).map(|(_, r)| r);
    (disk, result)
}

fn assert_repaired(disk: &SimDisk, result: Result<Recovered, StorageError>, keep: u64, at: usize) {
    let r = result.unwrap_or_else(|e| panic!("expected a repair at {at}, got {e}"));
    assert_eq!(r.records, recs(1, keep));
    assert_eq!(r.repairs.len(), 1, "{:?}", r.repairs);
    let file = seg_path(1).display().to_string();
    assert!(
        r.repairs[0].contains(&file) && r.repairs[0].contains(&format!("byte {at}")),
        "{}",
        r.repairs[0]
    );
    assert_eq!(disk.read_file(&seg_path(1)).unwrap().len(), at, "truncated");
    // The repair is durable and complete: a second open finds nothing to fix and appends go on.
    let (mut s, again) = reopen(disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert!(again.repairs.is_empty(), "{:?}", again.repairs);
    append(&mut s, &recs(keep + 1, keep + 1)).unwrap();
    drop(s);
    let (_, again) = reopen(disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(again.records, recs(1, keep + 1));
}

#[test]
fn every_bit_flip_in_the_last_frame_is_repaired() {
    let (bytes, offsets) = one_segment(5);
    let last = offsets[4];
    for i in last..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= bit;
            let (disk, result) = load_files(&[(seg_path(1), bad)]);
            assert_repaired(&disk, result, 4, last);
        }
    }
}

#[test]
fn every_truncation_of_the_last_frame_is_repaired() {
    let (bytes, offsets) = one_segment(5);
    let last = offsets[4];
    for cut in last + 1..bytes.len() {
        let (disk, result) = load_files(&[(seg_path(1), bytes[..cut].to_vec())]);
        assert_repaired(&disk, result, 4, last);
    }
    // Cut exactly at a frame boundary: nothing torn, nothing to repair.
    let (_, result) = load_files(&[(seg_path(1), bytes[..last].to_vec())]);
    let r = result.unwrap();
    assert_eq!(r.records, recs(1, 4));
    assert!(r.repairs.is_empty());
}

#[test]
fn garbage_or_zeros_after_the_last_frame_is_repaired() {
    let (bytes, _) = one_segment(3);
    let end = bytes.len();
    for tail in [
        vec![0u8; 4096],
        vec![0xff; 7],
        b"not a frame at all, just text".to_vec(),
    ] {
        let mut bad = bytes.clone();
        bad.extend_from_slice(&tail);
        let (disk, result) = load_files(&[(seg_path(1), bad)]);
        assert_repaired(&disk, result, 3, end);
    }
}

#[test]
fn a_frame_of_several_records_is_repaired_or_refused_whole() {
    // Three appends of three records: three frames.
    let (bytes, offsets) = grouped_segment(9, 3);
    assert_eq!(offsets.len(), 3);
    let last = offsets[2];
    for i in last..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        let (disk, result) = load_files(&[(seg_path(1), bad)]);
        // None of the last frame's records come back, all of the others do.
        assert_repaired(&disk, result, 6, last);
    }
    for cut in last + 1..bytes.len() {
        let (disk, result) = load_files(&[(seg_path(1), bytes[..cut].to_vec())]);
        assert_repaired(&disk, result, 6, last);
    }
    for i in SEGMENT_HEADER_LEN..last {
        let frame_start = *offsets.iter().rev().find(|&&o| o <= i).unwrap();
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        match load_files(&[(seg_path(1), bad)]).1 {
            Err(StorageError::Corrupt { offset, .. }) => {
                assert_eq!(offset, frame_start as u64, "flip at byte {i}");
            }
            other => panic!("flip at byte {i}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn every_bit_flip_in_an_earlier_frame_is_corrupt_at_that_frame() {
    let (bytes, offsets) = one_segment(5);
    let file = seg_path(1).display().to_string();
    for i in SEGMENT_HEADER_LEN..offsets[4] {
        let frame_start = *offsets.iter().rev().find(|&&o| o <= i).unwrap();
        let mut bad = bytes.clone();
        bad[i] ^= 0x04;
        let (disk, result) = load_files(&[(seg_path(1), bad.clone())]);
        match result {
            Err(StorageError::Corrupt {
                file: f, offset, ..
            }) => {
                assert_eq!(f, file);
                assert_eq!(offset, frame_start as u64, "flip at byte {i}");
            }
            other => panic!("flip at byte {i}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(
            disk.read_file(&seg_path(1)).unwrap(),
            bad,
            "nothing was truncated"
        );
    }
}

#[test]
fn damage_in_a_segment_that_is_not_the_last_is_corrupt() {
    let disk = SimDisk::new();
    let options = FsOptions::default().segment_bytes(80);
    let mut s = open_sim(&disk, options).unwrap();
    load(&mut s);
    for r in 1..=6 {
        append(&mut s, &recs(r, r)).unwrap();
    }
    drop(s);
    let segs = segments(&disk);
    assert!(segs.len() >= 2, "{segs:?}");
    let first = Path::new(DIR).join(&segs[0]);
    let first_bytes = disk.read_file(&first).unwrap();
    let others: Vec<(PathBuf, Vec<u8>)> = segs[1..]
        .iter()
        .map(|n| {
            let p = Path::new(DIR).join(n);
            let b = disk.read_file(&p).unwrap();
            (p, b)
        })
        .collect();
    // A torn tail is only possible in the last segment; anywhere else it is damage.
    let with = |bytes: Vec<u8>| {
        let mut files = vec![(first.clone(), bytes)];
        files.extend(others.iter().cloned());
        load_files(&files).1
    };
    let mut flipped = first_bytes.clone();
    let n = flipped.len();
    flipped[n - 1] ^= 1;
    for bad in [first_bytes[..n - 3].to_vec(), flipped] {
        match with(bad) {
            Err(StorageError::Corrupt { file, reason, .. }) => {
                assert_eq!(file, first.display().to_string());
                assert!(reason.contains("not the last segment"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn bad_headers_revisions_and_names_are_corrupt() {
    let (bytes, offsets) = one_segment(3);
    // Magic.
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    assert!(matches!(
        load_files(&[(seg_path(1), bad)]).1,
        Err(StorageError::Corrupt { offset: 0, .. })
    ));
    // Version.
    let mut bad = bytes.clone();
    bad[8] = 9;
    assert!(matches!(
        load_files(&[(seg_path(1), bad)]).1,
        Err(StorageError::Unsupported { .. })
    ));
    // A segment whose name does not match its first frame.
    assert!(matches!(
        load_files(&[(seg_path(2), bytes.clone())]).1,
        Err(StorageError::Corrupt { offset, .. }) if offset == SEGMENT_HEADER_LEN as u64
    ));
    // A valid frame whose revision does not increase (frame 2 again after frame 3).
    let mut bad = bytes.clone();
    bad.extend_from_slice(&bytes[offsets[1]..offsets[2]]);
    match load_files(&[(seg_path(1), bad)]).1 {
        Err(StorageError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, bytes.len() as u64);
            assert!(reason.contains("does not follow"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_segment_torn_at_creation_is_removed() {
    let (bytes, _) = one_segment(2);
    let header = &bytes[..SEGMENT_HEADER_LEN];
    let second = seg_path(3);
    let mut torn_frame = header.to_vec();
    torn_frame.extend_from_slice(&[1, 2, 3]);
    // Empty, a torn header, zeros (size reached the disk, data did not), a torn first frame.
    for torn in [Vec::new(), header[..7].to_vec(), vec![0u8; 40], torn_frame] {
        let (disk, result) = load_files(&[(seg_path(1), bytes.clone()), (second.clone(), torn)]);
        let r = result.unwrap();
        assert_eq!(r.records, recs(1, 2));
        assert_eq!(r.repairs.len(), 1, "{:?}", r.repairs);
        assert!(r.repairs[0].contains(&second.display().to_string()));
        assert!(disk.read_file(&second).is_none(), "removed");
    }
    // A header alone (created, no frame yet) is simply dropped.
    let (disk, result) = load_files(&[
        (seg_path(1), bytes.clone()),
        (second.clone(), header.to_vec()),
    ]);
    let r = result.unwrap();
    assert_eq!(r.records, recs(1, 2));
    assert!(r.repairs.is_empty());
    assert!(disk.read_file(&second).is_none());
    // Zeros with data after them are not a torn creation.
    let mut bad = vec![0u8; SEGMENT_HEADER_LEN];
    bad.extend_from_slice(&bytes[SEGMENT_HEADER_LEN..]);
    assert!(matches!(
        load_files(&[(seg_path(1), bad)]).1,
        Err(StorageError::Corrupt { offset: 0, .. })
    ));
}

#[test]
fn a_damaged_snapshot_is_corrupt_never_skipped() {
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    load(&mut s);
    append(&mut s, &recs(1, 4)).unwrap();
    snapshot(&mut s, 4, b"the state at revision four").unwrap();
    append(&mut s, &recs(5, 5)).unwrap();
    drop(s);
    let snap = Path::new(DIR).join(format!("snapshot-{:020}.snap", 4));
    let snap_bytes = disk.read_file(&snap).unwrap();
    let wal = seg_path(5);
    let wal_bytes = disk.read_file(&wal).unwrap();
    let file = snap.display().to_string();
    let mut damaged: Vec<Vec<u8>> = (0..snap_bytes.len())
        .map(|i| {
            let mut b = snap_bytes.clone();
            b[i] ^= 0x20;
            b
        })
        .collect();
    damaged.extend((0..snap_bytes.len()).map(|cut| snap_bytes[..cut].to_vec()));
    for bad in damaged {
        match load_files(&[(snap.clone(), bad), (wal.clone(), wal_bytes.clone())]).1 {
            Err(
                StorageError::Corrupt { file: f, .. } | StorageError::Unsupported { file: f, .. },
            ) => {
                assert_eq!(f, file)
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    let (_, r) = load_files(&[(snap, snap_bytes), (wal, wal_bytes)]);
    let r = r.unwrap();
    assert_eq!(
        r.snapshot.as_deref(),
        Some(&b"the state at revision four"[..])
    );
    assert_eq!(r.records, recs(5, 5));
}

/// splitmix64
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn random_bytes_never_panic() {
    let (valid, _) = one_segment(4);
    let (tail, _) = one_segment(1);
    let mut rng = 7u64;
    for case in 0..1500u64 {
        let len = (next(&mut rng) % 400) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next(&mut rng) as u8).collect();
        match case % 4 {
            // Pure noise.
            0 => {}
            // A valid header, then noise.
            1 => bytes
                .splice(0..0, valid[..SEGMENT_HEADER_LEN].iter().copied())
                .for_each(drop),
            // Valid frames, then noise.
            2 => bytes.splice(0..0, valid.iter().copied()).for_each(drop),
            // Valid frames with a few random bytes overwritten.
            _ => {
                bytes = valid.clone();
                for _ in 0..1 + next(&mut rng) % 3 {
                    let i = (next(&mut rng) as usize) % bytes.len();
                    bytes[i] = next(&mut rng) as u8;
                }
            }
        }
        // As the only (last) segment: a repair or Corrupt/Unsupported, never a panic.
        match load_files(&[(seg_path(1), bytes.clone())]).1 {
            Ok(r) => {
                let n = r.records.len() as u64;
                assert_eq!(r.records, recs(1, n), "only real frames come back");
            }
            Err(StorageError::Corrupt { .. } | StorageError::Unsupported { .. }) => {}
            Err(e) => panic!("case {case}: {e}"),
        }
        // As an earlier segment, and as a snapshot.
        let _ = load_files(&[(seg_path(1), bytes.clone()), (seg_path(1000), tail.clone())]).1;
        let snap = Path::new(DIR).join(format!("snapshot-{:020}.snap", 1));
        let _ = load_files(&[(snap, bytes)]).1;
    }
}

#[test]
fn a_torn_tail_on_real_files_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let mut s = FsStorage::open(dir, FsOptions::default()).unwrap();
        load(&mut s);
        append(&mut s, &recs(1, 3)).unwrap();
    }
    let path = dir.join(format!("wal-{:020}.log", 1));
    let mut bytes = std::fs::read(&path).unwrap();
    let good_len = bytes.len();
    bytes.extend_from_within(SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + 25);
    std::fs::write(&path, &bytes).unwrap();
    let (_s, r) = reopen(&StdDisk, dir, FsOptions::default()).unwrap();
    assert_eq!(r.records, recs(1, 3));
    assert_eq!(r.repairs.len(), 1);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len as u64);
}
