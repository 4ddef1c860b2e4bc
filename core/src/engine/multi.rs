//! Multi-key and pattern operations, and scans. A multi-key write is one revision: all of it or,
//! when any key or value is invalid, none of it.

use std::borrow::Cow;

use super::Engine;
use crate::entry::Entry;
use crate::error::EngineError;
use crate::event::ChangeKind;
use crate::key::{KeyRef, join_key, split_namespace};
use crate::ops::{Cursor, ScanPage, WriteOp, WriteResult};
use crate::pattern::Pattern;
use crate::time::Timestamp;
use crate::value::Value;

/// A compiled `namespace:path` pattern, from [`Engine::key_pattern`]: matches stored keys in
/// their written form (as change events carry them).
#[derive(Debug, Clone)]
pub struct KeyPattern {
    /// `Ok` for a literal namespace, `Err` for a namespace glob.
    namespace: Result<String, Pattern>,
    path: Pattern,
}

impl KeyPattern {
    /// True when `key` (`namespace:path`, as stored) matches.
    pub fn matches(&self, key: &str) -> bool {
        let (ns, path) = split_namespace(key);
        self.matches_parts(ns, path)
    }

    /// True when the key with this namespace and path matches.
    pub fn matches_parts(&self, ns: &str, path: &str) -> bool {
        let ns_ok = match &self.namespace {
            Ok(literal) => literal == ns,
            Err(glob) => glob.matches(ns),
        };
        ns_ok && self.path.matches(path)
    }
}

