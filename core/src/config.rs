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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            keys: KeyConfig::default(),
            max_value_size: 16 << 20,
            max_metadata_size: 64 << 10,
            max_batch: 100_000,
            json_encoding: JsonEncoding::Text,
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

    /// Sets how JSON values are stored.
    pub fn with_json_encoding(mut self, encoding: JsonEncoding) -> Self {
        self.json_encoding = encoding;
        self
    }
}
