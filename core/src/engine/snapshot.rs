//! Snapshots out, restore and log replay in.
//!
//! Snapshot layout: one format byte ([`SNAPSHOT_FORMAT_V1`] or [`SNAPSHOT_FORMAT_V2`]), the
//! postcard-encoded [`SnapshotHeader`], then `header.entries` postcard-encoded
//! `(namespace, path, Entry)` tuples in key order. Entries are encoded one after another so a
//! reader can stream them. V2 appends the prepared transactions after the entries
//! ([`PendingSection`]); a store with none writes V1, which older readers still open.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::config::EngineConfig;
use crate::entry::Entry;
use crate::error::FormatError;
use crate::event::{ChangeEvent, ChangeKind};
use crate::key::{join_key, join_key_compact};
use crate::keyspace::Position;
use crate::log::{LogOp, LogRecord};
use crate::time::Timestamp;
use crate::txn::{PreparedTxn, TxnId};

/// Format byte of a snapshot without prepared transactions.
pub const SNAPSHOT_FORMAT_V1: u8 = 1;
/// Format byte of a snapshot that carries prepared transactions after its entries.
pub const SNAPSHOT_FORMAT_V2: u8 = 2;

/// What V2 appends: the next transaction id and the prepared transactions, in id order.
type PendingSection<T> = (u64, Vec<(TxnId, T)>);

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    revision: u64,
    clock: Timestamp,
    separator: char,
    case_insensitive: bool,
    entries: u64,
}

fn out_of_order(ns: &str, path: &str) -> FormatError {
    FormatError::Decode {
        what: "snapshot",
        message: format!(
            "entry {} is out of key order or repeated",
            join_key(ns, path)
        ),
    }
}

fn decode_err(what: &'static str) -> impl Fn(postcard::Error) -> FormatError {
    move |e| FormatError::Decode {
        what,
        message: e.to_string(),
    }
}

impl Engine {
    /// The whole state as bytes: same state, same bytes.
    pub fn snapshot(&self) -> Result<Vec<u8>, FormatError> {
        let header = SnapshotHeader {
            revision: self.revision,
            clock: self.clock(),
            separator: self.config.keys.separator,
            case_insensitive: self.config.keys.case_insensitive,
            entries: self.len() as u64,
        };
        let pending: Vec<(TxnId, &PreparedTxn)> =
            self.pending.iter().map(|(id, t)| (*id, t)).collect();
        let format = if pending.is_empty() {
            SNAPSHOT_FORMAT_V1
        } else {
            SNAPSHOT_FORMAT_V2
        };
        let mut out = vec![format];
        out = postcard::to_extend(&header, out).map_err(decode_err("snapshot header"))?;
        for (ns, keyspace) in &self.namespaces {
            for (path, entry) in keyspace.iter() {
                out = postcard::to_extend(&(ns.as_str(), path, entry), out)
                    .map_err(decode_err("snapshot entry"))?;
            }
        }
        if !pending.is_empty() {
            let section: PendingSection<&PreparedTxn> = (self.txns.next_id, pending);
            out = postcard::to_extend(&section, out).map_err(decode_err("snapshot pending"))?;
        }
        Ok(out)
    }

