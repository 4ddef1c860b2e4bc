//! Change events: what every committed write did, in revision order.

use compact_str::CompactString;

use crate::time::Timestamp;
use crate::value::StoredValue;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// The key did not exist and now does.
    Create,
    /// The key's value changed.
    Update,
    /// Only the key's TTL or user metadata changed; `old` and `new` hold the same value.
    Metadata,
    /// The key was deleted by a caller.
    Delete,
    /// The key's TTL ran out.
    Expire,
    /// The key was evicted to keep an AP store within its memory limits.
    Evict,
}

/// One change to one key. Every key touched by one write carries that write's revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub revision: u64,
    /// The engine's `now` when the change was committed.
    pub at: Timestamp,
    /// The written form, `namespace:path`. Kept inline, without an allocation, up to 24 bytes:
    /// the history holds an event per change, and a heap key per event was an allocation on
    /// every write and a cache miss when the history let it go.
    pub key: CompactString,
    pub kind: ChangeKind,
    /// The key's version after the change; 0 after a delete or expiry.
    pub version: u64,
    pub old: Option<StoredValue>,
    pub new: Option<StoredValue>,
    /// The key's version before the change; 0 when it did not exist.
    pub old_version: u64,
    /// The revision that wrote the old value; 0 when the key did not exist.
    pub old_mod_revision: u64,
}
