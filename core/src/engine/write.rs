//! Single-key writes.

use std::convert::Infallible;
use std::sync::Arc;

use super::{Engine, InPlace};
use crate::entry::Entry;
use crate::error::EngineError;
use crate::event::ChangeKind;
use crate::key::KeyRef;
use crate::keyspace::Position;
use crate::ops::{PutOptions, WriteOp, WriteResult};
use crate::time::Timestamp;
use crate::value::{StoredValue, Value, ValueKind};

impl Engine {
    /// Creates or replaces `key`. Clears any TTL, as Redis's SET does; see [`PutOptions`].
    pub fn put(
        &mut self,
        now: Timestamp,
        key: &str,
        value: &Value,
    ) -> Result<WriteResult, EngineError> {
        self.put_with(now, key, value, &PutOptions::default())
    }

    /// Creates or replaces `key`, expiring it `ttl_ms` milliseconds from now.
    pub fn put_with_ttl(
        &mut self,
        now: Timestamp,
        key: &str,
        value: &Value,
        ttl_ms: u64,
    ) -> Result<WriteResult, EngineError> {
        self.put_with(now, key, value, &PutOptions::default().ttl_ms(ttl_ms))
    }

    /// Writes only if `key` is at `expected` version (0 = must not exist); otherwise fails with
    /// [`EngineError::VersionConflict`] and changes nothing.
    pub fn put_if_version(
        &mut self,
        now: Timestamp,
        key: &str,
        value: &Value,
        expected: u64,
    ) -> Result<WriteResult, EngineError> {
        self.put_with(now, key, value, &PutOptions::default().if_version(expected))
    }

    /// The general put.
    pub fn put_with(
        &mut self,
        now: Timestamp,
        key: &str,
        value: &Value,
        opts: &PutOptions,
    ) -> Result<WriteResult, EngineError> {
        let written = key;
        let key = self.config.keys.parse(written)?;
        self.check_unlocked(&key)?;
        self.check_codec(&key, value)?;
        let stored = self.encode(value)?;
        self.put_stored(now, &key, written, stored, opts)
    }

    /// [`Engine::put_with`] of text given as bytes: a [`Value::String`] when `text` is UTF-8,
    /// [`Value::Bytes`] otherwise (what the Redis port's SET stores), encoded straight from the
    /// bytes, without building a `Value` first.
    pub fn put_text_with(
        &mut self,
        now: Timestamp,
        key: &str,
        text: &[u8],
        opts: &PutOptions,
    ) -> Result<WriteResult, EngineError> {
        let written = key;
        let key = self.config.keys.parse(written)?;
        self.check_unlocked(&key)?;
        // ASCII first: the standard validator walks a short value byte by byte.
        let kind = if text.is_ascii() || std::str::from_utf8(text).is_ok() {
            ValueKind::String
        } else {
            ValueKind::Bytes
        };
        let stored = StoredValue::raw_within(kind, text, self.value_limit())?;
        self.put_stored(now, &key, written, stored, opts)
    }

    /// The rest of a put, once the value is encoded. `written`: the text `key` was parsed from.
    fn put_stored(
        &mut self,
        now: Timestamp,
        key: &KeyRef<'_>,
        written: &str,
        stored: StoredValue,
        opts: &PutOptions,
    ) -> Result<WriteResult, EngineError> {
        if opts.ttl_ms == Some(0) {
            return Err(EngineError::InvalidTtl);
        }
        let user_meta = opts
            .metadata
            .as_ref()
            .map(|m| self.encode_metadata(m))
            .transpose()?;
        let now = self.begin(now);
        if opts.expires_at.is_some_and(|at| at <= now) {
            return Err(EngineError::InvalidTtl);
        }
        let new_expiry =
            |old: Option<Timestamp>| match (opts.expires_at, opts.ttl_ms, opts.keep_ttl) {
                (Some(at), _, _) => Some(at),
                (None, Some(ttl), _) => Some(now.saturating_add_millis(ttl)),
                (None, None, true) => old,
                (None, None, false) => None,
            };
        let (found, stored) =
            if user_meta.is_none() && opts.if_version.is_none() && self.in_place_allowed() {
                let same_ttl =
                    |old: &Entry, stored| match new_expiry(old.expires_at) == old.expires_at {
                        true => Ok::<_, Infallible>(Ok((stored, ()))),
                        false => Ok(Err(stored)),
                    };
                match self.update_in_place(now, key, Some(written), stored, same_ttl) {
                    Ok(InPlace::Done(result, ())) => return Ok(result),
                    Ok(InPlace::Missing(stored)) => (None, stored),
                    Ok(InPlace::Declined(at, stored)) => (self.found_at(key, at), stored),
                    Err(never) => match never {},
                }
            } else {
                (self.current_found(key), stored)
            };
        let old = found.map(|(_, e)| e);
        if let Some(expected) = opts.if_version {
            let actual = old.map_or(0, |e| e.version);
            if actual != expected {
                return Err(EngineError::VersionConflict {
                    key: key.to_key_string(),
                    expected,
                    actual,
                });
            }
        }
        let expires_at = new_expiry(old.and_then(|e| e.expires_at));
        let mut batch = self.key_batch(now, key, Some(written), found);
        let mut entry = self.follow_entry(&mut batch, old, stored, expires_at);
        if let Some(meta) = user_meta {
            // Replay of an update keeps the old metadata: only the same metadata still follows.
            batch.follows &= meta == entry.user_meta;
            entry.user_meta = meta;
        }
        Ok(self.write_entry(&mut batch, key, entry).finish(self, batch))
    }

