//! A directory view that lets many one-segment indexes write into one shared RAM directory.
//!
//! tantivy's single-threaded writer (`SingleSegmentIndexWriter`, the only writer that works on
//! wasm32) and its segment merger each create a *new* index: they refuse a directory that already
//! holds a `meta.json`. Segment files are named by unique segment ids, so only the index-level
//! files collide. This view sends those (`meta.json`, `.managed.json`) to a private directory
//! and everything else to the shared one, where the combined index (whose `meta.json` we write
//! ourselves) finds the segments without copying a byte.

use std::io;
use std::path::Path;
use std::sync::Arc;

use tantivy::Directory;
use tantivy::directory::error::{DeleteError, OpenReadError, OpenWriteError};
use tantivy::directory::{FileHandle, RamDirectory, WatchCallback, WatchHandle, WritePtr};

#[derive(Debug, Clone)]
pub(crate) struct SegmentOnlyDir {
    shared: RamDirectory,
    private: RamDirectory,
}

impl SegmentOnlyDir {
    pub(crate) fn new(shared: RamDirectory) -> SegmentOnlyDir {
        SegmentOnlyDir {
            shared,
            private: RamDirectory::create(),
        }
    }

    fn route(&self, path: &Path) -> &RamDirectory {
        match path.to_str() {
            Some("meta.json" | ".managed.json") => &self.private,
            _ => &self.shared,
        }
    }
}

impl Directory for SegmentOnlyDir {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.route(path).get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.route(path).delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.route(path).exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        self.route(path).open_write(path)
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.route(path).atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.route(path).atomic_write(path, data)
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.private.watch(watch_callback)
    }
}
