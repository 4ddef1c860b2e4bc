//! statemesh-fs: durable storage for statemesh in a directory of files.
//!
//! [`FsStorage`] implements [`statemesh_core::Storage`] with a write-ahead log of checksummed
//! frames in size-limited segments plus atomically replaced snapshots, group commit through the
//! host's batching, a choice of fsync policy ([`SyncPolicy`]), torn-tail recovery and a lock
//! against a second opener. All IO goes through the small [`Disk`] trait: [`StdDisk`] is the real
//! file system, [`SimDisk`] a simulated one that loses unsynced data on a crash and fails chosen
//! operations, for tests.
//!
//! ```
//! use statemesh_core::{LogBytes, Storage};
//! use statemesh_fs::{FsOptions, FsStorage, SimDisk};
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop {
//! #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #     }
//! # }
//! # block_on(async {
//! let disk = SimDisk::new();
//! let mut storage = FsStorage::open_with_disk(disk.clone(), "/data", FsOptions::default())?;
//! let recovered = storage.load().await?;
//! assert!(recovered.snapshot.is_none() && recovered.records.is_empty());
//! storage.append(&[LogBytes { revision: 1, bytes: b"record".to_vec() }]).await?;
//! drop(storage);
//!
//! let mut storage = FsStorage::open_with_disk(disk, "/data", FsOptions::default())?;
//! assert_eq!(storage.load().await?.records.len(), 1);
//! # Ok::<(), statemesh_core::StorageError>(())
//! # }).unwrap();
//! ```
//!
//! The byte layouts, recovery rules and durability argument are in `docs/storage.md`.

mod disk;
pub mod format;
mod sim;
mod storage;

pub use disk::{Disk, DiskFile, StdDisk, StdFile, StdLock};
pub use sim::{CrashMode, SimDisk, SimFile, SimLock};
pub use storage::{DEFAULT_SEGMENT_BYTES, FsOptions, FsStorage, SyncPolicy};