    /// Deletes `key`. Deleting a missing key is a no-op with `affected == 0`.
    pub fn delete(&mut self, now: Timestamp, key: &str) -> Result<WriteResult, EngineError> {
        let key = self.config.keys.parse(key)?;
        self.check_unlocked(&key)?;
        let now = self.begin(now);
        let mut batch = self.batch(now);
        match self.erase(&mut batch, &key.namespace, &key.path, ChangeKind::Delete) {
            Some(_) => Ok(self.single_result(batch, WriteOp::Delete, 0)),
            None => Ok(self.noop()),
        }
    }

    /// Replaces the value only if it currently equals `expected` (`None`: only if the key does not
    /// exist). Values compare by their stored bytes. Keeps the key's TTL.
    pub fn compare_and_swap(
        &mut self,
        now: Timestamp,
        key: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<WriteResult, EngineError> {
        let key = self.config.keys.parse(key)?;
        self.check_unlocked(&key)?;
        let expected = expected.map(|v| self.encode(v)).transpose()?;
        self.check_codec(&key, new)?;
        let stored = self.encode(new)?;
        let now = self.begin(now);
        let old = self.current(&key);
        if old.map(|e| &e.value) != expected.as_ref() {
            return Err(EngineError::ValueConflict {
                key: key.to_key_string(),
            });
        }
        Ok(self.replace_keeping_ttl(now, &key, stored))
    }

    /// Adds `delta` to an integer value (or a string holding a decimal integer) and stores the
    /// result as an integer; a missing key counts as 0. Keeps the key's TTL.
    pub fn increment(
        &mut self,
        now: Timestamp,
        key: &str,
        delta: i64,
    ) -> Result<(i64, WriteResult), EngineError> {
        match self.increment_checked(now, key, delta, |_| Ok::<(), Infallible>(())) {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(never)) => match never {},
            Err(e) => Err(e),
        }
    }

