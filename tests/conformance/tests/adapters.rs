//! Every storage adapter available natively runs the whole conformance suite.

use statemesh_conformance::{Reopen, run_all};
use statemesh_core::{IndexImage, LogBytes, MemoryStorage, Recovered, Storage, StorageError};
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

/// Claims to store index images but loses them: the suite must notice.
#[derive(Debug)]
struct Forgetful(MemoryStorage);

#[async_trait::async_trait]
impl Storage for Forgetful {
    async fn load(&mut self) -> Result<Recovered, StorageError> {
        self.0.load().await
    }
    async fn append(&mut self, records: &[LogBytes]) -> Result<(), StorageError> {
        self.0.append(records).await
    }
    async fn sync(&mut self) -> Result<(), StorageError> {
        self.0.sync().await
    }
    async fn write_snapshot(&mut self, revision: u64, snapshot: &[u8]) -> Result<(), StorageError> {
        self.0.write_snapshot(revision, snapshot).await
    }
    fn supports_index_images(&self) -> bool {
        true
    }
    async fn write_index_images(
        &mut self,
        revision: u64,
        images: &[IndexImage],
    ) -> Result<(), StorageError> {
        // Drops the last byte of the first image.
        let mut images = images.to_vec();
        if let Some(bytes) = images.first_mut().map(|i| &mut i.bytes) {
            bytes.pop();
        }
        self.0.write_index_images(revision, &images).await
    }
    async fn load_index_images(&mut self) -> Result<Vec<IndexImage>, StorageError> {
        self.0.load_index_images().await
    }
}

struct ForgetfulReopen(MemoryStorage);

impl Reopen for ForgetfulReopen {
    type S = Forgetful;
    async fn open(&mut self, fresh: bool) -> Result<Forgetful, StorageError> {
        if fresh {
            self.0 = MemoryStorage::new();
        }
        Ok(Forgetful(self.0.clone()))
    }
}

#[test]
fn the_suite_catches_an_adapter_that_damages_index_images() {
    let failures = futures_executor::block_on(run_all(&mut ForgetfulReopen(MemoryStorage::new())));
    assert!(
        failures
            .iter()
            .any(|f| f.case.starts_with("index images come back")),
        "{failures:?}"
    );
}
