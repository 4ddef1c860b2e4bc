//! A simulated disk for crash and fault tests.
//!
//! [`SimDisk`] keeps, for every file, the bytes that are durable apart from the writes made since
//! the file was last synced, and for every directory the durable names apart from the creates,
//! renames and removes made since the directory was last synced. [`SimDisk::crash`] throws the
//! unsynced part away (all of it, a prefix of it, or all but a torn tail of the last write,
//! deterministically from a seed) and leaves the disk as a restarted machine would find it.
//!
//! Every operation counts as one IO ([`SimDisk::io_count`]), so a test can run a workload once,
//! read the count, and then rerun it with a crash after every single IO
//! ([`SimDisk::crash_after`]) or with any one IO failing ([`SimDisk::fail_nth_io`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::disk::{Disk, DiskFile};

/// What survives of unsynced data in a [`SimDisk::crash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Nothing that was not synced survives: the strictest reading of POSIX.
    DropUnsynced,
    /// Everything survives, as if the OS had flushed it all just before the power went.
    KeepUnsynced,
    /// Per file, a prefix of its unsynced writes survives, and per directory a prefix of its
    /// unsynced name changes; the lengths are drawn from `seed`.
    KeepPrefix {
        /// Seed of the deterministic draw.
        seed: u64,
    },
    /// Every unsynced write and name change survives except the last write to each file, of
    /// which a prefix of a length drawn from `seed` survives: a torn write.
    Tear {
        /// Seed of the deterministic draw.
        seed: u64,
    },
    /// Any subset of the unsynced name changes survives, drawn from `seed` (POSIX orders none of
    /// them before a directory sync), and per file a prefix of its unsynced writes as with
    /// `KeepPrefix`.
    Reorder {
        /// Seed of the deterministic draw.
        seed: u64,
    },
}

/// A simulated disk. Clones share one disk, so a test keeps a clone to crash it or inject faults
/// while a storage owns another.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<SimState>>,
}

#[derive(Debug, Default, Clone)]
struct SimState {
    dirs: BTreeSet<PathBuf>,
    /// Names as the running system sees them.
    names: BTreeMap<PathBuf, u64>,
    /// Names as they would be after a crash, before unsynced changes.
    durable_names: BTreeMap<PathBuf, u64>,
    /// Name changes not yet made durable, in order.
    name_log: Vec<NameOp>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    io_count: u64,
    crash_after: Option<u64>,
    fail: Option<(u64, bool)>,
    locks: BTreeMap<PathBuf, u64>,
    next_lock: u64,
    /// Bumped by every crash, so that handles from before it stop working.
    generation: u64,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<DataOp>,
}

#[derive(Debug, Clone)]
enum DataOp {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Clone)]
enum NameOp {
    Link { path: PathBuf, inode: u64 },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl NameOp {
    fn in_dir(&self, dir: &Path) -> bool {
        let (NameOp::Link { path, .. } | NameOp::Unlink { path } | NameOp::Rename { to: path, .. }) =
            self;
        path.parent() == Some(dir)
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            NameOp::Link { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            NameOp::Unlink { path } => {
                names.remove(path);
            }
            NameOp::Rename { from, to } => {
                if let Some(inode) = names.remove(from) {
                    names.insert(to.clone(), inode);
                }
            }
        }
    }
}

impl DataOp {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            DataOp::Write { offset, data } => {
                let end = offset + data.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[*offset..end].copy_from_slice(data);
            }
            DataOp::SetLen(len) => bytes.resize(*len, 0),
        }
    }
}