    /// As [`Engine::increment`], once `check` accepts the key's current value (it is not called
    /// for a missing key). A host whose protocol refuses values the engine would increment (the
    /// Redis port refuses `"+5"` and `"05"`) checks them in the same lookup; a refusal changes
    /// nothing and comes back as the inner `Err`.
    pub fn increment_checked<R, C>(
        &mut self,
        now: Timestamp,
        key: &str,
        delta: i64,
        check: C,
    ) -> Result<Result<(i64, WriteResult), R>, EngineError>
    where
        C: FnOnce(&StoredValue) -> Result<(), R>,
    {
        let written = key;
        let key = self.config.keys.parse(written)?;
        self.check_unlocked(&key)?;
        let now = self.begin(now);
        let limit = self.value_limit();
        // The next value from the current one, for both paths below.
        let step =
            |old: &StoredValue, check: &mut Option<C>| -> Result<Result<_, R>, EngineError> {
                if let Some(check) = check.take()
                    && let Err(refused) = check(old)
                {
                    return Ok(Err(refused));
                }
                let next = Self::integer_of(&key, old)?
                    .checked_add(delta)
                    .ok_or_else(|| EngineError::Overflow {
                        key: key.to_key_string(),
                    })?;
                // What `encode` makes of `Value::Integer(next)`, without building and dropping one.
                let stored = StoredValue::from_integer(next, limit)?;
                Ok(Ok((stored, next)))
            };
        let mut check = Some(check);
        // Increments are hot on the Redis port: the entry is changed where the one lookup
        // finds it (the TTL stays, so the general path is only for a new key, or when
        // something else must see the write).
        let found = if self.in_place_allowed() {
            let next = |old: &Entry, _: Option<R>| -> Result<_, EngineError> {
                Ok(step(&old.value, &mut check)?.map_err(Some))
            };
            match self.update_in_place(now, &key, Some(written), None, next)? {
                InPlace::Done(result, next) => return Ok(Ok((next, result))),
                InPlace::Declined(_, Some(refused)) => return Ok(Err(refused)),
                InPlace::Declined(at, None) => self.found_at(&key, at),
                InPlace::Missing(_) => None,
            }
        } else {
            self.current_found(&key)
        };
        let old = found.map(|(_, e)| e);
        let (stored, next) = match old {
            Some(e) => match step(&e.value, &mut check)? {
                Ok(replace) => replace,
                Err(refused) => return Ok(Err(refused)),
            },
            None => (StoredValue::from_integer(delta, limit)?, delta),
        };
        let expires_at = old.and_then(|e| e.expires_at);
        let mut batch = self.key_batch(now, &key, Some(written), found);
        let entry = self.follow_entry(&mut batch, old, stored, expires_at);
        let result = self
            .write_entry(&mut batch, &key, entry)
            .finish(self, batch);
        Ok(Ok((next, result)))
    }

    /// The integer an increment starts from: an integer, or a string holding one.
    fn integer_of(key: &KeyRef<'_>, value: &StoredValue) -> Result<i64, EngineError> {
        if let Some(i) = value.integer() {
            return Ok(i);
        }
        match value.decode()? {
            Value::Integer(i) => Ok(i),
            Value::String(s) => s.parse::<i64>().map_err(|_| EngineError::WrongType {
                key: key.to_key_string(),
                expected: "an integer or a decimal integer string",
                actual: "non-numeric string",
            }),
            other => Err(EngineError::WrongType {
                key: key.to_key_string(),
                expected: "an integer or a decimal integer string",
                actual: other.kind().name(),
            }),
        }
    }

    /// Appends to a string (with a string) or to bytes (with bytes); a missing key starts empty.
    /// Returns the new length in bytes. Keeps the key's TTL.
    pub fn append(
        &mut self,
        now: Timestamp,
        key: &str,
        suffix: &Value,
    ) -> Result<(usize, WriteResult), EngineError> {
        let key = self.config.keys.parse(key)?;
        self.check_unlocked(&key)?;
        let (suffix_kind, suffix_bytes) = match suffix {
            Value::String(s) => (ValueKind::String, s.as_bytes()),
            Value::Bytes(b) => (ValueKind::Bytes, b.as_slice()),
            other => {
                return Err(EngineError::WrongType {
                    key: key.to_key_string(),
                    expected: "a string or bytes suffix",
                    actual: other.kind().name(),
                });
            }
        };
        let now = self.begin(now);
        let old = self.current(&key);
        if let Some(e) = old {
            let kind = e.value.kind()?;
            if kind != suffix_kind {
                return Err(EngineError::WrongType {
                    key: key.to_key_string(),
                    expected: suffix_kind.name(),
                    actual: kind.name(),
                });
            }
        }
        // Both kinds are stored raw, so appending is appending bytes to the stored form.
        let header = [suffix_kind as u8, crate::value::Format::Raw as u8];
        let prefix = old.map_or(&header[..], |e| e.value.as_bytes());
        let size = prefix.len() + suffix_bytes.len();
        if size > self.config.max_value_size {
            return Err(EngineError::Value(crate::value::ValueError::TooLarge {
                size,
                limit: self.config.max_value_size,
            }));
        }
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(prefix);
        bytes.extend_from_slice(suffix_bytes);
        let stored = StoredValue::from_bytes(bytes)?;
        let new_len = stored.payload().len();
        Ok((new_len, self.replace_keeping_ttl(now, &key, stored)))
    }

