//! Configuring and opening a store.

use std::sync::Arc;

use statemesh_core::{EngineConfig, JsonEncoding};

use crate::clock::{Clock, SystemClock};
use crate::error::Result;
use crate::store::Store;

/// Builds a [`Store`]. `Store::builder().open_in_memory().await` gives the defaults.
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    pub(crate) engine: EngineConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) event_capacity: usize,
}

impl Default for StoreBuilder {
    fn default() -> Self {
        StoreBuilder {
            engine: EngineConfig::default(),
            clock: Arc::new(SystemClock),
            event_capacity: 4096,
        }
    }
}

impl StoreBuilder {
    /// The whole engine configuration at once.
    pub fn engine_config(mut self, config: EngineConfig) -> Self {
        self.engine = config;
        self
    }

    /// Path separator of keys (default `.`).
    pub fn separator(mut self, separator: char) -> Self {
        self.engine = self.engine.with_separator(separator);
        self
    }

    /// Fold keys to lower case.
    pub fn case_insensitive_keys(mut self, yes: bool) -> Self {
        self.engine = self.engine.with_case_insensitive_keys(yes);
        self
    }

    /// Largest stored value in bytes (default 16 MiB).
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.engine = self.engine.with_max_value_size(bytes);
        self
    }

    /// How JSON values are stored (JSON text by default, or MessagePack).
    pub fn json_encoding(mut self, encoding: JsonEncoding) -> Self {
        self.engine = self.engine.with_json_encoding(encoding);
        self
    }

    /// The clock the store reads (the system clock by default; [`crate::ManualClock`] in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Events buffered per subscriber before it lags (default 4096).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Opens an empty store held in memory. Must run inside a tokio runtime (for the expiry timer).
    pub async fn open_in_memory(self) -> Result<Store> {
        Store::from_parts(self, None)
    }

    /// Opens an in-memory store holding the state of a snapshot taken with [`Store::snapshot`].
    pub async fn open_snapshot(self, snapshot: &[u8]) -> Result<Store> {
        Store::from_parts(self, Some(snapshot))
    }
}
