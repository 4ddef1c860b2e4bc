//! Point reads. Reads take `&self`: they never change the keyspace, only the engine's clock.

use super::Engine;
use crate::entry::{Entry, Metadata, Record, Ttl};
use crate::error::EngineError;
use crate::time::Timestamp;
use crate::value::Value;

impl Engine {
    /// The value of `key`, or `None` when it does not exist or has expired.
    pub fn get(&self, now: Timestamp, key: &str) -> Result<Option<Value>, EngineError> {
        let key = self.config.keys.parse(key)?;
        match self.live(now, &key)? {
            Some(entry) => Ok(Some(entry.value.decode()?)),
            None => Ok(None),
        }
    }

    /// The stored entry of `key` (checksum verified, expired keys excluded), for hosts that need
    /// its revisions without decoding the value.
    pub fn entry(&self, now: Timestamp, key: &str) -> Result<Option<&Entry>, EngineError> {
        let key = self.config.keys.parse(key)?;
        self.live(now, &key)
    }

    /// The value and its version (for a later `put_if_version`).
    pub fn get_with_version(
        &self,
        now: Timestamp,
        key: &str,
    ) -> Result<Option<(Value, u64)>, EngineError> {
        let key = self.config.keys.parse(key)?;
        match self.live(now, &key)? {
            Some(entry) => Ok(Some((entry.value.decode()?, entry.version))),
            None => Ok(None),
        }
    }

    /// The value with its system and user metadata.
    pub fn get_record(&self, now: Timestamp, key: &str) -> Result<Option<Record>, EngineError> {
        let parsed = self.config.keys.parse(key)?;
        match self.live(now, &parsed)? {
            Some(entry) => Ok(Some(Record {
                key: parsed.to_key_string(),
                value: entry.value.decode()?,
                meta: entry.metadata(),
            })),
            None => Ok(None),
        }
    }

    /// System and user metadata of `key`, without decoding its value.
    pub fn get_metadata(&self, now: Timestamp, key: &str) -> Result<Option<Metadata>, EngineError> {
        let key = self.config.keys.parse(key)?;
        Ok(self.live(now, &key)?.map(|e| e.metadata()))
    }

    /// Whether `key` exists (and has not expired).
    pub fn exists(&self, now: Timestamp, key: &str) -> Result<bool, EngineError> {
        let key = self.config.keys.parse(key)?;
        Ok(self.live(now, &key)?.is_some())
    }

    /// How long `key` has left; `None` when it does not exist.
    pub fn get_ttl(&self, now: Timestamp, key: &str) -> Result<Option<Ttl>, EngineError> {
        let key = self.config.keys.parse(key)?;
        let now = self.observe(now);
        Ok(self.live(now, &key)?.map(|e| match e.expires_at {
            None => Ttl::Persistent,
            Some(at) => Ttl::Expires {
                at,
                remaining_ms: now.millis_until(at),
            },
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
}
