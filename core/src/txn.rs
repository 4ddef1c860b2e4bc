//! Transaction types: compare-then-else transactions (etcd's model), interactive optimistic
//! transactions and their two-phase commit. The engine side is in `engine/txn.rs`,
//! `engine/interactive.rs` and `engine/prepared.rs`; the model is described in
//! `docs/transactions.md`.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::engine::ValueAt;
use crate::value::{StoredValue, Value};

/// An interactive transaction's id: a counter the engine hands out in order (deterministic).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct TxnId(pub u64);

impl std::fmt::Display for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a compare looks at.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CompareTarget {
    /// The key's value. Equal / NotEqual compare stored bytes (kind included); Greater / Less
    /// order integers and floats numerically, strings and bytes by their bytes, and are false
    /// for any other pair of kinds. Every value compare is false on an absent key (test absence
    /// with `Exists` or `Version(0)`).
    Value(Value),
    /// The key's version; 0 when the key is absent.
    Version(u64),
    /// The revision of the key's last write; 0 when absent.
    ModRevision(u64),
    /// The revision that created the key; 0 when absent.
    CreateRevision(u64),
    /// Whether the key exists, as `true > false`: `Equal` with `Exists(true)` means "exists".
    Exists(bool),
}

/// How a compare relates the key's current state to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Equal,
    NotEqual,
    /// The key's current state is greater than the target.
    Greater,
    /// The key's current state is less than the target.
    Less,
}

/// One condition of a [`Txn`].
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    pub key: String,
    pub target: CompareTarget,
    pub op: CompareOp,
}

impl Compare {
    /// `key`'s current state `op` `target`.
    pub fn new(key: impl Into<String>, op: CompareOp, target: CompareTarget) -> Compare {
        Compare {
            key: key.into(),
            target,
            op,
        }
    }

    /// The key holds exactly this value.
    pub fn value_equals(key: impl Into<String>, value: impl Into<Value>) -> Compare {
        Compare::new(key, CompareOp::Equal, CompareTarget::Value(value.into()))
    }

    /// The key is at this version (0: absent).
    pub fn version(key: impl Into<String>, op: CompareOp, version: u64) -> Compare {
        Compare::new(key, op, CompareTarget::Version(version))
    }

    /// The key's last write was at this revision.
    pub fn mod_revision(key: impl Into<String>, op: CompareOp, revision: u64) -> Compare {
        Compare::new(key, op, CompareTarget::ModRevision(revision))
    }

    /// The key was created at this revision.
    pub fn create_revision(key: impl Into<String>, op: CompareOp, revision: u64) -> Compare {
        Compare::new(key, op, CompareTarget::CreateRevision(revision))
    }

    /// The key exists.
    pub fn exists(key: impl Into<String>) -> Compare {
        Compare::new(key, CompareOp::Equal, CompareTarget::Exists(true))
    }

    /// The key does not exist.
    pub fn absent(key: impl Into<String>) -> Compare {
        Compare::new(key, CompareOp::Equal, CompareTarget::Exists(false))
    }
}

/// One operation of a [`Txn`] branch.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TxnOp {
    /// Creates or replaces the key (clearing its TTL, as `put` does, unless `ttl_ms` sets one).
    Put {
        key: String,
        value: Value,
        ttl_ms: Option<u64>,
    },
    /// Deletes the key (nothing when absent).
    Delete { key: String },
    /// Reads the key, seeing the branch's earlier writes.
    Get { key: String },
    /// Applies a JSON merge patch or JSON patch to the key's JSON value (as
    /// [`crate::Engine::patch`]: a missing key patches `null`; the TTL stays). A patch that does
    /// not apply refuses the whole branch. Inside a transaction the log records the resulting
    /// value, not the patch.
    Patch { key: String, patch: crate::Patch },
}

