//! Errors of engine operations and of the log and snapshot formats.

use crate::key::KeyError;
use crate::pattern::PatternError;
use crate::search::SearchError;
use crate::txn::TxnId;
use crate::value::ValueError;

/// Why an engine operation was refused. A refused operation changes nothing itself. Time still
/// passes, though: a write refused for the current state of the keyspace (a version conflict, a
/// wrong type) has first swept the keys due at its `now`, as every write does, and that sweep
/// stays committed (with its events and log record). Calls refused for their arguments alone
/// (bad key, pattern, value, TTL) are refused before the sweep and change nothing at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("invalid key: {0}")]
    Key(#[from] KeyError),
    #[error("invalid pattern: {0}")]
    Pattern(#[from] PatternError),
    #[error("invalid value: {0}")]
    Value(#[from] ValueError),
    #[error("search: {0}")]
    Search(#[from] SearchError),
    #[error("version conflict on {key}: expected version {expected}, found {actual} (0 = absent)")]
    VersionConflict {
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("compare failed on {key}: the current value is not the expected one")]
    ValueConflict { key: String },
    #[error("{key} holds a {actual} value; this operation needs {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("increment of {key} overflows a 64-bit integer")]
    Overflow { key: String },
    #[error("TTL must be at least 1 millisecond, and an absolute expiry must be in the future")]
    InvalidTtl,
    #[error("{key} has no TTL to extend")]
    NoTtl { key: String },
    #[error("scan limit must be at least 1")]
    InvalidLimit,
    #[error("invalid scan cursor: {0}")]
    InvalidCursor(&'static str),
    #[error("user metadata is {size} bytes as JSON; the limit is {limit}")]
    MetadataTooLarge { size: usize, limit: usize },
    #[error("a batch of {count} items exceeds the limit of {limit}")]
    BatchTooLarge { count: usize, limit: usize },
    #[error("stored value of {key} fails its checksum")]
    Corrupt { key: String },
    #[error(
        "revision {requested} is compacted: history starts after revision {floor}; \
         read or replay from {floor} or later"
    )]
    Compacted { requested: u64, floor: u64 },
    #[error("the write cannot be logged: {0}")]
    Unloggable(String),
    #[error("invalid patch: {0}")]
    InvalidPatch(String),
    #[error("patch of {key} does not apply: {message}")]
    PatchFailed { key: String, message: String },
    #[error("revision {requested} is in the future: the store is at revision {current}")]
    FutureRevision { requested: u64, current: u64 },
    #[error(
        "transaction conflict on {key}: another commit changed it after this transaction's \
         snapshot; the transaction is rolled back, begin it again and retry"
    )]
    TxnConflict { key: String },
    #[error(
        "transaction {id} is not open: it committed, was rolled back, failed or never began; \
         begin a new one"
    )]
    TxnNotFound { id: TxnId },
    #[error(
        "transaction {id} timed out and was dropped; begin it again (with a longer timeout if \
         it needs more time)"
    )]
    TxnExpired { id: TxnId },
    #[error(
        "transaction {id} is prepared: it takes no more reads or writes; resolve it with \
         commit_prepared or cancel_prepared"
    )]
    TxnPrepared { id: TxnId },
    #[error("transaction {id} is open but not prepared: prepare it first, or commit it directly")]
    TxnNotPrepared { id: TxnId },
    #[error("transaction timeout must be at least 1 millisecond")]
    InvalidTimeout,
    #[error(
        "{key} is locked by prepared transaction {txn}; it can be written once that \
         transaction is committed or cancelled"
    )]
    Locked { key: String, txn: TxnId },
    #[error(
        "{key} is locked by prepared transaction {txn}: wait until it is committed or \
         cancelled, then prepare again"
    )]
    WouldWait { key: String, txn: TxnId },
    #[error("codec refused the write of {key}: {error}")]
    Codec {
        key: String,
        error: crate::codec::CodecError,
    },
    #[error("{key} is owned by codec {expected}; the value names codec {actual}")]
    CodecMismatch {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("{key}: no codec named {codec} is registered (the registry is strict)")]
    UnknownCodec { key: String, codec: String },
}