/// splitmix64: a small deterministic generator for crash draws.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A number in `0..=max` drawn from `seed` and `salt`.
fn draw(seed: u64, salt: u64, max: usize) -> usize {
    let r = mix(seed ^ mix(salt));
    (r % (max as u64 + 1)) as usize
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// IO operations done so far (every [`Disk`] and [`DiskFile`] call counts one, failed or not).
    pub fn io_count(&self) -> u64 {
        self.state().io_count
    }

    /// Cuts the power after IO number `n` (counted by [`SimDisk::io_count`], from the start):
    /// every later IO fails and changes nothing. Call [`SimDisk::crash`] to restart.
    pub fn crash_after(&self, n: u64) {
        self.state().crash_after = Some(n);
    }

    /// Makes IO number `n` fail (counting from the start as [`SimDisk::io_count`] does). With
    /// `persistent`, every IO after it fails too. A failing write writes the first half of its
    /// data first, as a short write would; a failing sync makes nothing durable.
    pub fn fail_nth_io(&self, n: u64, persistent: bool) {
        self.state().fail = Some((n, persistent));
    }

    /// Removes any injected failure and restores the power, without crashing.
    pub fn clear_faults(&self) {
        let mut s = self.state();
        s.fail = None;
        s.crash_after = None;
    }

    /// Simulates a power cut and restart: unsynced data and names are lost as `mode` says, locks
    /// are released, injected faults are cleared. Handles opened before the crash stop working.
    pub fn crash(&self, mode: CrashMode) {
        let mut s = self.state();
        let s = &mut *s;
        let log = std::mem::take(&mut s.name_log);
        let n = log.len();
        let seed = match mode {
            CrashMode::DropUnsynced | CrashMode::KeepUnsynced => 0,
            CrashMode::KeepPrefix { seed }
            | CrashMode::Tear { seed }
            | CrashMode::Reorder { seed } => seed,
        };
        let prefix = draw(seed, u64::MAX, n);
        for (i, op) in log.into_iter().enumerate() {
            let survives = match mode {
                CrashMode::DropUnsynced => false,
                CrashMode::KeepUnsynced | CrashMode::Tear { .. } => true,
                CrashMode::KeepPrefix { .. } => i < prefix,
                CrashMode::Reorder { .. } => mix(seed ^ mix(i as u64 ^ 0xabcd)) & 1 == 1,
            };
            if survives {
                op.apply(&mut s.durable_names);
            }
        }
        s.names = s.durable_names.clone();
        let live: BTreeSet<u64> = s.names.values().copied().collect();
        s.inodes.retain(|id, _| live.contains(id));
        for (&id, inode) in &mut s.inodes {
            let pending = std::mem::take(&mut inode.pending);
            let n = pending.len();
            let keep = match mode {
                CrashMode::DropUnsynced => 0,
                CrashMode::KeepUnsynced | CrashMode::Tear { .. } => n,
                CrashMode::KeepPrefix { .. } | CrashMode::Reorder { .. } => draw(seed, id, n),
            };
            for (i, op) in pending.into_iter().take(keep).enumerate() {
                match (mode, op) {
                    (CrashMode::Tear { seed }, DataOp::Write { offset, mut data })
                        if i + 1 == n =>
                    {
                        data.truncate(draw(seed, id, data.len()));
                        DataOp::Write { offset, data }.apply(&mut inode.durable);
                    }
                    (_, op) => op.apply(&mut inode.durable),
                }
            }
            inode.current = inode.durable.clone();
        }
        s.locks.clear();
        s.generation += 1;
        s.crash_after = None;
        s.fail = None;
    }

    /// An independent copy of this disk as it is now (unsynced data included, locks not), so a
    /// test can try several futures from one state.
    pub fn fork(&self) -> SimDisk {
        let mut state = self.state().clone();
        state.locks.clear();
        SimDisk {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Names of the files in `dir` as the running system sees them, sorted.
    pub fn files(&self, dir: &Path) -> Vec<String> {
        let s = self.state();
        s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect()
    }

    /// A file's contents as the running system sees them.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state();
        let id = s.names.get(path)?;
        Some(s.inodes.get(id)?.current.clone())
    }

    /// Replaces (or creates) a file with `data`, durably and without counting an IO: for tests
    /// that plant damaged files. The parent directory is created if needed.
    pub fn write_file(&self, path: &Path, data: &[u8]) {
        let mut s = self.state();
        if let Some(parent) = path.parent() {
            s.dirs.insert(parent.to_path_buf());
        }
        let id = match s.names.get(path) {
            Some(&id) => id,
            None => {
                let id = s.next_inode;
                s.next_inode += 1;
                s.names.insert(path.to_path_buf(), id);
                id
            }
        };
        s.durable_names.insert(path.to_path_buf(), id);
        s.inodes.insert(
            id,
            Inode {
                durable: data.to_vec(),
                current: data.to_vec(),
                pending: Vec::new(),
            },
        );
    }
}

impl SimState {
    /// Counts one IO and says whether it may happen. `Err(partial)`: it fails, and a write may
    /// still apply its first half when `partial`.
    fn begin(&mut self, op: &str) -> Result<(), (io::Error, bool)> {
        self.io_count += 1;
        let n = self.io_count;
        if self.crash_after.is_some_and(|k| n > k) {
            return Err((
                io::Error::other(format!("simulated power loss before IO {n} ({op})")),
                false,
            ));
        }
        match self.fail {
            Some((target, persistent)) if n == target || (persistent && n > target) => Err((
                io::Error::other(format!("simulated failure of IO {n} ({op})")),
                true,
            )),
            _ => Ok(()),
        }
    }

    fn check(&mut self, op: &str) -> io::Result<()> {
        self.begin(op).map_err(|(e, _)| e)
    }

    fn require_dir(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if self.dirs.contains(dir) => Ok(()),
            _ => Err(not_found(path)),
        }
    }

    fn link_new(&mut self, path: &Path) -> u64 {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::default());
        self.names.insert(path.to_path_buf(), id);
        self.name_log.push(NameOp::Link {
            path: path.to_path_buf(),
            inode: id,
        });
        id
    }
}

