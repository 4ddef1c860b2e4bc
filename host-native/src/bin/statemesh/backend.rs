//! What an operator command talks to: a data directory opened in this process, or a running
//! server. Both answer the same calls, so each command is written once.

use std::path::Path;

use anyhow::Context;
use statemesh::{Cursor, PutOptions, Record, ScanPage, Store, Ttl, Value, WriteResult};

use crate::Target;

/// Keys per `multi_put` when importing: big enough to amortise a sync, small enough to keep
/// one batch's lock hold short.
pub(crate) const IMPORT_BATCH: usize = 5_000;

pub(crate) enum Backend {
    Local(Store),
}

/// Whether the command may create the data directory (writes) or needs it to exist (reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

impl Backend {
    pub(crate) async fn open(target: &Target, access: Access) -> anyhow::Result<Backend> {
        if let Some(server) = &target.server {
            anyhow::bail!("--server {server}: remote operator commands are not built yet");
        }
        open_local(&target.data_dir, access).await
    }

    pub(crate) async fn get(&self, key: &str) -> statemesh::Result<Option<Value>> {
        match self {
            Backend::Local(s) => s.get(key).await,
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
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> statemesh::Result<WriteResult> {
        match self {
            Backend::Local(s) => s.delete(key).await,
        }
    }

    pub(crate) async fn keys(&self, pattern: &str) -> statemesh::Result<Vec<String>> {
        match self {
            Backend::Local(s) => s.keys(pattern).await,
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
        }
    }

    pub(crate) async fn get_ttl(&self, key: &str) -> statemesh::Result<Option<Ttl>> {
        match self {
            Backend::Local(s) => s.get_ttl(key).await,
        }
    }

    /// Writes a batch of plain keys (no TTL, no metadata); returns how many were written.
    pub(crate) async fn import(&self, items: Vec<(String, Value)>) -> statemesh::Result<u64> {
        match self {
            Backend::Local(s) => s.import(items, IMPORT_BATCH).await,
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
        }
    }

    pub(crate) async fn namespaces(&self) -> statemesh::Result<Vec<String>> {
        match self {
            Backend::Local(s) => Ok(s.namespaces()),
        }
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
        }
    }

    pub(crate) async fn checkpoint(&self) -> statemesh::Result<()> {
        match self {
            Backend::Local(s) => s.checkpoint().await,
        }
    }

    /// Number of live keys and the store revision.
    pub(crate) async fn stats(&self) -> statemesh::Result<Stats> {
        match self {
            Backend::Local(s) => Ok(Stats {
                keys: s.len() as u64,
                revision: s.revision(),
            }),
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
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) keys: u64,
    pub(crate) revision: u64,
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
