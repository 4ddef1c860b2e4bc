//! Engine configuration.

use serde::{Deserialize, Serialize};

use crate::key::{KeyConfig, KeyError};
use crate::value::JsonEncoding;

/// How an engine validates, encodes and bounds what it stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EngineConfig {
    pub keys: KeyConfig,
    /// Largest stored value in bytes, two header bytes included. Default 16 MiB.
    pub max_value_size: usize,
    /// Largest user metadata object, as JSON text. Default 64 KiB.
    pub max_metadata_size: usize,
    /// Most items in one multi_put / multi_delete / multi_get. Default 100,000.
    pub max_batch: usize,
    /// How JSON values are stored.
    pub json_encoding: JsonEncoding,
    /// Evict keys (segmented LRU) beyond this many. `None` (default): no limit.
    pub max_entries: Option<u64>,
    /// Evict keys beyond this many bytes of keys, values and per-entry overhead
    /// ([`ENTRY_OVERHEAD`] each). `None` (default): no limit.
    pub max_bytes: Option<u64>,
    /// Changes kept in memory for reads at earlier revisions, key histories and change-feed
    /// replay (whole revisions are dropped together, oldest first, in blocks: up to
    /// [`EngineConfig::history_bound`] are kept). 0 keeps none. Default 10,000. Open
    /// interactive transactions keep every change after their snapshot besides.
    pub history_limit: usize,
}

/// Bytes charged per entry beyond its key and value, for `max_bytes`: the hash slot, the
/// ordered-index copy of the key and the entry's fields.
pub const ENTRY_OVERHEAD: u64 = 128;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            keys: KeyConfig::default(),
            max_value_size: 16 << 20,
            max_metadata_size: 64 << 10,
            max_batch: 100_000,
            json_encoding: JsonEncoding::Text,
            max_entries: None,
            max_bytes: None,
            history_limit: 10_000,
        }
    }
}

impl EngineConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), KeyError> {
        self.keys.validate()
    }

    /// Sets the path separator.
    pub fn with_separator(mut self, separator: char) -> Self {
        self.keys.separator = separator;
        self
    }

    /// Makes keys case-insensitive.
    pub fn with_case_insensitive_keys(mut self, yes: bool) -> Self {
        self.keys.case_insensitive = yes;
        self
    }

    /// Sets the value size limit.
    pub fn with_max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Evicts least recently used keys beyond these limits (an AP store's memory bound).
    pub fn with_memory_limits(mut self, max_entries: Option<u64>, max_bytes: Option<u64>) -> Self {
        self.max_entries = max_entries;
        self.max_bytes = max_bytes;
        self
    }

    /// Sets how many changes the history keeps.
    pub fn with_history_limit(mut self, changes: usize) -> Self {
        self.history_limit = changes;
        self
    }

    /// The most changes the history holds while no open transaction pins more: the limit and
    /// a sixteenth more. Past it the history drops its oldest revisions in one block, down to
    /// the limit; dropping the oldest revision on every write took 107 of a pipelined INCR's
    /// 2,641 instructions on the Redis port (docs/history.md).
    pub fn history_bound(&self) -> usize {
        self.history_limit.saturating_add(self.history_limit / 16)
    }

    /// Whether eviction is on.
    pub fn has_memory_limits(&self) -> bool {
        self.max_entries.is_some() || self.max_bytes.is_some()
    }

    /// Sets how JSON values are stored.
    pub fn with_json_encoding(mut self, encoding: JsonEncoding) -> Self {
        self.json_encoding = encoding;
        self
    }
}