impl Disk for SimDisk {
    type File = SimFile;
    type Lock = SimLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.check("create_dir_all")?;
        // Directories are durable at once: the storage creates its directory only at open.
        for d in dir.ancestors() {
            s.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state();
        s.check("list_dir")?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        drop(s);
        Ok(self.files(dir))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut s = self.state();
        s.check("read")?;
        let id = *s.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(s.inodes
            .get(&id)
            .map(|i| i.current.clone())
            .unwrap_or_default())
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.state();
        s.check("create")?;
        s.require_dir(path)?;
        let inode = match s.names.get(path).copied() {
            Some(id) => {
                let inode = s.inodes.entry(id).or_default();
                inode.current.clear();
                inode.pending.push(DataOp::SetLen(0));
                id
            }
            None => s.link_new(path),
        };
        Ok(SimFile {
            disk: self.clone(),
            inode,
            path: path.to_path_buf(),
            generation: s.generation,
        })
    }

    fn open_append(&self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.state();
        s.check("open_append")?;
        let inode = *s.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(SimFile {
            disk: self.clone(),
            inode,
            path: path.to_path_buf(),
            generation: s.generation,
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.check("rename")?;
        s.require_dir(to)?;
        let id = s.names.remove(from).ok_or_else(|| not_found(from))?;
        s.names.insert(to.to_path_buf(), id);
        s.name_log.push(NameOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.check("remove")?;
        s.names.remove(path).ok_or_else(|| not_found(path))?;
        s.name_log.push(NameOp::Unlink {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        s.check("sync_dir")?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let s = &mut *s;
        let (now, later): (Vec<NameOp>, Vec<NameOp>) =
            s.name_log.drain(..).partition(|op| op.in_dir(dir));
        for op in now {
            op.apply(&mut s.durable_names);
        }
        s.name_log = later;
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<SimLock> {
        let mut s = self.state();
        s.check("lock")?;
        if s.locks.contains_key(path) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        s.require_dir(path)?;
        if !s.names.contains_key(path) {
            s.link_new(path);
        }
        let id = s.next_lock;
        s.next_lock += 1;
        s.locks.insert(path.to_path_buf(), id);
        Ok(SimLock {
            disk: self.clone(),
            path: path.to_path_buf(),
            id,
        })
    }
}

/// An open file of [`SimDisk`].
#[derive(Debug)]
pub struct SimFile {
    disk: SimDisk,
    inode: u64,
    path: PathBuf,
    generation: u64,
}

impl SimFile {
    fn with_inode<T>(&mut self, op: &str, f: impl FnOnce(&mut Inode, bool) -> T) -> io::Result<T> {
        let mut s = self.disk.state();
        let outcome = s.begin(op);
        let (failed, partial) = match outcome {
            Ok(()) => (None, true),
            Err((e, partial)) => (Some(e), partial),
        };
        if !partial {
            return Err(failed.unwrap_or_else(|| io::Error::other("power lost")));
        }
        if s.generation != self.generation {
            return Err(io::Error::other("file handle from before a crash"));
        }
        let inode = s
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| not_found(&self.path))?;
        let value = f(inode, failed.is_some());
        match failed {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

impl DiskFile for SimFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.with_inode("append", |inode, failing| {
            let data = if failing {
                &data[..data.len() / 2]
            } else {
                data
            };
            let op = DataOp::Write {
                offset: inode.current.len(),
                data: data.to_vec(),
            };
            op.apply(&mut inode.current);
            inode.pending.push(op);
        })
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.with_inode("set_len", |inode, failing| {
            if !failing {
                let op = DataOp::SetLen(usize::try_from(len).unwrap_or(usize::MAX));
                op.apply(&mut inode.current);
                inode.pending.push(op);
            }
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        self.with_inode("sync", |inode, failing| {
            if !failing {
                for op in inode.pending.drain(..) {
                    op.apply(&mut inode.durable);
                }
            }
        })
    }
}

/// The lock of [`SimDisk`], held while this lives.
#[derive(Debug)]
pub struct SimLock {
    disk: SimDisk,
    path: PathBuf,
    id: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.disk.state();
        if s.locks.get(&self.path) == Some(&self.id) {
            s.locks.remove(&self.path);
        }
    }
}
