//! Compare-then-else transactions (etcd's `Txn`): compares on the current state choose a branch,
//! whose puts, patches, deletes and gets run in order as one revision.
//!
//! All of a branch or nothing: every argument of both branches is checked before anything
//! happens (keys, values, TTLs), then the chosen branch is staged against an overlay (so its
//! gets see its own earlier writes and a corrupt value refuses it whole) and only then installed.

use std::collections::BTreeMap;

use super::{Engine, ValueAt};
use crate::entry::Entry;
use crate::error::EngineError;
use crate::event::ChangeKind;
use crate::key::KeyRef;
use crate::time::Timestamp;
use crate::txn::{Compare, CompareOp, CompareTarget, Txn, TxnOp, TxnOpResult, TxnResult};
use crate::value::StoredValue;

/// A branch operation with its arguments checked.
enum Checked<'a> {
    Put {
        key: KeyRef<'a>,
        value: StoredValue,
        ttl_ms: Option<u64>,
    },
    Delete(KeyRef<'a>),
    Get(KeyRef<'a>),
    Patch {
        key: KeyRef<'a>,
        patch: &'a crate::Patch,
    },
}

impl Checked<'_> {
    fn write_key(&self) -> Option<&KeyRef<'_>> {
        match self {
            Checked::Put { key, .. } | Checked::Delete(key) | Checked::Patch { key, .. } => {
                Some(key)
            }
            Checked::Get(_) => None,
        }
    }
}

/// A compare with its key parsed and its value target encoded.
struct CheckedCompare<'a> {
    key: KeyRef<'a>,
    compare: &'a Compare,
    stored: Option<StoredValue>,
}

