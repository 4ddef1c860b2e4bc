//! Patch writes: JSON merge patch (RFC 7386) and JSON patch (RFC 6902) applied to a JSON value.
//!
//! The keyspace and the history hold the materialised value; the log holds the patch itself
//! when its text is smaller than the new value ([`LogOp::Patch`]), and replay applies it again
//! to the value the key held before, checked against the checksum the original write recorded.

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::entry::Entry;
use crate::error::{EngineError, FormatError};
use crate::key::{KeyRef, join_key};
use crate::log::LogOp;
use crate::ops::WriteResult;
use crate::time::Timestamp;
use crate::value::{JsonValue, StoredValue, Value};

/// A change to a JSON value. Build one with [`Patch::merge`] or [`Patch::json`].
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    kind: PatchKind,
    /// The patch as JSON text, the form the log stores.
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum PatchKind {
    Merge(JsonValue),
    Json(json_patch::Patch),
}

/// A patch as a log record carries it: which RFC, and the patch as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoggedPatch {
    Merge(String),
    Json(String),
}

impl Patch {
    /// A JSON merge patch (RFC 7386): objects merge recursively, `null` removes a member, any
    /// other value replaces.
    pub fn merge(patch: JsonValue) -> Patch {
        let text = patch.to_string();
        Patch {
            kind: PatchKind::Merge(patch),
            text,
        }
    }

    /// A JSON patch (RFC 6902): an array of `add`, `remove`, `replace`, `move`, `copy` and
    /// `test` operations, applied all or nothing.
    pub fn json(ops: JsonValue) -> Result<Patch, EngineError> {
        let text = ops.to_string();
        let parsed: json_patch::Patch =
            serde_json::from_value(ops).map_err(|e| EngineError::InvalidPatch(e.to_string()))?;
        Ok(Patch {
            kind: PatchKind::Json(parsed),
            text,
        })
    }

    /// Whether this is a merge patch (RFC 7386) rather than a JSON patch (RFC 6902).
    pub fn is_merge(&self) -> bool {
        matches!(self.kind, PatchKind::Merge(_))
    }

    /// The patch as JSON: the merge document, or the array of operations.
    pub fn to_json(&self) -> JsonValue {
        match &self.kind {
            PatchKind::Merge(doc) => doc.clone(),
            PatchKind::Json(ops) => serde_json::to_value(ops).unwrap_or(JsonValue::Null),
        }
    }

    fn from_logged(logged: &LoggedPatch) -> Result<Patch, String> {
        let parse = |text: &str| serde_json::from_str::<JsonValue>(text).map_err(|e| e.to_string());
        match logged {
            LoggedPatch::Merge(text) => Ok(Patch::merge(parse(text)?)),
            LoggedPatch::Json(text) => Patch::json(parse(text)?).map_err(|e| e.to_string()),
        }
    }

    fn logged(&self) -> LoggedPatch {
        match self.kind {
            PatchKind::Merge(_) => LoggedPatch::Merge(self.text.clone()),
            PatchKind::Json(_) => LoggedPatch::Json(self.text.clone()),
        }
    }

    /// `doc` with the patch applied, or why it does not apply.
    fn apply(&self, mut doc: JsonValue) -> Result<JsonValue, String> {
        match &self.kind {
            PatchKind::Merge(patch) => json_patch::merge(&mut doc, patch),
            PatchKind::Json(patch) => {
                json_patch::patch(&mut doc, patch).map_err(|e| e.to_string())?;
            }
        }
        Ok(doc)
    }
}

