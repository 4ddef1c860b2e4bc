//! statemesh-core: the sans-IO heart of statemesh.
//!
//! No IO, no clock, no threads, no randomness: an [`Engine`] takes commands with the current time
//! and hands back replies, log records to persist, change events and the next expiry deadline.
//! Hosts (the native `statemesh` crate, the wasm bindings) wire it to storage and time.
//!
//! ```
//! use statemesh_core::{Engine, EngineConfig, Timestamp, Value};
//!
//! let mut engine = Engine::new(EngineConfig::default()).unwrap();
//! let now = Timestamp::from_millis(1_000);
//! engine.put(now, "app:config.theme", &Value::from("dark")).unwrap();
//! assert_eq!(engine.get(now, "app:config.theme").unwrap(), Some(Value::from("dark")));
//! let record = engine.poll_log().unwrap(); // the host makes this durable
//! assert_eq!(record.revision, 1);
//! ```

pub mod codec;
pub mod config;
pub mod engine;
pub mod entry;
pub mod error;
pub mod event;
pub mod key;
mod keyspace;
pub mod log;
mod log_encoding;
mod lru;
pub mod ops;
pub mod pattern;
pub mod search;
pub mod storage;
pub mod time;
pub mod txn;
pub mod value;

pub use codec::{CodecError, CodecOp, CodecRegistry, ValueCodec};
pub use config::EngineConfig;
pub use engine::{
    Engine, KeyPattern, KeyVersion, LoggedPatch, Patch, SNAPSHOT_FORMAT_V1, SNAPSHOT_FORMAT_V2,
    ValueAt,
};
pub use entry::{Entry, Metadata, Record, Ttl};
pub use error::{EngineError, FormatError};
pub use event::{ChangeEvent, ChangeKind};
pub use key::{KeyConfig, KeyError};
pub use log::{EncodedLog, LogOp, LogRecord};
pub use ops::{Cursor, PutOptions, ScanPage, WriteOp, WriteResult};
pub use pattern::{Pattern, PatternError};
pub use search::{
    ImageError, ImageSetError, IndexImage, IndexOrigin, IndexStats, Language, Metric, SearchError,
    TextHit, TextIndexDef, ValueIndexDef, VectorHit, VectorIndex, VectorIndexDef, VectorSpec,
};
pub use storage::{LogBytes, MemoryStorage, Recovered, Storage, StorageError};
pub use time::{Now, Timestamp};
pub use txn::{
    BufferedWrite, Compare, CompareOp, CompareTarget, Isolation, PreparedTxn, Txn, TxnId, TxnOp,
    TxnOpResult, TxnResult, WaitPolicy,
};
pub use value::{Format, JsonEncoding, StoredValue, Value, ValueError, ValueKind};
