//! Errors as JavaScript sees them: a `StatemeshError` (an `Error` subclass defined by the
//! package's JS entry) with a stable `code` per kind, so callers branch on `err.code` rather than
//! on message text.

use std::cell::RefCell;

use statemesh_core::{EngineError, FormatError, KeyError, StorageError};
use wasm_bindgen::prelude::*;

/// Why a call from JavaScript failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("invalid store configuration: {0}")]
    Config(#[from] KeyError),
    #[error("storage: {0}")]
    Storage(StorageError),
    #[error("the store is poisoned by a storage failure ({0}); reopen it to recover")]
    Poisoned(StorageError),
    #[error("the store is closed")]
    Closed,
    /// A JavaScript argument of the wrong shape.
    #[error("invalid argument: {0}")]
    Argument(String),
    #[error("subscriber lagged and missed {missed} events")]
    Lagged { missed: u64 },
    #[error("{0}")]
    Unsupported(String),
}

impl HostError {
    /// The stable code JavaScript sees as `err.code`. Codes never change meaning.
    pub fn code(&self) -> &'static str {
        match self {
            HostError::Engine(e) => e.code(),
            HostError::Format(_) => "FORMAT",
            HostError::Config(_) => "INVALID_CONFIG",
            HostError::Storage(e) => e.code(),
            HostError::Poisoned(_) => "POISONED",
            HostError::Closed => "CLOSED",
            HostError::Argument(_) => "INVALID_ARGUMENT",
            HostError::Lagged { .. } => "LAGGED",
            HostError::Unsupported(_) => "UNSUPPORTED",
        }
    }
}

impl From<serde_wasm_bindgen::Error> for HostError {
    fn from(e: serde_wasm_bindgen::Error) -> Self {
        HostError::Argument(e.to_string())
    }
}

thread_local! {
    /// The `StatemeshError` class, registered by the package's JS entry at load.
    static ERROR_CLASS: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
}

/// Registers the class errors are built with: `new Class(code, message)`. Called once by the
/// package entry; without it errors are plain `Error`s that still carry `code`.
#[wasm_bindgen(js_name = __registerErrorClass)]
pub fn register_error_class(class: js_sys::Function) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = Some(class));
}

impl From<HostError> for JsValue {
    fn from(e: HostError) -> JsValue {
        let code = JsValue::from_str(e.code());
        let message = JsValue::from_str(&e.to_string());
        let built = ERROR_CLASS.with(|c| {
            c.borrow().as_ref().and_then(|class| {
                js_sys::Reflect::construct(class, &js_sys::Array::of2(&code, &message)).ok()
            })
        });
        let error = built.unwrap_or_else(|| {
            let error = js_sys::Error::new(&e.to_string());
            error.set_name("StatemeshError");
            // A fresh Error object takes any property; nothing to report if it refused.
            let _ = js_sys::Reflect::set(&error, &"code".into(), &code);
            error.into()
        });
        if let HostError::Lagged { missed } = e {
            // How many events were dropped, for callers that report it.
            let _ = js_sys::Reflect::set(&error, &"missed".into(), &(missed as f64).into());
        }
        error
    }
}

/// `Result` with [`HostError`].
pub type Result<T, E = HostError> = std::result::Result<T, E>;