impl EngineError {
    /// A stable, machine-readable name for this kind of error (`VERSION_CONFLICT`, ...), the
    /// same in every host: JavaScript sees it as `err.code`, the JSON-lines protocol as
    /// `error.code`. Codes never change meaning; new kinds may add codes.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Key(_) => "INVALID_KEY",
            EngineError::Pattern(_) => "INVALID_PATTERN",
            EngineError::Value(ValueError::TooLarge { .. }) => "VALUE_TOO_LARGE",
            EngineError::Value(_) => "INVALID_VALUE",
            EngineError::VersionConflict { .. } => "VERSION_CONFLICT",
            EngineError::ValueConflict { .. } => "VALUE_CONFLICT",
            EngineError::WrongType { .. } => "WRONG_TYPE",
            EngineError::Overflow { .. } => "OVERFLOW",
            EngineError::InvalidTtl => "INVALID_TTL",
            EngineError::NoTtl { .. } => "NO_TTL",
            EngineError::InvalidLimit
            | EngineError::InvalidCursor(_)
            | EngineError::InvalidTimeout => "INVALID_ARGUMENT",
            EngineError::MetadataTooLarge { .. } => "METADATA_TOO_LARGE",
            EngineError::BatchTooLarge { .. } => "BATCH_TOO_LARGE",
            EngineError::Corrupt { .. } => "CORRUPT",
            EngineError::Compacted { .. } => "COMPACTED",
            EngineError::InvalidPatch(_) => "INVALID_PATCH",
            EngineError::Unloggable(_) => "FORMAT",
            EngineError::PatchFailed { .. } => "PATCH_FAILED",
            EngineError::FutureRevision { .. } => "FUTURE_REVISION",
            EngineError::TxnConflict { .. } => "TXN_CONFLICT",
            EngineError::TxnNotFound { .. } => "TXN_NOT_FOUND",
            EngineError::TxnExpired { .. } => "TXN_EXPIRED",
            EngineError::TxnPrepared { .. } | EngineError::TxnNotPrepared { .. } => "TXN_STATE",
            EngineError::Locked { .. } | EngineError::WouldWait { .. } => "KEY_LOCKED",
            EngineError::Codec { .. }
            | EngineError::CodecMismatch { .. }
            | EngineError::UnknownCodec { .. } => "CODEC",
            EngineError::Search(e) => match e {
                SearchError::UnknownIndex { .. } => "UNKNOWN_INDEX",
                SearchError::DuplicateIndex { .. } => "DUPLICATE_INDEX",
                SearchError::InvalidDeclaration { .. } => "INVALID_DECLARATION",
                SearchError::MalformedQuery { .. } => "MALFORMED_QUERY",
                SearchError::DimensionMismatch { .. } => "DIMENSION_MISMATCH",
                SearchError::InvalidVector { .. } => "INVALID_VECTOR",
                SearchError::InvalidLimit { .. } => "INVALID_ARGUMENT",
                SearchError::KeyOutsideIndex { .. } => "KEY_OUTSIDE_INDEX",
                SearchError::Index { .. } => "SEARCH",
            },
        }
    }
}

/// Why log records or a snapshot could not be decoded or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("empty input")]
    Empty,
    #[error("unknown {what} format version {version}")]
    UnknownVersion { what: &'static str, version: u8 },
    #[error("cannot decode {what}: {message}")]
    Decode { what: &'static str, message: String },
    #[error("{what} has {count} unexpected trailing bytes")]
    TrailingBytes { what: &'static str, count: usize },
    #[error("snapshot was written with key settings {found}, the store uses {expected}")]
    ConfigMismatch { expected: String, found: String },
    #[error("entry {key} fails its checksum")]
    Corrupt { key: String },
    #[error("log record revision {found} does not follow revision {current}")]
    RevisionGap { current: u64, found: u64 },
    #[error("invalid key {key:?} in {what}")]
    InvalidKey { what: &'static str, key: String },
}