    /// An engine holding exactly the state a snapshot recorded. Every entry's checksum is
    /// verified; the snapshot's key settings must match `config`'s.
    pub fn restore(config: EngineConfig, bytes: &[u8]) -> Result<Engine, FormatError> {
        let mut engine = Engine::new(config).map_err(|e| FormatError::ConfigMismatch {
            expected: "a valid configuration".into(),
            found: e.to_string(),
        })?;
        let (&version, body) = bytes.split_first().ok_or(FormatError::Empty)?;
        if version != SNAPSHOT_FORMAT_V1 && version != SNAPSHOT_FORMAT_V2 {
            return Err(FormatError::UnknownVersion {
                what: "snapshot",
                version,
            });
        }
        let (header, mut rest) = postcard::take_from_bytes::<SnapshotHeader>(body)
            .map_err(decode_err("snapshot header"))?;
        let keys = &engine.config.keys;
        if header.separator != keys.separator || header.case_insensitive != keys.case_insensitive {
            return Err(FormatError::ConfigMismatch {
                expected: format!(
                    "separator {:?}, case_insensitive {}",
                    keys.separator, keys.case_insensitive
                ),
                found: format!(
                    "separator {:?}, case_insensitive {}",
                    header.separator, header.case_insensitive
                ),
            });
        }
        // Entries come in (namespace, path) order; each namespace is collected and then built
        // in one pass. Out-of-order or repeated keys mean a damaged snapshot.
        let mut namespace: Option<CompactString> = None;
        let mut items: Vec<(CompactString, Entry)> = Vec::new();
        for _ in 0..header.entries {
            let ((ns, path, entry), tail) =
                postcard::take_from_bytes::<(CompactString, CompactString, Entry)>(rest)
                    .map_err(decode_err("snapshot entry"))?;
            rest = tail;
            engine.check_entry(&ns, &path, &entry, "snapshot")?;
            if namespace.as_ref() != Some(&ns) {
                if namespace.as_ref().is_some_and(|prev| *prev >= ns) {
                    return Err(out_of_order(&ns, &path));
                }
                if let Some(prev) = namespace.replace(ns) {
                    engine.load_keyspace(prev, std::mem::take(&mut items));
                }
            } else if items.last().is_some_and(|(prev, _)| *prev >= path) {
                return Err(out_of_order(&ns, &path));
            }
            items.push((path, entry));
        }
        if let Some(ns) = namespace {
            engine.load_keyspace(ns, items);
        }
        if version == SNAPSHOT_FORMAT_V2 {
            let ((next_id, pending), tail) =
                postcard::take_from_bytes::<PendingSection<PreparedTxn>>(rest)
                    .map_err(decode_err("snapshot pending"))?;
            rest = tail;
            engine.txns.next_id = next_id;
            for (id, prepared) in pending {
                engine.check_prepared(&prepared, "snapshot")?;
                engine.add_pending(id, prepared);
            }
        }
        if !rest.is_empty() {
            return Err(FormatError::TrailingBytes {
                what: "snapshot",
                count: rest.len(),
            });
        }
        engine.revision = header.revision;
        engine
            .clock
            .store(header.clock.0, std::sync::atomic::Ordering::Relaxed);
        engine.history.reset(header.revision, header.clock);
        Ok(engine)
    }

    /// Applies a log record written by an engine with the same configuration. Records at or
    /// below the current revision are already contained and skipped (returns `false`); a record
    /// that skips a revision is an error. Replay emits no events and queues no log records.
    pub fn replay(&mut self, record: &LogRecord) -> Result<bool, FormatError> {
        self.replay_record(std::borrow::Cow::Borrowed(record))
    }

