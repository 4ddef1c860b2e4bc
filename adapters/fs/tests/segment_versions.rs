//! Segment format versions: this build writes version 2 (a frame per append), byte for byte as
//! docs/storage.md lays it out, and still reads version 1 (a frame per record) and appends
//! after it in a new segment.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};

use common::*;
use statemesh_core::StorageError;
use statemesh_fs::format::{GROUP_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_VERSION};
use statemesh_fs::{FsOptions, SimDisk};
use xxhash_rust::xxh3::xxh3_64;

fn seg_path(first: u64) -> PathBuf {
    Path::new(DIR).join(format!("wal-{first:020}.log"))
}

fn segment_header(version: u8) -> Vec<u8> {
    let mut h = b"SMESHWAL".to_vec();
    h.extend_from_slice(&[version, 1, 0, 0, 0, 0, 0, 0]);
    h
}

/// A version-1 frame: length, revision, XXH3-64 of revision and payload, payload.
fn v1_frame(revision: u64, payload: &[u8]) -> Vec<u8> {
    let mut hashed = revision.to_le_bytes().to_vec();
    hashed.extend_from_slice(payload);
    let mut f = (payload.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(&revision.to_le_bytes());
    f.extend_from_slice(&xxh3_64(&hashed).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn an_append_is_one_frame_laid_out_as_documented() {
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    load(&mut s);
    // Revisions need not be consecutive: the index holds each one's step from the last.
    let records = [rec(5, b"alpha"), rec(6, b""), rec(300, &[7u8; 200])];
    append(&mut s, &records).unwrap();
    drop(s);

    let bytes = disk.read_file(&seg_path(5)).unwrap();
    assert_eq!(
        bytes[..SEGMENT_HEADER_LEN],
        segment_header(SEGMENT_VERSION)[..]
    );
    assert_eq!(SEGMENT_VERSION, 2);
    let frame = &bytes[SEGMENT_HEADER_LEN..];
    // Index: (step, length) varints: (0, 5), (1, 0), (294 = 0xa6 0x02, 200 = 0xc8 0x01).
    let index = [0u8, 5, 1, 0, 0xa6, 0x02, 0xc8, 0x01];
    let mut body = index.to_vec();
    body.extend_from_slice(b"alpha");
    body.extend_from_slice(&[7u8; 200]);
    let mut expected = (body.len() as u32).to_le_bytes().to_vec();
    expected.extend_from_slice(&5u64.to_le_bytes());
    expected.extend_from_slice(&3u32.to_le_bytes());
    let mut hashed = expected.clone();
    hashed.extend_from_slice(&body);
    expected.extend_from_slice(&xxh3_64(&hashed).to_le_bytes());
    assert_eq!(expected.len(), GROUP_HEADER_LEN);
    expected.extend_from_slice(&body);
    assert_eq!(
        frame,
        &expected[..],
        "one frame, as docs/storage.md lays it out"
    );

    let (_, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(r.records, records);
}

#[test]
fn version_1_segments_are_read_and_later_appends_go_to_a_new_segment() {
    let disk = SimDisk::new();
    let mut old = segment_header(1);
    for r in recs(1, 3) {
        old.extend_from_slice(&v1_frame(r.revision, &r.bytes));
    }
    let good = old.len();
    // And a torn last frame, which is repaired as before.
    old.extend_from_slice(&v1_frame(4, b"torn")[..10]);
    disk.write_file(&seg_path(1), &old);

    let (mut s, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(r.records, recs(1, 3));
    assert_eq!(r.repairs.len(), 1, "{:?}", r.repairs);
    append(&mut s, &recs(4, 6)).unwrap();
    drop(s);

    let v1 = disk.read_file(&seg_path(1)).unwrap();
    assert_eq!(
        v1,
        old[..good],
        "the version-1 segment only lost its torn tail"
    );
    let v2 = disk.read_file(&seg_path(4)).unwrap();
    assert_eq!(v2[8], SEGMENT_VERSION);
    let (_, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(r.records, recs(1, 6));
    assert!(r.repairs.is_empty());
}

#[test]
fn a_frame_whose_index_disagrees_with_its_body_is_corrupt_even_with_a_good_checksum() {
    // Frames a buggy or hostile writer could produce; their checksums are right.
    let forged = |first: u64, count: u32, index: &[u8], records: &[u8]| {
        let mut body = index.to_vec();
        body.extend_from_slice(records);
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&first.to_le_bytes());
        f.extend_from_slice(&count.to_le_bytes());
        let mut hashed = f.clone();
        hashed.extend_from_slice(&body);
        f.extend_from_slice(&xxh3_64(&hashed).to_le_bytes());
        f.extend_from_slice(&body);
        f
    };
    let cases: [(&str, Vec<u8>); 6] = [
        ("no records", forged(1, 0, &[], b"")),
        ("lengths short of the body", forged(1, 1, &[0, 2], b"abc")),
        ("lengths past the body", forged(1, 1, &[0, 4], b"abc")),
        ("a first step that is not 0", forged(1, 1, &[1, 3], b"abc")),
        ("a later step of 0", forged(1, 2, &[0, 1, 0, 2], b"abc")),
        ("an index cut short", forged(1, 2, &[0, 3], b"abc")),
    ];
    for (what, frame) in cases {
        // Followed by a good frame, so the bad one cannot pass for a torn tail.
        let mut seg = segment_header(SEGMENT_VERSION);
        seg.extend_from_slice(&frame);
        seg.extend_from_slice(&forged(2, 1, &[0, 2], b"ok"));
        let disk = SimDisk::new();
        disk.write_file(&seg_path(1), &seg);
        match reopen(&disk, Path::new(DIR), FsOptions::default()) {
            Err(StorageError::Corrupt { offset, .. }) => {
                assert_eq!(offset, SEGMENT_HEADER_LEN as u64, "{what}");
            }
            other => panic!("{what}: expected Corrupt, got {:?}", other.map(|(_, r)| r)),
        }
    }
}

#[test]
fn an_append_past_the_frame_body_target_is_split_into_frames() {
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    load(&mut s);
    // 24 MiB each: two fit the 64 MiB body target, the third starts a second frame.
    let big: Vec<_> = (1..=3u64)
        .map(|r| rec(r, &vec![r as u8; 24 << 20]))
        .collect();
    append(&mut s, &big).unwrap();
    drop(s);
    let bytes = disk.read_file(&seg_path(1)).unwrap();
    let first_body = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let count = u32::from_le_bytes(bytes[28..32].try_into().unwrap());
    assert_eq!(count, 2);
    assert_eq!(first_body, 2 * (24 << 20) + 2 * 5);
    let second = SEGMENT_HEADER_LEN + GROUP_HEADER_LEN + first_body;
    assert_eq!(
        u64::from_le_bytes(bytes[second + 4..second + 12].try_into().unwrap()),
        3
    );
    let (_, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(r.records, big);
}

#[test]
fn encoded_logs_are_written_from_their_buffers_across_segment_limits() {
    use statemesh_core::{EncodedLog, Engine, EngineConfig, Timestamp, Value};

    // Three logs of several records each, as the native committer hands over a round.
    let mut engine = Engine::new(EngineConfig::default()).unwrap();
    let mut logs = Vec::new();
    for round in 0..3 {
        for i in 0..7 {
            let key = format!("k:{round}.{i}");
            engine
                .put(Timestamp(1), &key, &Value::String("x".repeat(i * 9)))
                .unwrap();
        }
        let mut log = EncodedLog::new();
        engine.take_log(&mut log);
        logs.push(log);
    }
    let expected: Vec<_> = logs
        .iter()
        .flat_map(|l| l.records())
        .map(|(revision, bytes)| rec(revision, bytes))
        .collect();
    assert_eq!(expected.len(), 21);

    // A 300-byte limit rolls segments in the middle of logs.
    let disk = SimDisk::new();
    let options = FsOptions::default().segment_bytes(300);
    let mut s = open_sim(&disk, options.clone()).unwrap();
    load(&mut s);
    block_on(statemesh_core::Storage::append_logs(&mut s, &logs)).unwrap();
    drop(s);
    let segments: Vec<String> = disk
        .files(Path::new(DIR))
        .into_iter()
        .filter(|n| n.starts_with("wal-"))
        .collect();
    assert!(segments.len() >= 3, "{segments:?}");
    let (_, r) = reopen(&disk, Path::new(DIR), options).unwrap();
    assert_eq!(r.records, expected);

    // Without a limit in the way, the three logs are one frame of 21 records.
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    load(&mut s);
    block_on(statemesh_core::Storage::append_logs(&mut s, &logs)).unwrap();
    drop(s);
    let bytes = disk.read_file(&seg_path(expected[0].revision)).unwrap();
    let body = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let count = u32::from_le_bytes(bytes[28..32].try_into().unwrap());
    assert_eq!(count, 21);
    assert_eq!(bytes.len(), SEGMENT_HEADER_LEN + GROUP_HEADER_LEN + body);
    let (_, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(r.records, expected);
}
