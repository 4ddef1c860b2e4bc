//! Shared by the tests that damage a data directory the way a crash mid-append does.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The log segments of a data directory, oldest first.
pub(crate) fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("read the data directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    found.sort();
    found
}

/// Appends the start of a frame header to the last segment: what a crash in the middle of an
/// append leaves behind, and what the next open truncates and reports.
pub(crate) fn tear_last_segment(dir: &Path) {
    let last = segments(dir).pop().expect("a log segment");
    let mut bytes = std::fs::read(&last).expect("read the segment");
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 21, 0, 0]);
    std::fs::write(&last, &bytes).expect("tear the segment");
}