    /// Replays a borrowed record (cloning its entries) or an owned one (moving them).
    fn replay_record(
        &mut self,
        record: std::borrow::Cow<'_, LogRecord>,
    ) -> Result<bool, FormatError> {
        if record.revision <= self.revision {
            return Ok(false);
        }
        if record.revision != self.revision + 1 {
            return Err(FormatError::RevisionGap {
                current: self.revision,
                found: record.revision,
            });
        }
        // Validate the whole record before touching state, so a bad record changes nothing.
        // Patches are materialised here too (against the state before the record: a patch is
        // always the only change to its key in a record). An update is derived as it is
        // applied, from the key's entry then: the one lookup that finds the old entry also
        // tells where the new one goes, as for a `Put` (looking the key up while validating
        // as well made replaying updates about 30% slower).
        let (revision, at) = (record.revision, record.at);
        let mut patched = Vec::new();
        let replayed = super::Batch::at_revision(revision, at);
        for op in &record.ops {
            let (LogOp::Put {
                namespace, path, ..
            }
            | LogOp::Metadata {
                namespace, path, ..
            }
            | LogOp::Delete { namespace, path }
            | LogOp::Expire { namespace, path }
            | LogOp::Evict { namespace, path }
            | LogOp::Patch {
                namespace, path, ..
            }
            | LogOp::Update {
                namespace, path, ..
            }) = op
            else {
                self.check_replayed_txn_op(op)?;
                continue;
            };
            self.check_key(namespace, path, "log record")?;
            match op {
                LogOp::Put { entry, .. } | LogOp::Metadata { entry, .. }
                    if !entry.checksum_ok() =>
                {
                    return Err(FormatError::Corrupt {
                        key: join_key(namespace, path),
                    });
                }
                LogOp::Update {
                    value, checksum, ..
                } if crate::value::checksum(value.as_bytes()) != *checksum => {
                    return Err(FormatError::Corrupt {
                        key: join_key(namespace, path),
                    });
                }
                LogOp::Patch {
                    patch, checksum, ..
                } => {
                    patched.push(self.replayed_patch(&replayed, namespace, path, patch, *checksum)?)
                }
                _ => {}
            }
        }
        let mut patched = patched.into_iter();
        // The change history is rebuilt as the writes built it (replay emits no events to
        // subscribers): a record with more changes than the history holds would be trimmed
        // whole at once, so its events are not built.
        let changes = record
            .ops
            .iter()
            .filter(|op| {
                !matches!(
                    op,
                    LogOp::Prepare { .. }
                        | LogOp::CommitPrepared { .. }
                        | LogOp::CancelPrepared { .. }
                )
            })
            .count();
        let keep = self.config.history_limit > 0 && changes <= self.config.history_limit;
        let mut history = keep.then_some(ReplayedChanges { revision, at });
        for op in record.into_owned().ops {
            match op {
                LogOp::Put {
                    namespace,
                    path,
                    entry,
                } => self.install_replayed(&namespace, &path, entry, false, history.as_mut(), None),
                LogOp::Metadata {
                    namespace,
                    path,
                    entry,
                } => self.install_replayed(&namespace, &path, entry, true, history.as_mut(), None),
                LogOp::Update {
                    namespace,
                    path,
                    value,
                    checksum,
                    expires_at,
                } => {
                    // The write that logged it found the key and changed nothing else of it
                    // in the record. Were the key missing (a log replayed onto a state it was
                    // not written from), the update replays as the key's creation.
                    let found = self
                        .namespaces
                        .get(namespace.as_str())
                        .and_then(|ks| ks.get_with_position(&path));
                    let old = found.map(|(_, e)| e);
                    let entry =
                        self.next_entry_checked(&replayed, old, value, checksum, expires_at);
                    let found = found.map(|(at, _)| at);
                    self.install_replayed(&namespace, &path, entry, false, history.as_mut(), found);
                }
                LogOp::Patch {
                    namespace, path, ..
                } => {
                    if let Some(entry) = patched.next() {
                        self.install_replayed(
                            &namespace,
                            &path,
                            entry,
                            false,
                            history.as_mut(),
                            None,
                        );
                    }
                }
                LogOp::Delete { namespace, path } => {
                    self.remove_replayed(&namespace, &path, ChangeKind::Delete, history.as_mut());
                }
                LogOp::Expire { namespace, path } => {
                    self.remove_replayed(&namespace, &path, ChangeKind::Expire, history.as_mut());
                }
                LogOp::Evict { namespace, path } => {
                    self.remove_replayed(&namespace, &path, ChangeKind::Evict, history.as_mut());
                }
                op @ (LogOp::Prepare { .. }
                | LogOp::CommitPrepared { .. }
                | LogOp::CancelPrepared { .. }) => self.replay_txn_op(op),
            }
        }
        self.revision = revision;
        self.observe(at);
        if keep {
            self.trim_history();
        } else {
            self.history.drop_through(revision);
        }
        Ok(true)
    }

    /// Applies an owned log record, moving its entries in; see [`Engine::replay`].
    pub fn replay_owned(&mut self, record: LogRecord) -> Result<bool, FormatError> {
        self.replay_record(std::borrow::Cow::Owned(record))
    }

    /// Decodes and applies one encoded log record; see [`Engine::replay`].
    pub fn replay_bytes(&mut self, bytes: &[u8]) -> Result<bool, FormatError> {
        self.replay_record(std::borrow::Cow::Owned(LogRecord::decode(bytes)?))
    }

