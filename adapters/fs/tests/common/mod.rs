//! Helpers shared by the statemesh-fs test suites.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use statemesh_core::{LogBytes, Recovered, Storage, StorageError};
use statemesh_fs::{Disk, FsOptions, FsStorage, SimDisk};

/// Runs a future to completion on this thread. FsStorage's futures never wait (their IO is
/// blocking), so this polls once in practice.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

pub const DIR: &str = "/db";

pub fn rec(revision: u64, bytes: &[u8]) -> LogBytes {
    LogBytes {
        revision,
        bytes: bytes.to_vec(),
    }
}

/// Records `from..=to` with payloads that say their revision.
pub fn recs(from: u64, to: u64) -> Vec<LogBytes> {
    (from..=to)
        .map(|r| rec(r, format!("record-{r}").as_bytes()))
        .collect()
}

pub fn open_sim(disk: &SimDisk, options: FsOptions) -> Result<FsStorage<SimDisk>, StorageError> {
    FsStorage::open_with_disk(disk.clone(), DIR, options)
}

/// Opens and loads.
pub fn reopen<D: Disk + Clone>(
    disk: &D,
    dir: &Path,
    options: FsOptions,
) -> Result<(FsStorage<D>, Recovered), StorageError> {
    let mut s = FsStorage::open_with_disk(disk.clone(), dir, options)?;
    let r = block_on(s.load())?;
    Ok((s, r))
}

pub fn load<S: Storage + ?Sized>(s: &mut S) -> Recovered {
    block_on(s.load()).unwrap()
}

pub fn append<S: Storage + ?Sized>(s: &mut S, records: &[LogBytes]) -> Result<(), StorageError> {
    block_on(s.append(records))
}

pub fn snapshot<S: Storage + ?Sized>(
    s: &mut S,
    revision: u64,
    bytes: &[u8],
) -> Result<(), StorageError> {
    block_on(s.write_snapshot(revision, bytes))
}

pub fn sync<S: Storage + ?Sized>(s: &mut S) -> Result<(), StorageError> {
    block_on(s.sync())
}

pub fn revisions(r: &Recovered) -> Vec<u64> {
    r.records.iter().map(|r| r.revision).collect()
}

/// Segment file names in the directory, oldest first.
pub fn segments(disk: &SimDisk) -> Vec<String> {
    disk.files(Path::new(DIR))
        .into_iter()
        .filter(|n| n.starts_with("wal-"))
        .collect()
}