impl TxnOp {
    pub fn put(key: impl Into<String>, value: impl Into<Value>) -> TxnOp {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
            ttl_ms: None,
        }
    }

    pub fn put_with_ttl(key: impl Into<String>, value: impl Into<Value>, ttl_ms: u64) -> TxnOp {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
            ttl_ms: Some(ttl_ms),
        }
    }

    pub fn delete(key: impl Into<String>) -> TxnOp {
        TxnOp::Delete { key: key.into() }
    }

    pub fn get(key: impl Into<String>) -> TxnOp {
        TxnOp::Get { key: key.into() }
    }

    pub fn patch(key: impl Into<String>, patch: crate::Patch) -> TxnOp {
        TxnOp::Patch {
            key: key.into(),
            patch,
        }
    }
}

/// A compare-then-else transaction: when every compare holds, `success` runs, otherwise
/// `failure`; the chosen branch commits as one revision, or not at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Adds a condition.
    pub fn when(mut self, compare: Compare) -> Txn {
        self.compare.push(compare);
        self
    }

    /// Adds an operation to the branch run when every condition holds.
    pub fn then(mut self, op: TxnOp) -> Txn {
        self.success.push(op);
        self
    }

    /// Adds an operation to the branch run when some condition fails.
    pub fn otherwise(mut self, op: TxnOp) -> Txn {
        self.failure.push(op);
        self
    }
}

/// What one operation of the chosen branch did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TxnOpResult {
    /// The key's version after the put.
    Put { version: u64 },
    /// Whether the key existed.
    Delete { deleted: bool },
    /// The key's version after the patch.
    Patch { version: u64 },
    /// The key's value then (`None`: absent), with its version and mod revision.
    Get(Option<ValueAt>),
}

/// The reply to a [`Txn`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TxnResult {
    /// True when every compare held and `success` ran.
    pub succeeded: bool,
    /// One result per operation of the branch that ran, in order.
    pub results: Vec<TxnOpResult>,
    /// The store revision after the transaction: its own revision when it changed something.
    pub revision: u64,
}

impl TxnResult {
    /// A reply as a remote client rebuilds it from the wire.
    pub fn new(succeeded: bool, results: Vec<TxnOpResult>, revision: u64) -> TxnResult {
        TxnResult {
            succeeded,
            results,
            revision,
        }
    }
}

/// What an interactive transaction's commit validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Isolation {
    /// Snapshot isolation: reads see the snapshot; the commit fails when another commit changed
    /// a key this transaction writes since its snapshot (first committer wins). Write skew is
    /// possible.
    Snapshot,
    /// Serializable: the commit fails when any key this transaction read (found or absent)
    /// changed since its snapshot.
    #[default]
    Serializable,
}

/// What `prepare` does when a key it needs is locked by another prepared transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WaitPolicy {
    /// Fail at once with `EngineError::Locked`, naming the key and the holder; the transaction
    /// stays open (prepare it again later, or roll it back).
    #[default]
    Fail,
    /// The engine answers `EngineError::WouldWait`; a host waits until the holder is resolved
    /// (or the transaction times out) and prepares again.
    Wait,
}

/// A buffered write of an interactive transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BufferedWrite {
    /// Puts the value; `ttl_ms` counts from the commit.
    Put {
        value: StoredValue,
        ttl_ms: Option<u64>,
    },
    Delete,
}

/// A prepared transaction as the log and snapshots carry it: its writes and the keys it locks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedTxn {
    /// Writes by key (written form `namespace:path`), in key order.
    pub writes: Vec<(String, BufferedWrite)>,
    /// Keys read by a serializable transaction: other writers must not change them until it is
    /// resolved, or its validated reads would no longer hold. Empty for snapshot isolation.
    pub reads: Vec<String>,
}

/// Orders two values for a compare; `None` when they do not order (different kinds).
pub(crate) fn order_values(current: &Value, target: &Value) -> Option<Ordering> {
    match (current, target) {
        (Value::Integer(a), Value::Integer(b)) => Some(a.cmp(b)),
        (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
        (Value::Integer(a), Value::Float(b)) => (*a as f64).partial_cmp(b),
        (Value::Float(a), Value::Integer(b)) => a.partial_cmp(&(*b as f64)),
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b)),
        _ => None,
    }
}
