//! The file-system operations the storage needs, and their `std::fs` implementation.
//!
//! [`FsStorage`](crate::FsStorage) does all its IO through [`Disk`], so tests can swap in
//! [`SimDisk`](crate::SimDisk), which loses unsynced data on a simulated crash and fails chosen
//! operations.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};

/// File-system operations, path based, plus open files for appending.
///
/// Durability rules the storage relies on (POSIX's): data written to a file is durable only after
/// [`DiskFile::sync`]; creating, renaming and removing names in a directory is durable only after
/// [`Disk::sync_dir`] on that directory.
pub trait Disk: Send + Sync + fmt::Debug + 'static {
    /// An open file that writes at its end.
    type File: DiskFile;
    /// Holds an exclusive lock until dropped.
    type Lock: Send + fmt::Debug;

    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole contents of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates a file (truncating any existing one) and opens it for appending.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the names in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing). A lock that is already held, by
    /// this process or another, fails with [`io::ErrorKind::WouldBlock`].
    fn lock(&self, path: &Path) -> io::Result<Self::Lock>;
}

/// A file open for appending.
pub trait DiskFile: Send + fmt::Debug {
    /// Writes all of `data` at the end of the file.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Writes all of `parts`, in order, at the end of the file, as one append of their
    /// concatenation. The default joins them and calls [`DiskFile::append`]; [`StdFile`] hands
    /// them to `writev` (the log writes a frame's head and the records' own buffers this way).
    fn append_vectored(&mut self, parts: &mut [IoSlice<'_>]) -> io::Result<()> {
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        self.append(&joined)
    }
    /// Truncates (or extends) the file to `len` bytes; later appends go after them.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes the file's data and length durable.
    fn sync(&mut self) -> io::Result<()>;
}

/// [`Disk`] on the real file system through `std::fs`.
///
/// `sync` is `fdatasync` (`File::sync_data`), which also makes a grown file's length durable;
/// `sync_dir` opens the directory and calls `sync_all` on it; the lock is `File::try_lock` (an
/// `flock` on Unix, so a second open of the same directory conflicts even inside one process).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdDisk;

/// An open file of [`StdDisk`].
#[derive(Debug)]
pub struct StdFile {
    file: File,
}

/// The lock file of [`StdDisk`], locked while this lives.
#[derive(Debug)]
pub struct StdLock {
    _file: File,
    _path: PathBuf,
}

impl Disk for StdDisk {
    type File = StdFile;
    type Lock = StdLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            // Names that are not UTF-8 are none of ours.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create(&self, path: &Path) -> io::Result<StdFile> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        file.set_len(0)?;
        Ok(StdFile { file })
    }

    fn open_append(&self, path: &Path) -> io::Result<StdFile> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(StdFile { file })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<StdLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(StdLock {
                _file: file,
                _path: path.to_path_buf(),
            }),
            Err(TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

impl DiskFile for StdFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    fn append_vectored(&mut self, mut parts: &mut [IoSlice<'_>]) -> io::Result<()> {
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            match self.file.write_vectored(parts) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut parts, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}
