//! Index images in files: they come back exactly for their snapshot, a damaged or torn image
//! file is reported (never returned as a wrong image, never a panic, never poisoning), and a
//! crash at any IO of a checkpoint (snapshot, then images) leaves either the new images, or
//! none (an older set is never returned for a newer snapshot), with the log intact.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use statemesh_core::{IndexImage, Storage, StorageError};
use statemesh_fs::{CrashMode, FsOptions, SimDisk};

fn images(tag: u8) -> Vec<IndexImage> {
    vec![
        IndexImage {
            name: "text".into(),
            bytes: (0..5_000u32).map(|i| (i % 253) as u8 ^ tag).collect(),
        },
        IndexImage {
            name: "vec".into(),
            bytes: vec![tag; 40],
        },
    ]
}

fn write_images(
    s: &mut impl Storage,
    revision: u64,
    images: &[IndexImage],
) -> Result<(), StorageError> {
    block_on(s.write_index_images(revision, images))
}

fn load_images(s: &mut impl Storage) -> Result<Vec<IndexImage>, StorageError> {
    block_on(s.load_index_images())
}

const IMG: &str = "/db/index-00000000000000000005.img";

fn prepared() -> SimDisk {
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    load(&mut s);
    append(&mut s, &recs(1, 8)).unwrap();
    snapshot(&mut s, 5, b"snap5").unwrap();
    write_images(&mut s, 5, &images(1)).unwrap();
    drop(s);
    disk
}

#[test]
fn images_come_back_and_stale_files_are_removed() {
    let disk = prepared();
    let (mut s, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(revisions(&r), vec![6, 7, 8]);
    assert_eq!(load_images(&mut s).unwrap(), images(1));
    // A newer snapshot and its images replace the file; the old one goes.
    snapshot(&mut s, 8, b"snap8").unwrap();
    write_images(&mut s, 8, &images(2)).unwrap();
    let files = disk.files(Path::new(DIR));
    assert!(
        files.contains(&"index-00000000000000000008.img".to_owned()),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.contains("00005.img")), "{files:?}");
    drop(s);
    let (mut s, _) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(load_images(&mut s).unwrap(), images(2));
}

#[test]
fn damaged_image_files_are_reported_never_returned_and_do_not_poison() {
    let good = prepared().read_file(Path::new(IMG)).unwrap();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for at in (0..good.len())
        .step_by(97)
        .chain([good.len() - 1, 8, 16, 24, 32, 40, 44])
    {
        for bit in [0x01, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= bit;
            cases.push(bad);
        }
    }
    for len in (0..good.len()).step_by(211).chain([good.len() - 1]) {
        cases.push(good[..len].to_vec());
    }
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 7]);
    cases.push(longer);
    for bad in cases {
        let disk = prepared();
        disk.write_file(Path::new(IMG), &bad);
        let (mut s, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
        assert_eq!(revisions(&r), vec![6, 7, 8]);
        match load_images(&mut s) {
            Err(StorageError::Corrupt { .. } | StorageError::Unsupported { .. }) => {}
            Ok(got) => assert!(got.is_empty(), "a damaged file gave images"),
            Err(e) => panic!("unexpected {e}"),
        }
        append(&mut s, &recs(9, 9)).unwrap();
        write_images(&mut s, 5, &images(3)).unwrap();
        assert_eq!(load_images(&mut s).unwrap(), images(3));
    }
}

#[test]
fn refused_and_failed_image_writes_do_not_poison() {
    let disk = prepared();
    let (mut s, _) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert!(matches!(
        write_images(&mut s, 6, &images(1)),
        Err(StorageError::Invalid { .. })
    ));
    let first = disk.io_count();
    for k in 0..6 {
        disk.fail_nth_io(first + k * 20 + k, false);
        let _ = write_images(&mut s, 5, &images(4));
        disk.clear_faults();
        append(&mut s, &recs(9 + k, 9 + k)).unwrap();
    }
    assert!(!s.is_poisoned());
}

#[test]
fn a_crash_at_any_io_of_a_checkpoint_leaves_the_new_images_or_none() {
    // Count the IOs of the whole workload once.
    let run = |disk: &SimDisk| -> (bool, bool) {
        let Ok(mut s) = open_sim(disk, FsOptions::default()) else {
            return (false, false);
        };
        if block_on(s.load()).is_err() || append(&mut s, &recs(1, 8)).is_err() {
            return (false, false);
        }
        let _ = snapshot(&mut s, 3, b"snap3").and_then(|()| write_images(&mut s, 3, &images(1)));
        let snap = snapshot(&mut s, 6, b"snap6").is_ok();
        let imgs = snap && write_images(&mut s, 6, &images(2)).is_ok();
        (snap, imgs)
    };
    let disk = SimDisk::new();
    run(&disk);
    let total = disk.io_count();
    let mut checked = 0;
    for k in 0..=total {
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::KeepUnsynced,
            CrashMode::Tear { seed: k },
            CrashMode::Reorder { seed: k },
        ] {
            let disk = SimDisk::new();
            disk.crash_after(k);
            let (snap_acked, images_acked) = run(&disk);
            disk.crash(mode);
            let (mut s, r) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
            let snap = r.snapshot.clone();
            let got = load_images(&mut s).unwrap_or_default();
            let what = format!("crash after IO {k}, {mode:?}");
            if snap_acked {
                assert_eq!(snap.as_deref(), Some(&b"snap6"[..]), "{what}");
            }
            if images_acked {
                assert_eq!(got, images(2), "{what}");
            }
            match snap.as_deref() {
                Some(b"snap6") => assert!(got.is_empty() || got == images(2), "{what}"),
                Some(b"snap3") => assert!(got.is_empty() || got == images(1), "{what}"),
                _ => assert!(got.is_empty(), "{what}"),
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}
