//! Node persistence: the native file adapter (`statemesh-fs`) running over node:fs, through the
//! small set of synchronous file primitives in `js/node-fs.cjs`. Same code, same bytes: a
//! directory written from Node opens natively and the other way round.

use std::cell::RefCell;
use std::io;
use std::path::Path;

use statemesh_core::Storage;
use statemesh_fs::{Disk, DiskFile, FsOptions, FsStorage};
use wasm_bindgen::prelude::*;

use crate::error::{HostError, Result};

#[wasm_bindgen]
extern "C" {
    /// The object `js/node-fs.cjs` exports.
    pub type NodeFs;
    #[wasm_bindgen(method, catch)]
    fn mkdirp(this: &NodeFs, dir: &str) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn list(this: &NodeFs, dir: &str) -> std::result::Result<js_sys::Array, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn read(this: &NodeFs, path: &str) -> std::result::Result<js_sys::Uint8Array, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn create(this: &NodeFs, path: &str) -> std::result::Result<f64, JsValue>;
    #[wasm_bindgen(method, catch, js_name = openExisting)]
    fn open_existing(this: &NodeFs, path: &str) -> std::result::Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn size(this: &NodeFs, fd: f64) -> std::result::Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn write(
        this: &NodeFs,
        fd: f64,
        data: &[u8],
        position: f64,
    ) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn truncate(this: &NodeFs, fd: f64, len: f64) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn sync(this: &NodeFs, fd: f64) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &NodeFs, fd: f64) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn rename(this: &NodeFs, from: &str, to: &str) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn remove(this: &NodeFs, path: &str) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch, js_name = syncDir)]
    fn sync_dir(this: &NodeFs, dir: &str) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn lock(this: &NodeFs, path: &str) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn unlock(this: &NodeFs, path: &str) -> std::result::Result<(), JsValue>;
}

thread_local! {
    static FS: RefCell<Option<NodeFs>> = const { RefCell::new(None) };
}

/// Registers the file primitives; the package's Node entry calls it at load.
#[wasm_bindgen(js_name = __registerNodeFs)]
pub fn register_node_fs(fs: NodeFs) {
    FS.with(|f| *f.borrow_mut() = Some(fs));
}

fn registered() -> bool {
    FS.with(|f| f.borrow().is_some())
}

/// Opens the store directory `path` with the native file adapter over node:fs.
pub(crate) fn open(path: &str) -> Result<Box<dyn Storage>> {
    if !registered() {
        return Err(HostError::Unsupported(
            "`path` stores need Node's file system; in a browser use a memory store".into(),
        ));
    }
    let storage = FsStorage::open_with_disk(NodeDisk, path, FsOptions::default())
        .map_err(HostError::Storage)?;
    Ok(Box::new(storage))
}

/// A JS exception as an io::Error, keeping Node's error code as the kind where one fits.
fn io_error(e: JsValue) -> io::Error {
    let code = js_sys::Reflect::get(&e, &"code".into())
        .ok()
        .and_then(|c| c.as_string())
        .unwrap_or_default();
    let message = js_sys::Reflect::get(&e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    let kind = match code.as_str() {
        "ENOENT" => io::ErrorKind::NotFound,
        "EEXIST" => io::ErrorKind::AlreadyExists,
        "EWOULDBLOCK" | "EAGAIN" => io::ErrorKind::WouldBlock,
        "EACCES" | "EPERM" => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, message)
}

fn with_fs<R>(op: impl FnOnce(&NodeFs) -> std::result::Result<R, JsValue>) -> io::Result<R> {
    FS.with(|f| match f.borrow().as_ref() {
        Some(fs) => op(fs).map_err(io_error),
        None => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "node:fs is not registered",
        )),
    })
}

fn text(path: &Path) -> io::Result<&str> {
    path.to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path is not valid UTF-8"))
}

/// [`Disk`] over node:fs. Holds nothing: the primitives live in a thread-local, registered by
/// the package's Node entry.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeDisk;

/// A file open for appending, by descriptor; writes go at an explicit position so a truncation
/// moves where the next one lands.
#[derive(Debug)]
pub struct NodeFile {
    fd: f64,
    position: u64,
}

/// The Node lock on a store directory; released when dropped.
#[derive(Debug)]
pub struct NodeLock {
    path: String,
}

impl Disk for NodeDisk {
    type File = NodeFile;
    type Lock = NodeLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = text(dir)?;
        with_fs(|fs| fs.mkdirp(dir))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = text(dir)?;
        let names = with_fs(|fs| fs.list(dir))?;
        Ok(names.iter().filter_map(|n| n.as_string()).collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let path = text(path)?;
        Ok(with_fs(|fs| fs.read(path))?.to_vec())
    }

    fn create(&self, path: &Path) -> io::Result<NodeFile> {
        let path = text(path)?;
        let fd = with_fs(|fs| fs.create(path))?;
        Ok(NodeFile { fd, position: 0 })
    }

    fn open_append(&self, path: &Path) -> io::Result<NodeFile> {
        let path = text(path)?;
        let fd = with_fs(|fs| fs.open_existing(path))?;
        // Built first, so the descriptor is closed if reading the size fails.
        let mut file = NodeFile { fd, position: 0 };
        file.position = with_fs(|fs| fs.size(fd))? as u64;
        Ok(file)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (text(from)?, text(to)?);
        with_fs(|fs| fs.rename(from, to))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let path = text(path)?;
        with_fs(|fs| fs.remove(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = text(dir)?;
        with_fs(|fs| fs.sync_dir(dir))
    }

    fn lock(&self, path: &Path) -> io::Result<NodeLock> {
        let path = text(path)?;
        with_fs(|fs| fs.lock(path))?;
        Ok(NodeLock {
            path: path.to_owned(),
        })
    }
}

impl DiskFile for NodeFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let (fd, at) = (self.fd, self.position as f64);
        with_fs(|fs| fs.write(fd, data, at))?;
        self.position += data.len() as u64;
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let fd = self.fd;
        with_fs(|fs| fs.truncate(fd, len as f64))?;
        self.position = len;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let fd = self.fd;
        with_fs(|fs| fs.sync(fd))
    }
}

impl Drop for NodeFile {
    fn drop(&mut self) {
        // Closing a descriptor reports nothing useful after the data was synced.
        let fd = self.fd;
        let _ = with_fs(|fs| fs.close(fd));
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        let path = &self.path;
        let _ = with_fs(|fs| fs.unlock(path));
    }
}
