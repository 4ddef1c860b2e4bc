//! statemesh: an embeddable state store for sessions, conversation history and agent memory.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), statemesh::Error> {
//! use statemesh::{Store, Value};
//!
//! let store = Store::builder().open_in_memory().await?;
//! store.put("sessions:user.42.cart", Value::from("3 items")).await?;
//! store.put_with_ttl("sessions:user.42.token", Value::from("abc"), 30_000).await?;
//! assert_eq!(store.get("sessions:user.42.cart").await?, Some(Value::from("3 items")));
//! assert_eq!(store.keys("sessions:user.42.*").await?.len(), 2);
//! # Ok(()) }
//! ```
//!
//! Keys are `namespace:path` (see [`statemesh_core::key`]); patterns add `*`, `**`, `?`,
//! `[abc]` and `{a,b}` (see [`statemesh_core::pattern`]).

mod builder;
mod client;
mod clock;
mod codecs;
mod committer;
mod error;
mod feed;
mod history;
mod scan_stream;
mod search;
pub mod server;
mod store;
mod subscription;
mod timer;
mod txn;

pub use builder::{Durability, StoreBuilder};
pub use client::{Client, RemoteSubscription, RemoteTransaction, ServerStats};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result, SubscriptionError};
pub use history::{ChangeStream, Since};
pub use scan_stream::ScanStream;
pub use store::Store;
pub use subscription::{HandlerSubscription, Subscription};
pub use txn::Transaction;

pub use statemesh_core as core;
pub use statemesh_core::search::{
    ImageError, IndexImage, IndexOrigin, IndexStats, Language, Metric, SearchError, TextHit,
    TextIndexDef, ValueIndexDef, VectorHit, VectorIndexDef,
};
pub use statemesh_core::{
    ChangeEvent, ChangeKind, CodecError, CodecRegistry, Cursor, EngineConfig, EngineError, Format,
    JsonEncoding, KeyPattern, KeyVersion, LogBytes, MemoryStorage, Metadata, Patch, PutOptions,
    Record, Recovered, ScanPage, Storage, StorageError, StoredValue, Timestamp, Ttl, Value,
    ValueAt, ValueCodec, ValueKind, WriteOp, WriteResult,
};
pub use statemesh_core::{
    Compare, CompareOp, CompareTarget, Isolation, PreparedTxn, Txn, TxnId, TxnOp, TxnOpResult,
    TxnResult, WaitPolicy,
};
pub use statemesh_fs::{FsOptions, SyncPolicy};
pub use statemesh_hnsw::HnswParams;

/// Compiles the README's Rust examples as doctests, so the quick start stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
