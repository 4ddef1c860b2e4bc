//! statemesh for JavaScript: wasm-bindgen bindings over the core engine, built into the npm
//! package `statemesh` (see `host-wasm/README.md` and `docs/javascript.md`).
//!
//! A single-threaded host: one engine per `Store`, time from `Date.now()`, an expiry timer on
//! `setTimeout`, durable storage behind core's `Storage` trait (Node directories in the native
//! file format; memory everywhere).

#[cfg(target_family = "wasm")]
mod codec;
mod convert;
mod error;
mod feed;
mod host;
mod node_disk;
mod scan;
pub mod search;
mod store;
mod txn;
pub mod types;

#[cfg(target_family = "wasm")]
pub use codec::meter_plugin;
pub use error::{HostError, Result, register_error_class};
pub use feed::Subscription;
pub use node_disk::{NodeDisk, NodeFile, NodeFs, NodeLock, register_node_fs};
pub use scan::ScanIterator;
pub use store::Store;
pub use txn::Transaction;