    /// Replaces the user metadata of `key` (a no-op when the key does not exist).
    pub fn set_metadata(
        &mut self,
        now: Timestamp,
        key: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<WriteResult, EngineError> {
        let key = self.config.keys.parse(key)?;
        self.check_unlocked(&key)?;
        let meta = self.encode_metadata(metadata)?;
        self.rewrite(now, &key, |entry| entry.user_meta = meta)
    }

    /// Replaces the value of `key`, keeping its TTL (compare-and-swap, increment, append).
    fn replace_keeping_ttl(
        &mut self,
        now: Timestamp,
        key: &KeyRef<'_>,
        stored: StoredValue,
    ) -> WriteResult {
        let found = self.current_found(key);
        let old = found.map(|(_, e)| e);
        let expires_at = old.and_then(|e| e.expires_at);
        let mut batch = self.key_batch(now, key, None, found);
        let entry = self.follow_entry(&mut batch, old, stored, expires_at);
        self.write_entry(&mut batch, key, entry).finish(self, batch)
    }

    /// The key's current entry, for a write. Writes sweep first, so a present entry is live.
    pub(super) fn current(&self, key: &KeyRef<'_>) -> Option<&Entry> {
        self.current_found(key).map(|(_, entry)| entry)
    }

    /// The batch of a write to the one key `key`, which its read found at `found`; `written`
    /// is the text `key` was parsed from, when the caller has it (for the change event's key).
    fn key_batch(
        &self,
        now: Timestamp,
        key: &KeyRef<'_>,
        written: Option<&str>,
        found: Option<(Position, &Entry)>,
    ) -> super::Batch {
        let mut batch = self.batch(now);
        batch.found = found.map(|(at, _)| at);
        if let Some(written) = written
            && self.wants_events()
        {
            batch.event_key = Some(key.compact_written_form(written));
        }
        batch
    }

    /// [`Engine::current`] and where the entry is: a single-key write that read it puts the
    /// position in its batch, and installing the new entry replaces the old one there instead
    /// of probing the hash index a second time.
    pub(super) fn current_found(&self, key: &KeyRef<'_>) -> Option<(Position, &Entry)> {
        self.namespaces
            .get(key.namespace.as_ref())
            .and_then(|ks| ks.get_with_position(&key.path))
    }

    /// Rewrites the metadata of an existing key as a new version (event kind `Metadata`).
    pub(super) fn rewrite(
        &mut self,
        now: Timestamp,
        key: &KeyRef<'_>,
        change: impl FnOnce(&mut Entry),
    ) -> Result<WriteResult, EngineError> {
        let now = self.begin(now);
        let Some(old) = self.current(key) else {
            return Ok(self.noop());
        };
        let mut batch = self.batch(now);
        let mut entry = self.next_entry(&batch, Some(old), old.value.clone(), old.expires_at);
        change(&mut entry);
        let version = entry.version;
        self.install(
            &mut batch,
            &key.namespace,
            &key.path,
            entry,
            ChangeKind::Metadata,
        );
        Ok(self.single_result(batch, WriteOp::Update, version))
    }

    fn encode_metadata(
        &self,
        metadata: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<Arc<str>>, EngineError> {
        if metadata.is_empty() {
            return Ok(None);
        }
        let text = serde_json::Value::Object(metadata.clone()).to_string();
        if text.len() > self.config.max_metadata_size {
            return Err(EngineError::MetadataTooLarge {
                size: text.len(),
                limit: self.config.max_metadata_size,
            });
        }
        Ok(Some(Arc::from(text)))
    }

    pub(super) fn write_entry(
        &mut self,
        batch: &mut super::Batch,
        key: &KeyRef<'_>,
        entry: Entry,
    ) -> Installed {
        let version = entry.version;
        let kind = if version == 1 {
            ChangeKind::Create
        } else {
            ChangeKind::Update
        };
        self.install(batch, &key.namespace, &key.path, entry, kind);
        Installed {
            op: if version == 1 {
                WriteOp::Create
            } else {
                WriteOp::Update
            },
            version,
        }
    }
}

/// A single-key write that is installed but not yet committed.
pub(super) struct Installed {
    op: WriteOp,
    version: u64,
}

impl Installed {
    pub(super) fn finish(self, engine: &mut Engine, batch: super::Batch) -> WriteResult {
        engine.single_result(batch, self.op, self.version)
    }
}
