//! Option and result types of engine operations.

use std::time::Duration;

use crate::value::Value;

/// Options of a put.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct PutOptions {
    /// Expire the key this many milliseconds after the write (must be >= 1).
    pub ttl_ms: Option<u64>,
    /// Keep the key's current expiry instead of clearing it (ignored when `ttl_ms` is set).
    /// Without either, a put clears any TTL, as Redis's SET does.
    pub keep_ttl: bool,
    /// Write only if the key's current version is this one; 0 means "must not exist".
    pub if_version: Option<u64>,
    /// Replace the key's user metadata (a JSON object) in the same write.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Expire at this absolute time (the store clock's milliseconds) instead of after `ttl_ms`:
    /// what a restore needs to put back exactly the expiry it exported. A time not after the
    /// write's `now` is refused with [`crate::EngineError::InvalidTtl`].
    pub expires_at: Option<crate::Timestamp>,
}

impl PutOptions {
    /// Expire after `ttl_ms` milliseconds.
    pub fn ttl_ms(mut self, ttl_ms: u64) -> Self {
        self.ttl_ms = Some(ttl_ms);
        self
    }

    /// Expire at `at` (absolute; see the field).
    pub fn expires_at(mut self, at: crate::Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Keep the key's current expiry.
    pub fn keep_ttl(mut self) -> Self {
        self.keep_ttl = true;
        self
    }

    /// Optimistic concurrency: write only at this version (0 = must not exist).
    pub fn if_version(mut self, version: u64) -> Self {
        self.if_version = Some(version);
        self
    }

    /// Set user metadata in the same write.
    pub fn metadata(mut self, metadata: serde_json::Map<String, serde_json::Value>) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteOp {
    Create,
    Update,
    Delete,
    /// Several keys changed in one revision (multi and pattern operations).
    Batch,
    /// Nothing changed; the revision did not move.
    Noop,
}

/// The reply to a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteResult {
    pub op: WriteOp,
    /// Keys changed by the operation (evictions and the sweep of due keys not included). For
    /// `multi_put`, items written: a key given twice in one batch counts twice.
    pub affected: u64,
    /// The key's version after a single-key write; 0 after a delete, a batch or a no-op.
    pub version: u64,
    /// The store revision after the write. A no-op does not move it itself, but the sweep of
    /// keys due at the call's `now` may have.
    pub revision: u64,
    /// Time the host measured for the whole call; the core leaves it zero.
    pub latency: Duration,
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPage {
    /// `(key, value)` pairs in key order; keys in their written form.
    pub items: Vec<(String, Value)>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next: Option<Cursor>,
}

/// A position in a scan: the last key a page returned. It stays valid across writes, because it
/// names a place in key order rather than an index; keys written after it are seen by later pages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(pub(crate) String);

const CURSOR_VERSION: &str = "c1";

impl Cursor {
    /// A cursor that continues a scan after the key with this path (the part after `ns:`), for
    /// resuming from a key the caller already has.
    pub fn after(path: impl Into<String>) -> Cursor {
        Cursor(path.into())
    }

    /// An opaque printable form, safe to hand to clients.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(CURSOR_VERSION.len() + self.0.len() * 2);
        out.push_str(CURSOR_VERSION);
        for b in self.0.bytes() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// Parses the form [`Cursor::encode`] produced.
    pub fn decode(text: &str) -> Result<Cursor, crate::EngineError> {
        let bad = crate::EngineError::InvalidCursor;
        let hex = text
            .strip_prefix(CURSOR_VERSION)
            .ok_or(bad("unknown cursor version"))?;
        if hex.len() % 2 != 0 {
            return Err(bad("odd length"));
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(bad("not hex")),
        };
        let bytes = hex
            .as_bytes()
            .chunks_exact(2)
            .map(|p| Ok(nibble(p[0])? << 4 | nibble(p[1])?))
            .collect::<Result<Vec<u8>, crate::EngineError>>()?;
        String::from_utf8(bytes)
            .map(Cursor)
            .map_err(|_| bad("not UTF-8"))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";
