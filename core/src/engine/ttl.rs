//! TTL operations on existing keys.

use super::Engine;
use crate::error::EngineError;
use crate::ops::WriteResult;
use crate::time::Timestamp;

impl Engine {
    /// Makes `key` expire `ttl_ms` milliseconds from now (a no-op when it does not exist).
    pub fn set_ttl(
        &mut self,
        now: Timestamp,
        key: &str,
        ttl_ms: u64,
    ) -> Result<WriteResult, EngineError> {
        let key = self.config.keys.parse(key)?;
        self.check_unlocked(&key)?;
        if ttl_ms == 0 {
            return Err(EngineError::InvalidTtl);
        }
        let at = self.observe(now).saturating_add_millis(ttl_ms);
        self.rewrite(now, &key, |e| e.expires_at = Some(at))
    }

    /// Pushes the expiry of `key` `by_ms` milliseconds later. Fails with [`EngineError::NoTtl`]
    /// for a key without TTL; a no-op when the key does not exist.
    pub fn extend_ttl(
        &mut self,
        now: Timestamp,
        key: &str,
        by_ms: u64,
    ) -> Result<WriteResult, EngineError> {
        let parsed = self.config.keys.parse(key)?;
        self.check_unlocked(&parsed)?;
        if by_ms == 0 {
            return Err(EngineError::InvalidTtl);
        }
        let now = self.begin(now);
        match self.current(&parsed) {
            None => Ok(self.noop()),
            Some(e) => match e.expires_at {
                None => Err(EngineError::NoTtl {
                    key: parsed.to_key_string(),
                }),
                Some(at) => {
                    let at = at.saturating_add_millis(by_ms);
                    self.rewrite(now, &parsed, |e| e.expires_at = Some(at))
                }
            },
        }
    }

    /// Removes the TTL of `key`. A no-op when the key does not exist or has no TTL.
    pub fn remove_ttl(&mut self, now: Timestamp, key: &str) -> Result<WriteResult, EngineError> {
        let parsed = self.config.keys.parse(key)?;
        self.check_unlocked(&parsed)?;
        self.begin(now);
        match self.current(&parsed) {
            Some(e) if e.expires_at.is_some() => {
                self.rewrite(now, &parsed, |e| e.expires_at = None)
            }
            _ => Ok(self.noop()),
        }
    }

    /// Sweeps expired keys now; the same as [`Engine::handle_timeout`]. Returns how many.
    pub fn cleanup_expired(&mut self, now: Timestamp) -> u64 {
        self.handle_timeout(now)
    }
}