impl Engine {
    /// Applies `patch` to the JSON value of `key` (a missing key patches `null`, so a merge
    /// patch can create it). Keeps the key's TTL and user metadata. A key holding another kind
    /// of value fails with [`EngineError::WrongType`]; a JSON patch whose `test` fails or whose
    /// path does not exist fails with [`EngineError::PatchFailed`] and changes nothing.
    pub fn patch(
        &mut self,
        now: Timestamp,
        key: &str,
        patch: &Patch,
    ) -> Result<WriteResult, EngineError> {
        let key = self.config.keys.parse(key)?;
        self.check_unlocked(&key)?;
        let now = self.begin(now);
        let stored = self.patched_value(&key, patch)?;
        let found = self.current_found(&key);
        let old = found.map(|(_, e)| e);
        let expires_at = old.and_then(|e| e.expires_at);
        let mut batch = self.batch(now);
        batch.found = found.map(|(at, _)| at);
        let entry = self.follow_entry(&mut batch, old, stored, expires_at);
        let smaller = patch.text.len() < entry.value.len();
        let checksum = entry.checksum;
        let installed = self.write_entry(&mut batch, &key, entry);
        if smaller {
            self.log_patch_instead(&mut batch, &key, patch, checksum);
        }
        Ok(installed.finish(self, batch))
    }

    /// Replaces the `Put` just logged for `key` with the patch that produced it (replay applies
    /// it to the value before and checks the result against `checksum`). Should the patch not
    /// encode, the `Put` stays: it replays to the same value.
    fn log_patch_instead(
        &mut self,
        batch: &mut super::Batch,
        key: &KeyRef<'_>,
        patch: &Patch,
        checksum: u64,
    ) {
        if !self.capture_log || batch.op_count == 0 {
            return;
        }
        let op = LogOp::Patch {
            namespace: key.namespace.as_ref().into(),
            path: key.path.as_ref().into(),
            patch: patch.logged(),
            checksum,
        };
        let put_start = match batch.last_op {
            super::AFTER_HEAD => batch.record_start + super::record_head(batch).len(),
            at => at,
        };
        let bytes = self.log.open_bytes();
        let patch_start = bytes.len();
        match crate::log_encoding::push_op(bytes, &op) {
            Ok(()) => drop(bytes.drain(put_start..patch_start)),
            Err(_) => bytes.truncate(patch_start),
        }
    }

    /// The stored value `patch` turns the key's current value into.
    fn patched_value(&self, key: &KeyRef<'_>, patch: &Patch) -> Result<StoredValue, EngineError> {
        self.patched_from(key, self.current(key), patch)
    }

    /// The stored value `patch` turns `old` (the key's entry, if any) into.
    pub(super) fn patched_from(
        &self,
        key: &KeyRef<'_>,
        old: Option<&Entry>,
        patch: &Patch,
    ) -> Result<StoredValue, EngineError> {
        let doc = match old {
            None => JsonValue::Null,
            Some(entry) => match entry.value.decode()? {
                Value::Json(doc) => doc,
                other => {
                    return Err(EngineError::WrongType {
                        key: key.to_key_string(),
                        expected: "json",
                        actual: other.kind().name(),
                    });
                }
            },
        };
        let doc = patch
            .apply(doc)
            .map_err(|message| EngineError::PatchFailed {
                key: key.to_key_string(),
                message,
            })?;
        self.encode(&Value::Json(doc))
    }

    /// The entry a logged patch produces at `revision`, checked against its checksum.
    pub(super) fn replayed_patch(
        &self,
        batch: &super::Batch,
        ns: &str,
        path: &str,
        logged: &LoggedPatch,
        checksum: u64,
    ) -> Result<Entry, FormatError> {
        let bad = |message: String| FormatError::Decode {
            what: "log record",
            message: format!("patch of {}: {message}", join_key(ns, path)),
        };
        let patch = Patch::from_logged(logged).map_err(bad)?;
        let key = KeyRef {
            namespace: ns.into(),
            path: path.into(),
        };
        let stored = self
            .patched_value(&key, &patch)
            .map_err(|e| bad(e.to_string()))?;
        let old = self.current(&key);
        let entry = self.next_entry(batch, old, stored, old.and_then(|e| e.expires_at));
        if entry.checksum != checksum {
            return Err(FormatError::Corrupt {
                key: join_key(ns, path),
            });
        }
        Ok(entry)
    }
}
