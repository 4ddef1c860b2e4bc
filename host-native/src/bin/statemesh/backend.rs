//! What an operator command talks to: a data directory opened in this process, or a running
//! server. Both answer the same calls, so each command is written once.

use std::path::Path;

use anyhow::Context;
use statemesh::{Client, Cursor, PutOptions, Record, ScanPage, Store, Ttl, Value, WriteResult};

use crate::Target;

/// Keys per `multi_put` when importing: big enough to amortise a sync, small enough to keep
/// one batch's lock hold short.
pub(crate) const IMPORT_BATCH: usize = 5_000;

pub(crate) enum Backend {
    Local(Store),
    Remote(Client),
}

/// Whether the command may create the data directory (writes) or needs it to exist (reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

impl Backend {
    pub(crate) async fn open(target: &Target, access: Access) -> anyhow::Result<Backend> {
        match &target.server {
            Some(addr) => {
                let client = match &target.auth_token {
                    Some(token) => Client::connect_with_token(addr, token).await,
                    None => Client::connect(addr).await,
                };
                Ok(Backend::Remote(client?))
            }
            None => open_local(&target.data_dir, access).await,
        }
    }

    pub(crate) async fn get(&self, key: &str) -> statemesh::Result<Option<Value>> {
        match self {
            Backend::Local(s) => s.get(key).await,
            Backend::Remote(c) => c.get(key).await,
        }
    }

    pub(crate) async fn put(
        &self,
        key: &str,
        value: Value,
        ttl_ms: Option<u64>,
    ) -> statemesh::Result<WriteResult> {
        match (self, ttl_ms) {
            (Backend::Local(s), None) => s.put(key, value).await,
            (Backend::Local(s), Some(ttl)) => s.put_with_ttl(key, value, ttl).await,
            (Backend::Remote(c), None) => c.put(key, value).await,
            (Backend::Remote(c), Some(ttl)) => c.put_with_ttl(key, value, ttl).await,
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> statemesh::Result<WriteResult> {
        match self {
            Backend::Local(s) => s.delete(key).await,
            Backend::Remote(c) => c.delete(key).await,
        }
    }

    pub(crate) async fn keys(&self, pattern: &str) -> statemesh::Result<Vec<String>> {
        match self {
            Backend::Local(s) => s.keys(pattern).await,
            Backend::Remote(c) => c.keys(pattern).await,
        }
    }

    pub(crate) async fn scan(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> statemesh::Result<ScanPage> {
        match self {
            Backend::Local(s) => s.scan(prefix, limit, cursor).await,
            Backend::Remote(c) => c.scan(prefix, limit, cursor).await,
        }
    }

    pub(crate) async fn get_ttl(&self, key: &str) -> statemesh::Result<Option<Ttl>> {
        match self {
            Backend::Local(s) => s.get_ttl(key).await,
            Backend::Remote(c) => c.get_ttl(key).await,
        }
    }

    /// Writes a batch of plain keys (no TTL, no metadata); returns how many were written.
    pub(crate) async fn import(&self, items: Vec<(String, Value)>) -> statemesh::Result<u64> {
        match self {
            Backend::Local(s) => s.import(items, IMPORT_BATCH).await,
            Backend::Remote(c) => Ok(c.multi_put(&items).await?.affected),
        }
    }

    pub(crate) async fn put_with(
        &self,
        key: &str,
        value: Value,
        options: PutOptions,
    ) -> statemesh::Result<WriteResult> {
        match self {
            Backend::Local(s) => s.put_with(key, value, &options).await,
            Backend::Remote(c) => c.put_with(key, value, &options).await,
        }
    }

    pub(crate) async fn namespaces(&self) -> statemesh::Result<Vec<String>> {
        match self {
            Backend::Local(s) => Ok(s.namespaces()),
            Backend::Remote(c) => c.namespaces().await,
        }
    }

    /// `pattern`, or without one a pattern per namespace that together match every key.
    pub(crate) async fn patterns_or_every_key(
        &self,
        pattern: Option<&str>,
    ) -> statemesh::Result<Vec<String>> {
        Ok(match pattern {
            Some(p) => vec![p.to_owned()],
            None => self
                .namespaces()
                .await?
                .into_iter()
                .map(|ns| format!("{ns}:**"))
                .collect(),
        })
    }

    /// Each key's value and metadata (`None` for a key gone since it was listed).
    pub(crate) async fn records(&self, keys: &[String]) -> statemesh::Result<Vec<Option<Record>>> {
        match self {
            Backend::Local(s) => {
                let mut out = Vec::with_capacity(keys.len());
                for key in keys {
                    out.push(s.get_record(key).await?);
                }
                Ok(out)
            }
            // One task per key, so the requests are pipelined over the one connection instead
            // of each waiting for the previous reply.
            Backend::Remote(c) => {
                let mut tasks = tokio::task::JoinSet::new();
                for (i, key) in keys.iter().enumerate() {
                    let (c, key) = (c.clone(), key.clone());
                    tasks.spawn(async move { (i, c.get_record(&key).await) });
                }
                let mut out = vec![None; keys.len()];
                while let Some(joined) = tasks.join_next().await {
                    let (i, record) = joined.map_err(|e| {
                        statemesh::Error::Connection(format!("a request task failed: {e}"))
                    })?;
                    out[i] = record?;
                }
                Ok(out)
            }
        }
    }

    pub(crate) async fn checkpoint(&self) -> statemesh::Result<()> {
        match self {
            Backend::Local(s) => s.checkpoint().await,
            Backend::Remote(c) => c.checkpoint().await,
        }
    }

    /// Sizes, revisions and what the store's open found (see [`Stats`]).
    pub(crate) async fn stats(&self) -> statemesh::Result<Stats> {
        match self {
            Backend::Local(s) => Ok(Stats {
                keys: s.len() as u64,
                revision: s.revision(),
                history_floor: s.history_floor(),
                open_transactions: s.open_transactions() as u64,
                index_build_time: s.index_build_time(),
                repairs: s.recovery_repairs().to_vec(),
            }),
            Backend::Remote(c) => {
                let stats = c.stats().await?;
                Ok(Stats {
                    keys: stats.keys,
                    revision: stats.revision,
                    history_floor: stats.history_floor,
                    open_transactions: stats.open_transactions,
                    index_build_time: stats.index_build_time,
                    repairs: stats.recovery_repairs,
                })
            }
        }
    }

    /// Flushes and releases the data directory (a no-op for a server).
    pub(crate) async fn close(self) -> statemesh::Result<()> {
        match self {
            Backend::Local(s) => {
                let flushed = s.flush().await;
                s.close().await;
                flushed
            }
            Backend::Remote(_) => Ok(()),
        }
    }
}

/// What `statemesh stats` prints. For a data directory, the repairs are those this command's
/// own open made (a torn tail after a crash); for a server, those of the server's open.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    pub(crate) keys: u64,
    pub(crate) revision: u64,
    pub(crate) history_floor: u64,
    pub(crate) open_transactions: u64,
    pub(crate) index_build_time: std::time::Duration,
    pub(crate) repairs: Vec<String>,
}

async fn open_local(dir: &Path, access: Access) -> anyhow::Result<Backend> {
    if access == Access::Read && !dir.exists() {
        return Err(crate::exit::Failure::no_input(format!(
            "no data directory at {} (pass --data-dir, or --server for a running server)",
            dir.display()
        )));
    }
    let store = Store::open(dir)
        .await
        .with_context(|| format!("opening data directory {}", dir.display()))?;
    Ok(Backend::Local(store))
}
