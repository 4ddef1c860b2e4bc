//! Every storage adapter available natively runs the whole conformance suite.

use statemesh_conformance::{Reopen, run_all};
use statemesh_core::{MemoryStorage, StorageError};
use statemesh_fs::{FsOptions, FsStorage, SimDisk};

struct Memory(MemoryStorage);

impl Reopen for Memory {
    type S = MemoryStorage;
    async fn open(&mut self, fresh: bool) -> Result<MemoryStorage, StorageError> {
        if fresh {
            self.0 = MemoryStorage::new();
        }
        Ok(self.0.clone())
    }
}

struct Files {
    root: tempfile::TempDir,
    n: u32,
}

impl Reopen for Files {
    type S = FsStorage;
    async fn open(&mut self, fresh: bool) -> Result<FsStorage, StorageError> {
        if fresh {
            self.n += 1;
        }
        // Small segments so rolling and snapshot clean-up are exercised.
        FsStorage::open(
            self.root.path().join(self.n.to_string()),
            FsOptions::default().segment_bytes(4096),
        )
    }
}

struct Simulated {
    disk: SimDisk,
    n: u32,
}

impl Reopen for Simulated {
    type S = FsStorage<SimDisk>;
    async fn open(&mut self, fresh: bool) -> Result<FsStorage<SimDisk>, StorageError> {
        if fresh {
            self.n += 1;
        }
        FsStorage::open_with_disk(
            self.disk.clone(),
            format!("/sim/{}", self.n),
            FsOptions::default().segment_bytes(4096),
        )
    }
}

fn assert_conforms(name: &str, failures: Vec<statemesh_conformance::Failure>) {
    let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(
        report.is_empty(),
        "{name} fails the storage contract:\n{}",
        report.join("\n")
    );
}

#[test]
fn memory_storage_conforms() {
    let failures = futures_executor::block_on(run_all(&mut Memory(MemoryStorage::new())));
    assert_conforms("MemoryStorage", failures);
}

#[test]
fn file_storage_conforms() {
    let mut files = Files {
        root: tempfile::tempdir().expect("temp dir"),
        n: 0,
    };
    assert_conforms("FsStorage", futures_executor::block_on(run_all(&mut files)));
}

#[test]
fn file_storage_on_the_simulated_disk_conforms() {
    let mut sim = Simulated {
        disk: SimDisk::new(),
        n: 0,
    };
    assert_conforms(
        "FsStorage<SimDisk>",
        futures_executor::block_on(run_all(&mut sim)),
    );
}
