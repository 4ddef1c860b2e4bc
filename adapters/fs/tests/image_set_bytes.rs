//! Pins the bytes of an index-image file: what this adapter writes for a small image set is
//! exactly the fixture `core/tests/fixtures/index-image-set-v1.hex` (the IndexedDB adapter's
//! browser tests check the same fixture), and a file holding those bytes loads. Directories
//! written by earlier releases must keep loading.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use statemesh_core::Storage;
use statemesh_fs::{FsOptions, SimDisk};

#[path = "../../../core/tests/fixtures/image_set_fixture.rs"]
mod fixture;

const IMG: &str = "/db/index-00000000000000000005.img";

/// A directory with a snapshot at revision 5 and no images yet.
fn with_snapshot() -> SimDisk {
    let disk = SimDisk::new();
    let mut s = open_sim(&disk, FsOptions::default()).unwrap();
    load(&mut s);
    append(&mut s, &recs(1, 6)).unwrap();
    snapshot(&mut s, 5, b"snap5").unwrap();
    drop(s);
    disk
}

#[test]
fn an_image_file_is_written_with_the_pinned_bytes() {
    let disk = with_snapshot();
    let (mut s, _) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    block_on(s.write_index_images(5, &fixture::images())).unwrap();
    drop(s);
    assert_eq!(disk.read_file(Path::new(IMG)).unwrap(), fixture::bytes());
}

#[test]
fn an_image_file_with_the_pinned_bytes_loads() {
    let disk = with_snapshot();
    disk.write_file(Path::new(IMG), &fixture::bytes());
    let (mut s, _) = reopen(&disk, Path::new(DIR), FsOptions::default()).unwrap();
    assert_eq!(block_on(s.load_index_images()).unwrap(), fixture::images());
}
