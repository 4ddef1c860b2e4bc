//! [`FsStorage`]: the write-ahead log and snapshots in one directory.

use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use statemesh_core::search::{ImageSetError, IndexImage, decode_image_set, encode_image_set};
use statemesh_core::storage::check_images_revision;
use statemesh_core::{EncodedLog, LogBytes, Recovered, Storage, StorageError};

use crate::disk::{Disk, DiskFile, StdDisk};
use crate::format::{self, HeaderCheck, LOCK_FILE, SEGMENT_HEADER_LEN, SnapshotError, TMP_SUFFIX};

/// Default size past which the log rolls to a new segment: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// When appended records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Every `append` fsyncs before it returns: `Ok` means on stable storage. The host batches
    /// concurrent writers into one `append`, so one fsync serves them all (group commit).
    #[default]
    Always,
    /// `append` fsyncs when the last sync is older than this many milliseconds; the host also
    /// calls `sync` on a timer. A crash loses at most about that much acknowledged data.
    EveryMillis(u64),
    /// Only `sync`, `write_snapshot`, `close` (and rolling to a new segment) fsync.
    Never,
}

/// Options of [`FsStorage`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsOptions {
    /// When appends are fsynced.
    pub sync: SyncPolicy,
    /// A segment that has reached this many bytes takes no more frames; the next goes to a new
    /// segment. A single frame larger than this gets a segment of its own.
    pub segment_bytes: u64,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            sync: SyncPolicy::Always,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

impl FsOptions {
    /// Sets the sync policy.
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }

    /// Sets the segment size limit.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }
}

/// Storage in a directory of files: a checksummed write-ahead log in segments plus snapshots.
/// See `docs/storage.md` for the layout, the recovery rules and the durability argument.
///
/// The IO is blocking std IO done directly inside the async methods: drive it from a thread that
/// may block (the native host's committer thread), not from an async executor's worker.
///
/// Usage: [`FsStorage::open`] (takes the directory's lock), then [`Storage::load`] once (recovers
/// and repairs a torn tail), then `append` / `sync` / `write_snapshot`. Writing before `load` is
/// refused. After any failed write, sync or rename the storage is poisoned: every later call
/// returns [`StorageError::Poisoned`]; drop it and open the directory again.
#[derive(Debug)]
pub struct FsStorage<D: Disk = StdDisk> {
    disk: D,
    dir: PathBuf,
    options: FsOptions,
    lock: Option<D::Lock>,
    loaded: bool,
    poisoned: bool,
    /// Highest revision appended, recovered or snapshotted.
    last_revision: Option<u64>,
    snapshot_revision: Option<u64>,
    /// The segments on disk, oldest first; the active one (if any) is the last.
    segments: Vec<Segment>,
    active: Option<Active<D::File>>,
    /// The active segment holds data that was not fsynced.
    file_unsynced: bool,
    /// Names in the directory changed since it was last fsynced.
    dir_unsynced: bool,
    /// When the log was last synced; kept only under `SyncPolicy::EveryMillis`, the one policy
    /// that reads a clock, so the other policies run where `Instant` does not (wasm32).
    last_sync: Option<Instant>,
    /// A frame's header and index (after a segment header when the frame starts a segment),
    /// reused from append to append; the records are written from the caller's buffers.
    head: Vec<u8>,
}

/// A frame head larger than this is given back after the append (a bulk load's).
const KEEP_HEAD: usize = 1 << 20;

/// Largest record: its frame's body (the record and its index entry) must fit a `u32`.
const MAX_RECORD: usize = u32::MAX as usize - 64;

/// Records to append: a buffer holding records back to back, and each record's revision and
/// end offset in it. An engine's encoded log is one run; a [`LogBytes`] is a run of one.
type Run<'a> = (&'a [u8], &'a [(u64, usize)]);