/// A staged change, installed once the whole branch staged.
enum Staged<'a> {
    Put(KeyRef<'a>, Entry),
    Erase(KeyRef<'a>),
}

impl Engine {
    /// Runs a compare-then-else transaction: when every compare holds, `success` runs, else
    /// `failure`. The branch commits as one revision (none when it changes nothing); a branch
    /// that writes a key locked by a prepared transaction is refused whole with
    /// [`EngineError::Locked`].
    pub fn txn(&mut self, now: Timestamp, txn: &Txn) -> Result<TxnResult, EngineError> {
        self.check_batch(txn.compare.len() + txn.success.len().max(txn.failure.len()))?;
        let compares = txn
            .compare
            .iter()
            .map(|c| self.check_compare(c))
            .collect::<Result<Vec<_>, _>>()?;
        let success = self.check_ops(&txn.success)?;
        let failure = self.check_ops(&txn.failure)?;
        let now = self.begin(now);
        let mut succeeded = true;
        for compare in &compares {
            if !self.holds(compare)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { success } else { failure };
        for key in ops.iter().filter_map(Checked::write_key) {
            self.check_unlocked(key)?;
        }
        let mut batch = self.batch(now);
        let (staged, results) = self.stage(&batch, ops)?;
        for change in staged {
            match change {
                Staged::Put(key, entry) => {
                    let kind = if entry.version == 1 {
                        ChangeKind::Create
                    } else {
                        ChangeKind::Update
                    };
                    self.install(&mut batch, &key.namespace, &key.path, entry, kind);
                }
                Staged::Erase(key) => {
                    self.erase(&mut batch, &key.namespace, &key.path, ChangeKind::Delete);
                }
            }
        }
        let revision = self.commit(batch);
        Ok(TxnResult {
            succeeded,
            results,
            revision,
        })
    }

    fn check_compare<'a>(&self, compare: &'a Compare) -> Result<CheckedCompare<'a>, EngineError> {
        let key = self.config.keys.parse(&compare.key)?;
        let stored = match &compare.target {
            CompareTarget::Value(v) => Some(self.encode(v)?),
            _ => None,
        };
        Ok(CheckedCompare {
            key,
            compare,
            stored,
        })
    }

    fn check_ops<'a>(&self, ops: &'a [TxnOp]) -> Result<Vec<Checked<'a>>, EngineError> {
        ops.iter()
            .map(|op| {
                Ok(match op {
                    TxnOp::Put { key, value, ttl_ms } => {
                        if *ttl_ms == Some(0) {
                            return Err(EngineError::InvalidTtl);
                        }
                        let key = self.config.keys.parse(key)?;
                        self.check_codec(&key, value)?;
                        Checked::Put {
                            key,
                            value: self.encode(value)?,
                            ttl_ms: *ttl_ms,
                        }
                    }
                    TxnOp::Delete { key } => Checked::Delete(self.config.keys.parse(key)?),
                    TxnOp::Get { key } => Checked::Get(self.config.keys.parse(key)?),
                    TxnOp::Patch { key, patch } => Checked::Patch {
                        key: self.config.keys.parse(key)?,
                        patch,
                    },
                })
            })
            .collect()
    }

    /// Whether a compare holds on the current (swept) state.
    fn holds(&self, c: &CheckedCompare<'_>) -> Result<bool, EngineError> {
        let entry = self.current(&c.key);
        let number = |n: u64, target: u64| compare_ord(c.compare.op, n.cmp(&target));
        Ok(match &c.compare.target {
            CompareTarget::Version(v) => number(entry.map_or(0, |e| e.version), *v),
            CompareTarget::ModRevision(r) => number(entry.map_or(0, |e| e.mod_revision), *r),
            CompareTarget::CreateRevision(r) => number(entry.map_or(0, |e| e.create_revision), *r),
            CompareTarget::Exists(want) => compare_ord(c.compare.op, entry.is_some().cmp(want)),
            CompareTarget::Value(target) => {
                let Some(entry) = entry else {
                    return Ok(false);
                };
                if !entry.checksum_ok() {
                    return Err(EngineError::Corrupt {
                        key: c.key.to_key_string(),
                    });
                }
                match c.compare.op {
                    CompareOp::Equal => Some(&entry.value) == c.stored.as_ref(),
                    CompareOp::NotEqual => Some(&entry.value) != c.stored.as_ref(),
                    op => crate::txn::order_values(&entry.value.decode()?, target)
                        .is_some_and(|ord| compare_ord(op, ord)),
                }
            }
        })
    }

    /// Runs the branch against an overlay of its own writes; nothing is installed yet.
    fn stage<'a>(
        &self,
        batch: &super::Batch,
        ops: Vec<Checked<'a>>,
    ) -> Result<(Vec<Staged<'a>>, Vec<TxnOpResult>), EngineError> {
        let mut overlay: BTreeMap<String, Option<Entry>> = BTreeMap::new();
        let mut staged = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Checked::Put { key, value, ttl_ms } => {
                    let joined = key.to_key_string();
                    let old = match overlay.get(&joined) {
                        Some(staged) => staged.as_ref(),
                        None => self.current(&key),
                    };
                    let expires_at = ttl_ms.map(|t| batch.at.saturating_add_millis(t));
                    let entry = self.next_entry(batch, old, value, expires_at);
                    results.push(TxnOpResult::Put {
                        version: entry.version,
                    });
                    overlay.insert(joined, Some(entry.clone()));
                    staged.push(Staged::Put(key, entry));
                }
                Checked::Patch { key, patch } => {
                    let joined = key.to_key_string();
                    let old = match overlay.get(&joined) {
                        Some(staged) => staged.as_ref(),
                        None => self.current(&key),
                    };
                    let value = self.patched_from(&key, old, patch)?;
                    let entry = self.next_entry(batch, old, value, old.and_then(|e| e.expires_at));
                    results.push(TxnOpResult::Patch {
                        version: entry.version,
                    });
                    overlay.insert(joined, Some(entry.clone()));
                    staged.push(Staged::Put(key, entry));
                }
                Checked::Delete(key) => {
                    let joined = key.to_key_string();
                    let exists = match overlay.get(&joined) {
                        Some(staged) => staged.is_some(),
                        None => self.current(&key).is_some(),
                    };
                    if exists {
                        overlay.insert(joined, None);
                        staged.push(Staged::Erase(key));
                    }
                    results.push(TxnOpResult::Delete { deleted: exists });
                }
                Checked::Get(key) => {
                    let joined = key.to_key_string();
                    let entry = match overlay.get(&joined) {
                        Some(staged) => staged.as_ref(),
                        None => self.current(&key),
                    };
                    let value = match entry {
                        Some(e) if !e.checksum_ok() => {
                            return Err(EngineError::Corrupt { key: joined });
                        }
                        Some(e) => Some(ValueAt {
                            value: e.value.decode()?,
                            version: e.version,
                            mod_revision: e.mod_revision,
                        }),
                        None => None,
                    };
                    results.push(TxnOpResult::Get(value));
                }
            }
        }
        Ok((staged, results))
    }
}

fn compare_ord(op: CompareOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match op {
        CompareOp::Equal => ord == Equal,
        CompareOp::NotEqual => ord != Equal,
        CompareOp::Greater => ord == Greater,
        CompareOp::Less => ord == Less,
    }
}
