//! What the engine keeps for every key, and the views of it that callers get back.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::lru::LruSlot;
use crate::time::Timestamp;
use crate::value::{StoredValue, Value, ValueKind};

/// Everything stored for one key: its value and system metadata. Log records and snapshots carry
/// entries whole, so replay installs exactly what the original write produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub value: StoredValue,
    /// XXH3-64 of `value`'s bytes, checked on every read.
    pub checksum: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When the key stops existing; `None` for a key without TTL.
    pub expires_at: Option<Timestamp>,
    /// 1 on create, +1 on every later write to the key; starts again at 1 after a delete.
    pub version: u64,
    /// The store revision that created the key.
    pub create_revision: u64,
    /// The store revision of the key's last write.
    pub mod_revision: u64,
    /// User metadata: a JSON object, kept as text so snapshots stay in a non-self-describing format.
    pub user_meta: Option<Arc<str>>,
    /// Eviction bookkeeping of AP stores with memory limits: not data, never serialized, always
    /// equal. Build entries with `LruSlot::default()`.
    #[serde(skip)]
    pub lru: LruSlot,
}

impl Entry {
    /// True when the entry no longer exists at `now`.
    #[inline]
    pub fn is_expired(&self, now: Timestamp) -> bool {
        matches!(self.expires_at, Some(t) if t <= now)
    }

    /// True when the stored bytes still match their checksum.
    #[inline]
    pub fn checksum_ok(&self) -> bool {
        crate::value::checksum(self.value.as_bytes()) == self.checksum
    }

    /// The public metadata view.
    pub fn metadata(&self) -> Metadata {
        let user = self
            .user_meta
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Metadata {
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
            version: self.version,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            checksum: self.checksum,
            size: self.value.len(),
            kind: self.value.kind().ok(),
            content_type: self.value.content_type().into_owned(),
            user,
        }
    }
}

/// System and user metadata of a key. `Default` exists so that code outside core (a remote
/// client decoding a reply) can build one field by field.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Metadata {
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub version: u64,
    pub create_revision: u64,
    pub mod_revision: u64,
    /// XXH3-64 of the stored value.
    pub checksum: u64,
    /// Stored size of the value in bytes, header included.
    pub size: usize,
    pub kind: Option<ValueKind>,
    pub content_type: String,
    /// The user's own metadata; empty when none was set.
    pub user: serde_json::Map<String, serde_json::Value>,
}

/// A key with its value and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The written form, `namespace:path`.
    pub key: String,
    pub value: Value,
    pub meta: Metadata,
}

/// How much time a key has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key has no expiry.
    Persistent,
    /// The key expires at `at`, `remaining_ms` after the engine's clock (the latest `now` it has
    /// seen, which is the call's `now` unless time went backwards).
    Expires { at: Timestamp, remaining_ms: u64 },
}
