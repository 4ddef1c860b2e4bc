//! Point reads. Reads take `&self`: they never change the keyspace, only the engine's clock.
//!
//! A point read consults the clock (its `now`, see [`Now`]) only when the key it finds has a
//! TTL: a key without one is live whatever the time, so the read neither needs nor records it.

use std::borrow::Cow;

use super::Engine;
use crate::entry::{Entry, Metadata, Record, Ttl};
use crate::error::EngineError;
use crate::key::{DEFAULT_NAMESPACE, NAMESPACE_SEPARATOR, join_key};
use crate::time::{Now, Timestamp};
use crate::value::{StoredValue, Value};

/// A key's namespace and path after normalisation, borrowed from the caller when unchanged.
type NormalKey<'k> = (Cow<'k, str>, Cow<'k, str>);

impl Engine {
    /// The value of `key`, or `None` when it does not exist or has expired.
    pub fn get(&self, now: impl Now, key: &str) -> Result<Option<Value>, EngineError> {
        match self.live_entry(now, key)? {
            Some((entry, _)) => Ok(Some(entry.value.decode()?)),
            None => Ok(None),
        }
    }

    /// The stored form of the value of `key`, shared without copying or decoding: read its
    /// bytes with [`StoredValue::payload`] or decode it later with [`StoredValue::decode`].
    pub fn get_stored(&self, now: impl Now, key: &str) -> Result<Option<StoredValue>, EngineError> {
        Ok(self
            .live_entry(now, key)?
            .map(|(entry, _)| entry.value.clone()))
    }

    /// The stored entry of `key` (checksum verified, expired keys excluded), for hosts that need
    /// its revisions without decoding the value.
    pub fn entry(&self, now: impl Now, key: &str) -> Result<Option<&Entry>, EngineError> {
        Ok(self.live_entry(now, key)?.map(|(entry, _)| entry))
    }

    /// The value and its version (for a later `put_if_version`).
    pub fn get_with_version(
        &self,
        now: impl Now,
        key: &str,
    ) -> Result<Option<(Value, u64)>, EngineError> {
        match self.live_entry(now, key)? {
            Some((entry, _)) => Ok(Some((entry.value.decode()?, entry.version))),
            None => Ok(None),
        }
    }

    /// The value with its system and user metadata.
    pub fn get_record(&self, now: impl Now, key: &str) -> Result<Option<Record>, EngineError> {
        match self.live_entry(now, key)? {
            Some((entry, (ns, path))) => Ok(Some(Record {
                key: join_key(&ns, &path),
                value: entry.value.decode()?,
                meta: entry.metadata(),
            })),
            None => Ok(None),
        }
    }

    /// System and user metadata of `key`, without decoding its value.
    pub fn get_metadata(&self, now: impl Now, key: &str) -> Result<Option<Metadata>, EngineError> {
        Ok(self.live_entry(now, key)?.map(|(e, _)| e.metadata()))
    }

    /// Whether `key` exists (and has not expired).
    pub fn exists(&self, now: impl Now, key: &str) -> Result<bool, EngineError> {
        Ok(self.live_entry(now, key)?.is_some())
    }

    /// How long `key` has left; `None` when it does not exist.
    pub fn get_ttl(&self, now: impl Now, key: &str) -> Result<Option<Ttl>, EngineError> {
        let mut clock = None;
        let now = || {
            let t = self.observe(now.now());
            clock = Some(t);
            t
        };
        let found = self.live_entry(now, key)?;
        Ok(found.map(|(e, _)| match (e.expires_at, clock) {
            (Some(at), Some(clock)) => Ttl::Expires {
                at,
                remaining_ms: clock.millis_until(at),
            },
            _ => Ttl::Persistent,
        }))
    }

    /// Values of several keys, in the order asked; `None` for keys that do not exist.
    pub fn multi_get<K: AsRef<str>>(
        &self,
        now: Timestamp,
        keys: &[K],
    ) -> Result<Vec<Option<Value>>, EngineError> {
        self.check_batch(keys.len())?;
        keys.iter().map(|k| self.get(now, k.as_ref())).collect()
    }

    /// The live entry of `key` and its normalised namespace and path.
    ///
    /// Only valid keys are ever stored, so a hit proves the key valid: the full validation runs
    /// only on a miss (to tell "invalid" from "absent"). That keeps a get to a split, a probe
    /// and the checksum.
    fn live_entry<'k>(
        &self,
        now: impl Now,
        key: &'k str,
    ) -> Result<Option<(&Entry, NormalKey<'k>)>, EngineError> {
        let (ns, path) = match key
            .as_bytes()
            .iter()
            .position(|&b| b == NAMESPACE_SEPARATOR as u8)
        {
            Some(i) => (&key[..i], &key[i + 1..]),
            None => (DEFAULT_NAMESPACE, key),
        };
        let keys = &self.config.keys;
        let (ns, path) = if keys.case_insensitive {
            (Cow::Owned(ns.to_ascii_lowercase()), keys.fold(path))
        } else {
            (Cow::Borrowed(ns), Cow::Borrowed(path))
        };
        let Some(entry) = self
            .namespaces
            .get(ns.as_ref())
            .and_then(|ks| ks.get(&path))
        else {
            keys.parse(key)?;
            return Ok(None);
        };
        if let Some(deadline) = entry.expires_at
            && deadline <= self.observe(now.now())
        {
            return Ok(None);
        }
        if !entry.checksum_ok() {
            return Err(EngineError::Corrupt {
                key: join_key(&ns, &path),
            });
        }
        if self.lru.is_some() {
            entry.lru.touch();
        }
        Ok(Some((entry, (ns, path))))
    }
}