impl Engine {
    /// Puts every `(key, value)` pair in one revision. Later pairs win over earlier ones for the
    /// same key. Clears TTLs like [`Engine::put`].
    pub fn multi_put<K: AsRef<str>>(
        &mut self,
        now: Timestamp,
        items: &[(K, Value)],
    ) -> Result<WriteResult, EngineError> {
        self.check_batch(items.len())?;
        let parsed = items
            .iter()
            .map(|(k, v)| {
                let key = self.config.keys.parse(k.as_ref())?;
                self.check_codec(&key, v)?;
                Ok((key, self.encode(v)?))
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        for (key, _) in &parsed {
            self.check_unlocked(key)?;
        }
        let now = self.begin(now);
        let mut batch = self.batch(now);
        self.skip_history_if_oversized(parsed.len());
        for (key, stored) in parsed {
            let old = self.current(&key);
            let entry = self.next_entry(&batch, old, stored, None);
            let kind = if entry.version == 1 {
                ChangeKind::Create
            } else {
                ChangeKind::Update
            };
            self.install(&mut batch, &key.namespace, &key.path, entry, kind);
        }
        Ok(self.batch_result(batch))
    }

    /// Deletes every listed key that exists, in one revision.
    pub fn multi_delete<K: AsRef<str>>(
        &mut self,
        now: Timestamp,
        keys: &[K],
    ) -> Result<WriteResult, EngineError> {
        self.check_batch(keys.len())?;
        let parsed = keys
            .iter()
            .map(|k| self.config.keys.parse(k.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        for key in &parsed {
            self.check_unlocked(key)?;
        }
        let now = self.begin(now);
        let mut batch = self.batch(now);
        for key in parsed {
            self.erase(&mut batch, &key.namespace, &key.path, ChangeKind::Delete);
        }
        Ok(self.batch_result(batch))
    }

    /// Keys matching `pattern` (`namespace:path-glob`; the namespace may be a glob too), in
    /// namespace then path order.
    pub fn keys(&self, now: Timestamp, pattern: &str) -> Result<Vec<String>, EngineError> {
        let mut out = Vec::new();
        self.each_match(now, &self.compile_pattern(pattern)?, |ns, path, _| {
            out.push(join_key(ns, path));
            Ok(())
        })?;
        Ok(out)
    }

    /// Keys and values matching `pattern`, in key order.
    pub fn get_pattern(
        &self,
        now: Timestamp,
        pattern: &str,
    ) -> Result<Vec<(String, Value)>, EngineError> {
        let mut out = Vec::new();
        self.each_match(now, &self.compile_pattern(pattern)?, |ns, path, e| {
            out.push((join_key(ns, path), e.value.decode()?));
            Ok(())
        })?;
        Ok(out)
    }

    /// Deletes every key matching `pattern`, in one revision.
    pub fn delete_pattern(
        &mut self,
        now: Timestamp,
        pattern: &str,
    ) -> Result<WriteResult, EngineError> {
        // Refuse a bad pattern before the sweep, so a refused call changes nothing.
        let pattern = self.compile_pattern(pattern)?;
        let now = self.begin(now);
        let mut doomed = Vec::new();
        self.each_match(now, &pattern, |ns, path, _| {
            doomed.push((ns.to_owned(), path.to_owned()));
            Ok(())
        })?;
        // A locked key refuses the whole pattern delete (all of it or nothing).
        if !self.pending.no_locks() {
            for (ns, path) in &doomed {
                self.pending.check_unlocked(&join_key(ns, path))?;
            }
        }
        let mut batch = self.batch(now);
        for (ns, path) in doomed {
            self.erase(&mut batch, &ns, &path, ChangeKind::Delete);
        }
        Ok(self.batch_result(batch))
    }

    /// Up to `limit` keys starting with `prefix` (`namespace:path-prefix`), in key order, after
    /// `cursor` when given. Pass the returned cursor to get the next page.
    pub fn scan(
        &self,
        now: Timestamp,
        prefix: &str,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<ScanPage, EngineError> {
        if limit == 0 {
            return Err(EngineError::InvalidLimit);
        }
        let prefix = self.config.keys.parse_prefix(prefix)?;
        let after = cursor.map(|c| c.0.as_str());
        if after.is_some_and(|a| !a.starts_with(prefix.path.as_ref())) {
            return Err(EngineError::InvalidCursor(
                "cursor does not belong to this prefix",
            ));
        }
        let now = self.observe(now);
        let mut items = Vec::with_capacity(limit.min(1024));
        let Some(keyspace) = self.namespaces.get(prefix.namespace.as_ref()) else {
            return Ok(ScanPage { items, next: None });
        };
        let mut live = keyspace
            .range(&prefix.path, after)
            .filter(|(_, e)| !e.is_expired(now));
        for (path, entry) in live.by_ref().take(limit) {
            let key = KeyRef {
                namespace: Cow::Borrowed(&prefix.namespace),
                path: Cow::Borrowed(path),
            };
            if !entry.checksum_ok() {
                return Err(EngineError::Corrupt {
                    key: key.to_key_string(),
                });
            }
            items.push((key.to_key_string(), entry.value.decode()?));
        }
        let next = match live.next() {
            Some(_) => items
                .last()
                .map(|(k, _)| Cursor(split_namespace(k).1.to_owned())),
            None => None,
        };
        Ok(ScanPage { items, next })
    }

    pub(super) fn batch_result(&mut self, batch: super::Batch) -> WriteResult {
        let affected = batch.changed;
        if affected == 0 {
            return self.noop();
        }
        let revision = self.commit(batch);
        WriteResult {
            op: WriteOp::Batch,
            affected,
            version: 0,
            revision,
            latency: Default::default(),
        }
    }

    /// Compiles a `namespace:path-glob` pattern with this engine's key settings, for matching
    /// keys outside the engine (pattern subscriptions).
    pub fn key_pattern(&self, pattern: &str) -> Result<KeyPattern, EngineError> {
        self.compile_pattern(pattern)
    }

    fn compile_pattern(&self, pattern: &str) -> Result<KeyPattern, EngineError> {
        let folded = self.config.keys.fold(pattern);
        let (ns, path) = split_namespace(&folded);
        let sep = self.config.keys.separator;
        let namespace = if ns.contains(['*', '?', '[', '{', '\\']) {
            Err(Pattern::compile(ns, sep)?)
        } else {
            Ok(self.config.keys.namespace(ns)?.into_owned())
        };
        Ok(KeyPattern {
            namespace,
            path: Pattern::compile(path, sep)?,
        })
    }

    /// Calls `f` for every live key matching `pattern`, in order. The pattern's literal path
    /// prefix bounds the range walked, so `app.config.*` never visits keys outside `app.config.`.
    pub(super) fn each_match(
        &self,
        now: Timestamp,
        pattern: &KeyPattern,
        mut f: impl FnMut(&str, &str, &Entry) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let now = self.observe(now);
        let prefix = pattern.path.literal_prefix();
        let mut visit = |ns: &str, keyspace: &crate::keyspace::Keyspace| {
            for (path, entry) in keyspace.range(prefix, None) {
                if entry.is_expired(now) || !pattern.path.matches(path) {
                    continue;
                }
                if !entry.checksum_ok() {
                    return Err(EngineError::Corrupt {
                        key: join_key(ns, path),
                    });
                }
                f(ns, path, entry)?;
            }
            Ok(())
        };
        match &pattern.namespace {
            Ok(ns) => match self.namespaces.get(ns.as_str()) {
                Some(ks) => visit(ns, ks),
                None => Ok(()),
            },
            Err(ns_glob) => {
                for (ns, ks) in self.namespaces.iter().filter(|(ns, _)| ns_glob.matches(ns)) {
                    visit(ns, ks)?;
                }
                Ok(())
            }
        }
    }
}
