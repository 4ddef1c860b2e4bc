//! Errors of the native store.

use statemesh_core::{EngineError, FormatError, KeyError, StorageError, TxnId};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operation itself was refused (bad key, version conflict, wrong type, ...).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A snapshot or log record could not be decoded.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The store configuration is invalid.
    #[error("invalid store configuration: {0}")]
    Config(#[from] KeyError),
    /// Storage could not be opened or read (locked by another process, unreadable, corrupt).
    #[error("storage: {0}")]
    Storage(StorageError),
    /// Persisting failed earlier: the store accepts nothing more until it is reopened, which
    /// recovers the last durable state. The write that hit the failure was not acknowledged.
    #[error("the store is poisoned by a storage failure ({0}); reopen it to recover")]
    Poisoned(StorageError),
    /// `close()` was called on this store.
    #[error("the store is closed")]
    Closed,
    /// The store was opened outside a tokio runtime, which its expiry timer needs.
    #[error("a store must be opened inside a tokio runtime")]
    NoRuntime,
    /// `prepare` with `WaitPolicy::Wait` waited for a key locked by another prepared
    /// transaction until its own transaction timed out; the transaction is rolled back.
    #[error(
        "transaction {id} timed out waiting for {key}, locked by prepared transaction {holder}; \
         it is rolled back: resolve {holder} (commit_prepared or cancel_prepared) and begin again"
    )]
    LockTimeout {
        id: TxnId,
        key: String,
        holder: TxnId,
    },
    /// `encode_custom` / `put_custom` on a key that no registered codec pattern owns.
    #[error("no codec owns {key}; register one for its pattern with StoreBuilder::codec")]
    NoCodec { key: String },
    /// [`crate::Client`]: the server cannot be reached, or the connection to it broke. A
    /// request in flight when it broke may or may not have been applied.
    #[error("connection to the server: {0}")]
    Connection(String),
    /// [`crate::Client`]: the server refused the request; `code` is the server's own
    /// (`VERSION_CONFLICT`, `WRONG_TYPE`, `UNAUTHORIZED`, ...), the same the embedded store uses.
    #[error("{message} ({code})")]
    Remote { code: String, message: String },
    /// [`crate::Client`]: the server answered something this client cannot read (a different
    /// protocol version, or not a statemesh server).
    #[error("protocol: {0}")]
    Protocol(String),
    /// [`crate::Client`]: no answer within the client's request timeout
    /// ([`crate::Client::with_request_timeout`]). As with a broken connection, the request may
    /// or may not have been applied; the connection stays usable.
    #[error("no answer to {op:?} within {after:?}")]
    Timeout {
        op: String,
        after: std::time::Duration,
    },
}

impl Error {
    /// A stable, machine-readable name for this kind of error, the same across hosts and
    /// protocols (see [`EngineError::code`]): match on it rather than on message text.
    pub fn code(&self) -> &str {
        match self {
            Error::Engine(e) => e.code(),
            Error::Format(_) => "FORMAT",
            Error::Config(_) => "INVALID_CONFIG",
            Error::Storage(e) => e.code(),
            Error::Poisoned(_) => "POISONED",
            Error::Closed => "CLOSED",
            Error::NoRuntime => "NO_RUNTIME",
            Error::LockTimeout { .. } => "LOCK_TIMEOUT",
            Error::NoCodec { .. } => "CODEC",
            Error::Connection(_) => "CONNECTION",
            Error::Remote { code, .. } => code,
            Error::Protocol(_) => "PROTOCOL",
            Error::Timeout { .. } => "TIMEOUT",
        }
    }
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a subscription stopped delivering events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The subscriber fell behind its buffer and missed `missed` events; it can go on receiving.
    #[error("subscriber lagged and missed {missed} events")]
    Lagged { missed: u64 },
    /// The store was closed or dropped.
    #[error("the store is closed")]
    Closed,
    /// A change stream was asked to start (or, after falling behind, to go on) from a revision
    /// the history no longer keeps; start again from `floor` or later, after reading the
    /// current state.
    #[error(
        "changes after revision {requested} are compacted; the history starts after revision {floor}"
    )]
    Compacted { requested: u64, floor: u64 },
    /// [`crate::Client`]: the connection the subscription lived on broke, so the server
    /// dropped it. The client dials again on its next call; subscribe again with
    /// [`crate::Client::stream_changes`] from the last revision processed to miss nothing.
    #[error("the connection to the server broke; subscribe again from the last revision seen")]
    Disconnected,
}