    pub(super) fn check_key(
        &self,
        ns: &str,
        path: &str,
        what: &'static str,
    ) -> Result<(), FormatError> {
        if self.config.keys.is_normal(ns, path) {
            Ok(())
        } else {
            Err(FormatError::InvalidKey {
                what,
                key: join_key(ns, path),
            })
        }
    }

    fn check_entry(
        &self,
        ns: &str,
        path: &str,
        entry: &Entry,
        what: &'static str,
    ) -> Result<(), FormatError> {
        self.check_key(ns, path, what)?;
        if !entry.checksum_ok() {
            return Err(FormatError::Corrupt {
                key: join_key(ns, path),
            });
        }
        Ok(())
    }

    /// Installs a whole namespace from a snapshot, with its bookkeeping.
    fn load_keyspace(&mut self, ns: CompactString, mut items: Vec<(CompactString, Entry)>) {
        for (path, entry) in &mut items {
            self.entries += 1;
            self.bytes += Self::cost(&ns, path, entry);
            if let Some(t) = entry.expires_at {
                self.expiry.insert((t, ns.clone(), path.clone()));
            }
            if let Some(lru) = self.lru.as_mut() {
                let ticket = lru.ticket();
                entry.lru.ticket = ticket;
                lru.probation.push_back((ns.clone(), path.clone(), ticket));
            }
        }
        self.namespaces
            .insert(ns, crate::keyspace::Keyspace::from_sorted(items));
    }

    /// Installs a replayed entry; the record was validated whole before any of it is applied.
    fn install_replayed(
        &mut self,
        ns: &str,
        path: &str,
        entry: Entry,
        metadata_only: bool,
        history: Option<&mut ReplayedChanges>,
        found: Option<Position>,
    ) {
        let new_expiry = entry.expires_at;
        let new = history
            .as_ref()
            .map(|_| (entry.value.clone(), entry.version));
        let old = self.store_entry(ns, path, entry, found);
        if let Some(t) = old.as_ref().and_then(|o| o.expires_at) {
            self.expiry.remove(&(t, ns.into(), path.into()));
        }
        if let Some(t) = new_expiry {
            self.expiry.insert((t, ns.into(), path.into()));
        }
        if let (Some(h), Some((value, version))) = (history, new) {
            let kind = match (&old, metadata_only) {
                (_, true) => ChangeKind::Metadata,
                (None, false) => ChangeKind::Create,
                (Some(_), false) => ChangeKind::Update,
            };
            let event = h.event(ns, path, kind, version, old, Some(value));
            self.history.record(event);
        }
    }

    fn remove_replayed(
        &mut self,
        ns: &str,
        path: &str,
        kind: ChangeKind,
        history: Option<&mut ReplayedChanges>,
    ) {
        self.last_removal = self.revision + 1;
        let Some(old) = self.remove_raw(ns, path) else {
            return;
        };
        if let Some(h) = history {
            let event = h.event(ns, path, kind, 0, Some(old), None);
            self.history.record(event);
        }
    }

    fn remove_raw(&mut self, ns: &str, path: &str) -> Option<Entry> {
        let keyspace = self.namespaces.get_mut(ns)?;
        let old = keyspace.remove(path)?;
        if keyspace.is_empty() {
            self.namespaces.remove(ns);
        }
        self.account_remove(ns, path, &old);
        if let Some(t) = old.expires_at {
            self.expiry.remove(&(t, ns.into(), path.into()));
        }
        Some(old)
    }
}

/// The record being replayed, for the change events it adds to the history.
struct ReplayedChanges {
    revision: u64,
    at: Timestamp,
}

impl ReplayedChanges {
    fn event(
        &self,
        ns: &str,
        path: &str,
        kind: ChangeKind,
        version: u64,
        old: Option<Entry>,
        new: Option<crate::value::StoredValue>,
    ) -> ChangeEvent {
        let (old_version, old_mod_revision) =
            old.as_ref().map_or((0, 0), |o| (o.version, o.mod_revision));
        ChangeEvent {
            revision: self.revision,
            at: self.at,
            key: join_key_compact(ns, path),
            kind,
            version,
            old: old.map(|o| o.value),
            new,
            old_version,
            old_mod_revision,
        }
    }
}
