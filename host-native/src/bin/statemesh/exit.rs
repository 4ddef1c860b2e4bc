//! Exit codes, after BSD's sysexits, so that scripts can tell failures apart:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (for `get` and `ttl`: the key exists) |
//! | 1 | `get` / `ttl`: no such key |
//! | 65 | bad input: an invalid key, pattern, value or import line |
//! | 66 | the data directory or input file does not exist |
//! | 69 | the server cannot be reached |
//! | 70 | an internal error |
//! | 74 | the data directory is locked, unreadable or corrupt, or the store is poisoned |
//! | 75 | refused for the current state (version conflict, wrong type): retrying may work |
//! | 77 | authentication failed |

use std::process::ExitCode;

/// The key does not exist (like `grep` finding nothing).
pub(crate) fn not_found() -> ExitCode {
    ExitCode::from(1)
}

pub(crate) fn data() -> ExitCode {
    ExitCode::from(65)
}

pub(crate) fn unavailable() -> ExitCode {
    ExitCode::from(69)
}

pub(crate) fn software() -> ExitCode {
    ExitCode::from(70)
}

pub(crate) fn io() -> ExitCode {
    ExitCode::from(74)
}

pub(crate) fn refused() -> ExitCode {
    ExitCode::from(75)
}

pub(crate) fn no_permission() -> ExitCode {
    ExitCode::from(77)
}

/// A failure the CLI itself detects, with the exit code it means.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    /// Bad input data (65).
    pub(crate) fn data(message: impl Into<String>) -> anyhow::Error {
        Failure {
            code: 65,
            message: message.into(),
        }
        .into()
    }

    /// A missing data directory or input file (66).
    pub(crate) fn no_input(message: impl Into<String>) -> anyhow::Error {
        Failure {
            code: 66,
            message: message.into(),
        }
        .into()
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already
/// holds (thiserror's transparent and `{0}` messages repeat their source).
pub(crate) fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Chooses the exit code for an error from its statemesh error code, when it carries one.
pub(crate) fn code_for(error: &anyhow::Error) -> ExitCode {
    if let Some(f) = error.downcast_ref::<Failure>() {
        return ExitCode::from(f.code);
    }
    if let Some(e) = error.downcast_ref::<statemesh::Error>() {
        return match e.code() {
            "STORE_LOCKED" | "STORAGE" | "STORAGE_CORRUPT" | "POISONED" | "FORMAT" => io(),
            "VERSION_CONFLICT" | "VALUE_CONFLICT" | "TXN_CONFLICT" | "KEY_LOCKED"
            | "WRONG_TYPE" | "OVERFLOW" => refused(),
            "UNAUTHORIZED" => no_permission(),
            "CONNECTION" => unavailable(),
            _ => data(),
        };
    }
    if let Some(e) = error.downcast_ref::<statemesh::server::ServerError>() {
        return match e {
            statemesh::server::ServerError::Store(_) => io(),
            _ => data(),
        };
    }
    if error.downcast_ref::<std::io::Error>().is_some() {
        return unavailable();
    }
    software()
}