/// Moves `next` (run, record) past runs with no record left and returns the revision of the
/// record it then points at; `None` when no record is left.
fn next_record(runs: &[Run<'_>], next: &mut (usize, usize)) -> Option<u64> {
    while let Some((_, ends)) = runs.get(next.0) {
        if let Some(&(revision, _)) = ends.get(next.1) {
            return Some(revision);
        }
        *next = (next.0 + 1, 0);
    }
    None
}

/// The records of one frame read back: one for a version-1 frame, any number for version 2.
enum Records<'a> {
    One(Option<(u64, &'a [u8])>),
    Group(format::GroupRecords<'a>),
}

impl<'a> Iterator for Records<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<(u64, &'a [u8])> {
        match self {
            Records::One(one) => one.take(),
            Records::Group(records) => records.next(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    first: u64,
    last: Option<u64>,
}

#[derive(Debug)]
struct Active<F> {
    file: F,
    path: PathBuf,
    len: u64,
}

/// The error of a failed IO call. The path is rendered only on failure: rendering it up front
/// cost every append round an allocation and about 1,200 instructions of formatting.
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |e| StorageError::Io {
        op,
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The time of a sync, for the one policy that needs it.
fn sync_clock(options: &FsOptions) -> Option<Instant> {
    matches!(options.sync, SyncPolicy::EveryMillis(_)).then(Instant::now)
}

impl FsStorage<StdDisk> {
    /// Opens (creating it if needed) the store directory `dir` on the real file system: takes
    /// its lock and removes leftover temp files. Call [`Storage::load`] next.
    pub fn open(dir: impl AsRef<Path>, options: FsOptions) -> Result<Self, StorageError> {
        Self::open_with_disk(StdDisk, dir, options)
    }
}

impl<D: Disk> FsStorage<D> {
    /// Like [`FsStorage::open`], on any [`Disk`] (a [`SimDisk`](crate::SimDisk) in tests).
    ///
    /// Fails with [`StorageError::Locked`] if the directory is open already, in this process or
    /// another.
    pub fn open_with_disk(
        disk: D,
        dir: impl AsRef<Path>,
        options: FsOptions,
    ) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        disk.create_dir_all(&dir)
            .map_err(io_err("create_dir_all", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = match disk.lock(&lock_path) {
            Ok(lock) => lock,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(StorageError::Locked {
                    path: dir.display().to_string(),
                });
            }
            Err(e) => return Err(io_err("lock", &lock_path)(e)),
        };
        for name in disk.list_dir(&dir).map_err(io_err("list_dir", &dir))? {
            if name.ends_with(TMP_SUFFIX) {
                let path = dir.join(&name);
                disk.remove(&path).map_err(io_err("remove", &path))?;
            }
        }
        let last_sync = sync_clock(&options);
        Ok(FsStorage {
            disk,
            dir,
            options,
            lock: Some(lock),
            loaded: false,
            poisoned: false,
            last_revision: None,
            snapshot_revision: None,
            segments: Vec::new(),
            active: None,
            file_unsynced: false,
            dir_unsynced: false,
            last_sync,
            head: Vec::new(),
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &FsOptions {
        &self.options
    }

    /// Whether an earlier failure poisoned this handle (reopen to recover).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The underlying disk.
    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// Syncs everything and releases the lock.
    pub fn close(mut self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        let result = self.sync_now();
        self.poison(result)?;
        self.active = None;
        self.lock = None;
        Ok(())
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A caller mistake, reported without poisoning.
    fn misuse(&self, op: &'static str, message: String) -> StorageError {
        StorageError::Invalid {
            op,
            reason: message,
        }
    }

    fn check_writable(&self, op: &'static str) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        if !self.loaded {
            return Err(self.misuse(op, "call load() before writing".into()));
        }
        Ok(())
    }

    fn poison<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if result.is_err() {
            self.poisoned = true;
            self.active = None;
        }
        result
    }

    // ---- load ----

    fn load_now(&mut self) -> Result<Recovered, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        self.loaded = false;
        self.active = None;
        self.segments.clear();
        let result = self.recover();
        match &result {
            Ok(_) => self.loaded = true,
            // A failed IO may have left a repair half done: reopen.
            Err(StorageError::Io { .. }) => self.poisoned = true,
            Err(_) => {}
        }
        result
    }

    fn recover(&mut self) -> Result<Recovered, StorageError> {
        let dir = self.dir.clone();
        let names = self.disk.list_dir(&dir).map_err(io_err("list_dir", &dir))?;
        let mut segment_firsts: Vec<u64> = names
            .iter()
            .filter_map(|n| format::parse_segment_name(n))
            .collect();
        let mut snapshots: Vec<u64> = names
            .iter()
            .filter_map(|n| format::parse_snapshot_name(n))
            .collect();
        segment_firsts.sort_unstable();
        snapshots.sort_unstable();
        let mut repairs = Vec::new();

        // The newest snapshot must be intact: it may already have replaced the log it covers.
        let mut snapshot = None;
        let mut snapshot_revision = None;
        if let Some((&revision, older)) = snapshots.split_last() {
            let path = self.path_of(&format::snapshot_name(revision));
            let data = self.disk.read(&path).map_err(io_err("read", &path))?;
            // Hand the file's own buffer on, minus its header, rather than copying the payload.
            match format::decode_snapshot(&data, revision).map(|p| data.len() - p.len()) {
                Ok(header_len) => {
                    let mut data = data;
                    data.drain(..header_len);
                    snapshot = Some(data);
                }
                Err(SnapshotError::Corrupt { offset, reason }) => {
                    return Err(StorageError::Corrupt {
                        file: path.display().to_string(),
                        offset,
                        reason,
                    });
                }
                Err(SnapshotError::Unsupported(reason)) => {
                    return Err(StorageError::Unsupported {
                        file: path.display().to_string(),
                        reason,
                    });
                }
            }
            snapshot_revision = Some(revision);
            // Older snapshots left by a crash during an earlier snapshot's cleanup.
            for &old in older {
                let path = self.path_of(&format::snapshot_name(old));
                self.disk.remove(&path).map_err(io_err("remove", &path))?;
            }
        }

        // Segments wholly covered by the snapshot (every revision below the next segment's first
        // is at most the snapshot's) are not needed: finish an interrupted cleanup.
        let mut kept = Vec::with_capacity(segment_firsts.len());
        for (i, &first) in segment_firsts.iter().enumerate() {
            let covered = match (snapshot_revision, segment_firsts.get(i + 1)) {
                (Some(s), Some(&next)) => next <= s.saturating_add(1),
                _ => false,
            };
            if covered {
                let path = self.path_of(&format::segment_name(first));
                self.disk.remove(&path).map_err(io_err("remove", &path))?;
            } else {
                kept.push(first);
            }
        }

        let mut records = Vec::new();
        let mut prev: Option<u64> = None;
        let count = kept.len();
        for (i, &first) in kept.iter().enumerate() {
            let is_last = i + 1 == count;
            let path = self.path_of(&format::segment_name(first));
            let file = path.display().to_string();
            let data = self.disk.read(&path).map_err(io_err("read", &path))?;
            let version = match format::check_segment_header(&data) {
                HeaderCheck::Ok(version) => version,
                HeaderCheck::Short | HeaderCheck::BadMagic
                    if is_last
                        && (data.len() < SEGMENT_HEADER_LEN || data.iter().all(|&b| b == 0)) =>
                {
                    // Torn while it was being created: nothing in it was ever acknowledged.
                    self.disk.remove(&path).map_err(io_err("remove", &path))?;
                    repairs.push(format!(
                        "removed {file}: a segment torn at creation ({} bytes, no complete header)",
                        data.len()
                    ));
                    continue;
                }
                HeaderCheck::Short => {
                    return Err(StorageError::Corrupt {
                        file,
                        offset: 0,
                        reason: format!("short segment header ({} bytes)", data.len()),
                    });
                }
                HeaderCheck::BadMagic => {
                    return Err(StorageError::Corrupt {
                        file,
                        offset: 0,
                        reason: "bad segment magic".into(),
                    });
                }
                HeaderCheck::Unsupported(reason) => {
                    return Err(StorageError::Unsupported { file, reason });
                }
            };

            let mut at = SEGMENT_HEADER_LEN;
            let mut seg_last: Option<u64> = None;
            let mut damage: Option<String> = None;
            while at < data.len() {
                let parsed = if version == format::FORMAT_VERSION {
                    format::parse_frame(&data, at).map(|f| {
                        let one = (f.revision, f.payload);
                        (f.revision, f.end, Records::One(Some(one)))
                    })
                } else {
                    format::parse_group(&data, at)
                        .map(|g| (g.first, g.end, Records::Group(g.records())))
                };
                match parsed {
                    Ok((frame_first, end, frame_records)) => {
                        let corrupt = |reason: String| StorageError::Corrupt {
                            file: file.clone(),
                            offset: at as u64,
                            reason,
                        };
                        if seg_last.is_none() && frame_first != first {
                            return Err(corrupt(format!(
                                "first frame has revision {frame_first}, the segment's name says {first}"
                            )));
                        }
                        for (revision, payload) in frame_records {
                            if let Some(p) = prev
                                && revision <= p
                            {
                                return Err(corrupt(format!(
                                    "revision {revision} does not follow revision {p}"
                                )));
                            }
                            prev = Some(revision);
                            seg_last = Some(revision);
                            if snapshot_revision.is_none_or(|s| revision > s) {
                                records.push(LogBytes {
                                    revision,
                                    bytes: payload.to_vec(),
                                });
                            }
                        }
                        at = end;
                    }
                    Err(reason) => {
                        let after = prev
                            .map_or(first.saturating_sub(1), |p| p.max(first.saturating_sub(1)));
                        if !is_last
                            || format::valid_frame_after(&data, version, at, after).is_some()
                        {
                            let reason = if is_last {
                                format!("{reason}, and valid frames follow")
                            } else {
                                format!("{reason} (not the last segment)")
                            };
                            return Err(StorageError::Corrupt {
                                file,
                                offset: at as u64,
                                reason,
                            });
                        }
                        damage = Some(reason);
                        break;
                    }
                }
            }

            if seg_last.is_none() {
                // No complete frame: nothing to keep.
                self.disk.remove(&path).map_err(io_err("remove", &path))?;
                if let Some(reason) = damage {
                    repairs.push(format!(
                        "removed {file}: its only frame, at byte {at}, was torn ({reason})"
                    ));
                }
                continue;
            }
            self.segments.push(Segment {
                first,
                last: seg_last,
            });
            if is_last {
                let mut handle = self
                    .disk
                    .open_append(&path)
                    .map_err(io_err("open", &path))?;
                if let Some(reason) = damage {
                    handle
                        .set_len(at as u64)
                        .map_err(io_err("truncate", &path))?;
                    repairs.push(format!(
                        "truncated a torn tail of {file} at byte {at} ({} bytes dropped: {reason})",
                        data.len() - at
                    ));
                }
                // Whatever a previous process left unsynced is made durable before anything is
                // built on it.
                handle.sync().map_err(io_err("fsync", &path))?;
                // A version-1 segment takes no frames of this build's version: the next
                // append starts a new segment.
                if version == format::SEGMENT_VERSION && (at as u64) < self.options.segment_bytes {
                    self.active = Some(Active {
                        file: handle,
                        path,
                        len: at as u64,
                    });
                }
            }
        }
        self.disk
            .sync_dir(&dir)
            .map_err(io_err("fsync_dir", &dir))?;

        self.snapshot_revision = snapshot_revision;
        self.last_revision = prev.max(snapshot_revision);
        self.file_unsynced = false;
        self.dir_unsynced = false;
        self.last_sync = sync_clock(&self.options);
        Ok(Recovered {
            snapshot,
            records,
            repairs,
        })
    }

    // ---- append and sync ----

    /// An append of `runs`: checks, then frames and writes them. `append` and `append_logs`
    /// both come here.
    fn append_runs(&mut self, runs: &[Run<'_>]) -> Result<(), StorageError> {
        self.check_writable("append")?;
        self.validate(runs)?;
        let result = self.append_now(runs);
        self.poison(result)
    }

    fn validate(&self, runs: &[Run<'_>]) -> Result<(), StorageError> {
        let mut last = self.last_revision;
        for &(bytes, ends) in runs {
            let mut start = 0;
            for &(revision, end) in ends {
                if last.is_some_and(|l| revision <= l) {
                    return Err(self.misuse(
                        "append",
                        format!(
                            "revision {} is not above the last revision {}",
                            revision,
                            last.unwrap_or_default()
                        ),
                    ));
                }
                if end < start || end > bytes.len() {
                    return Err(self.misuse(
                        "append",
                        format!("record of revision {revision} ends outside its buffer"),
                    ));
                }
                if end - start > MAX_RECORD {
                    return Err(self.misuse(
                        "append",
                        format!("record of {} bytes is larger than 4 GiB", end - start),
                    ));
                }
                start = end;
                last = Some(revision);
            }
        }
        Ok(())
    }

    fn append_now(&mut self, runs: &[Run<'_>]) -> Result<(), StorageError> {
        let mut head = std::mem::take(&mut self.head);
        let mut next = (0, 0);
        let mut result = Ok(());
        while result.is_ok()
            && let Some(first) = next_record(runs, &mut next)
        {
            result = self.append_frame(runs, first, &mut next, &mut head);
        }
        if head.capacity() <= KEEP_HEAD {
            head.clear();
            self.head = head;
        }
        result?;
        match self.options.sync {
            SyncPolicy::Always => self.sync_now(),
            SyncPolicy::EveryMillis(ms)
                if self
                    .last_sync
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(ms)) =>
            {
                self.sync_now()
            }
            SyncPolicy::EveryMillis(_) | SyncPolicy::Never => Ok(()),
        }
    }

    /// Writes one frame with the records from `next` (run, record; `first` is that record's
    /// revision) on, in one vectored write
    /// of its header and index (built in `head`) and the records' own bytes, and moves `next`
    /// past them. The frame ends at the first record that takes the segment to its size
    /// limit, or before one that would take its body past [`format::GROUP_BODY_TARGET`].
    fn append_frame(
        &mut self,
        runs: &[Run<'_>],
        first: u64,
        next: &mut (usize, usize),
        head: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let limit = self.options.segment_bytes;
        if self.active.as_ref().is_some_and(|a| a.len >= limit) {
            self.close_active()?;
        }
        let creating = self.active.is_none();
        head.clear();
        if creating {
            head.extend_from_slice(&format::segment_header());
        }
        let frame_at = head.len();
        head.extend_from_slice(&[0; format::GROUP_HEADER_LEN]);
        let start_len = self.active.as_ref().map_or(0, |a| a.len);
        let mut segment_len = start_len + head.len() as u64;

        let mut parts: Vec<&[u8]> = Vec::new();
        let (mut last, mut count, mut body) = (first, 0u32, 0usize);
        while let Some(&(bytes, ends)) = runs.get(next.0) {
            let run_start = next
                .1
                .checked_sub(1)
                .and_then(|i| ends.get(i))
                .map_or(0, |e| e.1);
            let mut record_start = run_start;
            let mut full = false;
            head.reserve(2 * ends.len().saturating_sub(next.1));
            while let Some(&(revision, end)) = ends.get(next.1) {
                let len = end - record_start;
                let before = head.len();
                format::push_index_entry(head, revision - last, len as u64);
                let index_len = head.len() - frame_at - format::GROUP_HEADER_LEN;
                if count > 0
                    && (index_len + body + len > format::GROUP_BODY_TARGET || count == u32::MAX)
                {
                    head.truncate(before);
                    full = true;
                    break;
                }
                segment_len += (head.len() - before + len) as u64;
                (last, count, body) = (revision, count + 1, body + len);
                record_start = end;
                next.1 += 1;
                if segment_len >= limit {
                    full = true;
                    break;
                }
            }
            if record_start > run_start {
                parts.push(bytes.get(run_start..record_start).unwrap_or_default());
            }
            if full {
                break;
            }
            *next = (next.0 + 1, 0);
        }

        let index = head
            .get(frame_at + format::GROUP_HEADER_LEN..)
            .unwrap_or_default();
        let body_len = u32::try_from(index.len() + body).map_err(|_| {
            self.misuse("append", format!("a frame of {} bytes", index.len() + body))
        })?;
        let mut header = format::group_header(body_len, first, count);
        format::seal_group(&mut header, index, parts.iter().copied());
        if let Some(slot) = head.get_mut(frame_at..frame_at + format::GROUP_HEADER_LEN) {
            slot.copy_from_slice(&header);
        }

        if creating {
            let path = self.path_of(&format::segment_name(first));
            let file = self.disk.create(&path).map_err(io_err("create", &path))?;
            self.dir_unsynced = true;
            self.segments.push(Segment { first, last: None });
            self.active = Some(Active { file, path, len: 0 });
        }
        let Some(active) = self.active.as_mut() else {
            return Err(StorageError::Poisoned);
        };
        self.file_unsynced = true;
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
        slices.push(IoSlice::new(head));
        slices.extend(parts.iter().map(|p| IoSlice::new(p)));
        active
            .file
            .append_vectored(&mut slices)
            .map_err(io_err("write", &active.path))?;
        active.len = segment_len;
        if let Some(seg) = self.segments.last_mut() {
            seg.last = Some(last);
        }
        self.last_revision = Some(last);
        Ok(())
    }

    /// Closes the active segment, making it durable first, its name included: a later segment's
    /// records must never be durable while an earlier one's are not.
    fn close_active(&mut self) -> Result<(), StorageError> {
        self.sync_now()?;
        self.active = None;
        Ok(())
    }

    fn sync_now(&mut self) -> Result<(), StorageError> {
        if self.file_unsynced
            && let Some(active) = self.active.as_mut()
        {
            active.file.sync().map_err(io_err("fsync", &active.path))?;
        }
        self.file_unsynced = false;
        if self.dir_unsynced {
            self.disk
                .sync_dir(&self.dir)
                .map_err(io_err("fsync_dir", &self.dir))?;
            self.dir_unsynced = false;
        }
        self.last_sync = sync_clock(&self.options);
        Ok(())
    }

    // ---- snapshots ----

    fn snapshot_now(&mut self, revision: u64, snapshot: &[u8]) -> Result<(), StorageError> {
        // Roll: the next append starts a new segment, so the current one can be dropped too.
        self.close_active()?;

        let name = format::snapshot_name(revision);
        self.replace_file(&name, &format::encode_snapshot(revision, snapshot))?;
        // From here on the new snapshot survives a crash.
        let previous = self.snapshot_revision.replace(revision);
        self.last_revision = self.last_revision.max(Some(revision));

        // Only now may what it covers go.
        let covered = self
            .segments
            .iter()
            .take_while(|s| s.last.is_none_or(|l| l <= revision))
            .count();
        for seg in self.segments.drain(..covered).collect::<Vec<_>>() {
            let path = self.path_of(&format::segment_name(seg.first));
            self.disk.remove(&path).map_err(io_err("remove", &path))?;
        }
        if let Some(old) = previous.filter(|&old| old != revision) {
            let path = self.path_of(&format::snapshot_name(old));
            self.disk.remove(&path).map_err(io_err("remove", &path))?;
        }
        self.disk
            .sync_dir(&self.dir)
            .map_err(io_err("fsync_dir", &self.dir))?;
        self.last_sync = sync_clock(&self.options);
        Ok(())
    }
}

// ---- index images ----

impl<D: Disk> FsStorage<D> {
    /// Writes `bytes` as file `name` so that a crash leaves either no such file (or the one it
    /// replaces) or the whole new one: a temp file, fsync, rename, directory fsync.
    fn replace_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let tmp = self.path_of(&format!("{name}{TMP_SUFFIX}"));
        let path = self.path_of(name);
        // Names change below; if anything fails, the next log sync fsyncs the directory.
        self.dir_unsynced = true;
        let mut file = self.disk.create(&tmp).map_err(io_err("create", &tmp))?;
        file.append(bytes).map_err(io_err("write", &tmp))?;
        file.sync().map_err(io_err("fsync", &tmp))?;
        drop(file);
        self.disk
            .rename(&tmp, &path)
            .map_err(io_err("rename", &tmp))?;
        self.disk
            .sync_dir(&self.dir)
            .map_err(io_err("fsync_dir", &self.dir))?;
        self.dir_unsynced = false;
        Ok(())
    }

    /// Writes `index-<revision>.img` like a snapshot (temp file, fsync, rename, directory
    /// fsync), then removes image files of other revisions.
    fn images_now(&mut self, revision: u64, images: &[IndexImage]) -> Result<(), StorageError> {
        let name = format::images_name(revision);
        self.replace_file(&name, &encode_image_set(revision, images))?;
        self.remove_images_except(revision);
        Ok(())
    }

    /// Best effort: image files of any other revision are stale (never loaded) and only take
    /// space, so a failure to remove one is not an error.
    fn remove_images_except(&mut self, revision: u64) {
        let Ok(names) = self.disk.list_dir(&self.dir) else {
            return;
        };
        for name in names {
            if format::parse_images_name(&name).is_some_and(|r| r != revision) {
                let _ = self.disk.remove(&self.path_of(&name));
                self.dir_unsynced = true;
            }
        }
    }

    fn load_images_now(&mut self) -> Result<Vec<IndexImage>, StorageError> {
        let Some(revision) = self.snapshot_revision else {
            return Ok(Vec::new());
        };
        self.remove_images_except(revision);
        let name = format::images_name(revision);
        let path = self.path_of(&name);
        let names = self
            .disk
            .list_dir(&self.dir)
            .map_err(io_err("list_dir", &self.dir))?;
        if !names.contains(&name) {
            return Ok(Vec::new());
        }
        let data = self.disk.read(&path).map_err(io_err("read", &path))?;
        decode_image_set(&data, revision).map_err(|e| match e {
            ImageSetError::UnknownVersion(version) => StorageError::Unsupported {
                file: path.display().to_string(),
                reason: format!("index image set format version {version}"),
            },
            e => StorageError::Corrupt {
                file: path.display().to_string(),
                offset: e.offset(),
                reason: e.to_string(),
            },
        })
    }
}

impl<D: Disk> Drop for FsStorage<D> {
    fn drop(&mut self) {
        // Best effort, like a clean shutdown; `close` reports errors.
        if self.loaded && !self.poisoned && (self.file_unsynced || self.dir_unsynced) {
            let _ = self.sync_now();
        }
    }
}

#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
impl<D: Disk> Storage for FsStorage<D> {
    async fn load(&mut self) -> Result<Recovered, StorageError> {
        self.load_now()
    }

    async fn append(&mut self, records: &[LogBytes]) -> Result<(), StorageError> {
        let ends: Vec<[(u64, usize); 1]> = records
            .iter()
            .map(|r| [(r.revision, r.bytes.len())])
            .collect();
        let runs: Vec<Run<'_>> = records
            .iter()
            .zip(&ends)
            .map(|(r, end)| (r.bytes.as_slice(), &end[..]))
            .collect();
        self.append_runs(&runs)
    }

    /// Writes the records straight from the logs' buffers: no copy of any record.
    async fn append_logs(&mut self, logs: &[EncodedLog]) -> Result<(), StorageError> {
        let runs: Vec<Run<'_>> = logs.iter().map(|l| (l.as_bytes(), l.ends())).collect();
        self.append_runs(&runs)
    }

    async fn sync(&mut self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        let result = self.sync_now();
        self.poison(result)
    }

    async fn write_snapshot(&mut self, revision: u64, snapshot: &[u8]) -> Result<(), StorageError> {
        self.check_writable("write_snapshot")?;
        if let Some(current) = self.snapshot_revision
            && revision < current
        {
            return Err(self.misuse(
                "write_snapshot",
                format!("revision {revision} is older than the current snapshot's {current}"),
            ));
        }
        let result = self.snapshot_now(revision, snapshot);
        self.poison(result)
    }

    fn supports_index_images(&self) -> bool {
        true
    }

    /// Index images are a cache: a failure here does not poison the storage (the log and the
    /// snapshot are untouched; a leftover temp file is removed at the next open).
    async fn write_index_images(
        &mut self,
        revision: u64,
        images: &[IndexImage],
    ) -> Result<(), StorageError> {
        self.check_writable("write_index_images")?;
        check_images_revision(revision, self.snapshot_revision)?;
        self.images_now(revision, images)
    }

    /// The images written for the loaded snapshot's revision. A damaged file is
    /// [`StorageError::Corrupt`] (the host ignores it and rebuilds); nothing is poisoned.
    async fn load_index_images(&mut self) -> Result<Vec<IndexImage>, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        if !self.loaded {
            return Err(self.misuse("load_index_images", "call load() first".into()));
        }
        self.load_images_now()
    }
}
