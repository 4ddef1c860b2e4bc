//! Write a statemesh value-codec plugin in Rust: implement [`Codec`] and call [`export_codec!`].
//!
//! ```ignore
//! use statemesh_plugin_sdk::{Codec, export_codec};
//!
//! struct Upper;
//! impl Codec for Upper {
//!     const NAME: &'static str = "upper";
//!     fn validate(data: &[u8]) -> Result<(), String> {
//!         std::str::from_utf8(data).map(|_| ()).map_err(|e| e.to_string())
//!     }
//!     fn encode(input: &[u8]) -> Result<Vec<u8>, String> {
//!         Ok(String::from_utf8_lossy(input).to_uppercase().into_bytes())
//!     }
//!     fn decode(data: &[u8]) -> Result<Vec<u8>, String> {
//!         Ok(data.to_vec())
//!     }
//! }
//! export_codec!(Upper);
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown` and a `cdylib` crate type.
//! The result imports nothing and exports the ABI of docs/plugins.md (version [`ABI_VERSION`]).
//!
//! This crate lives outside the statemesh workspace and its `forbid(unsafe_code)` lint: the
//! ABI hands raw pointers into linear memory across the host boundary, and turning them into
//! (and back from) Rust buffers takes `unsafe`. It is confined to the [`rt`] module.

/// The codec ABI version this SDK implements.
pub const ABI_VERSION: i32 = 1;

/// A value codec. Errors are messages; the host reports them as `Rejected`.
pub trait Codec {
    /// The codec name values are stored under (1-64 of ASCII letters, digits, `_`, `-`, `.`).
    const NAME: &'static str;
    /// A version string for the descriptor.
    const VERSION: &'static str = "0.0.0";
    /// Checks stored bytes.
    fn validate(data: &[u8]) -> Result<(), String>;
    /// Input form -> stored form.
    fn encode(input: &[u8]) -> Result<Vec<u8>, String>;
    /// Stored form -> input form.
    fn decode(data: &[u8]) -> Result<Vec<u8>, String>;
    /// Searchable text, if the value has any.
    fn to_text(data: &[u8]) -> Result<Option<String>, String> {
        let _ = data;
        Ok(None)
    }
    /// A JSON view (JSON text), if the codec has one.
    fn to_json(data: &[u8]) -> Result<Option<String>, String> {
        let _ = data;
        Ok(None)
    }
}

/// Escapes `s` as a JSON string literal (quotes included), for `to_json` without serde.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The glue [`export_codec!`] calls. Not meant to be used directly.
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod rt {
    use std::alloc::{Layout, alloc as raw_alloc, dealloc as raw_dealloc};

    /// Status bytes of a result buffer.
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const NONE: u8 = 2;

    /// `statemesh_alloc`: `len` bytes (alignment 1) for the host to fill; 0 if out of memory.
    pub fn alloc(len: i32) -> i32 {
        let Ok(len) = usize::try_from(len) else {
            return 0;
        };
        if len == 0 {
            return 0;
        }
        let Ok(layout) = Layout::from_size_align(len, 1) else {
            return 0;
        };
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { raw_alloc(layout) };
        ptr as usize as i32
    }

    /// `statemesh_dealloc`: frees a buffer this module allocated with exactly `len` bytes.
    pub fn dealloc(ptr: i32, len: i32) {
        let (Ok(len), false) = (usize::try_from(len), ptr == 0) else {
            return;
        };
        if len == 0 {
            return;
        }
        if let Ok(layout) = Layout::from_size_align(len, 1) {
            // SAFETY: the host passes back a (ptr, len) this module handed out from `alloc` or
            // as a result buffer, both allocated with this layout.
            unsafe { raw_dealloc(ptr as u32 as usize as *mut u8, layout) }
        }
    }

    /// Takes ownership of the input buffer the host filled (freed when the Vec drops).
    fn input(ptr: i32, len: i32) -> Vec<u8> {
        let len = len as u32 as usize;
        if ptr == 0 || len == 0 {
            return Vec::new();
        }
        // SAFETY: (ptr, len) came from `alloc(len)` (align 1, size len), which is exactly the
        // allocation a Vec<u8> with capacity len owns; the host hands it over for this call.
        unsafe { Vec::from_raw_parts(ptr as u32 as usize as *mut u8, len, len) }
    }

    /// Packs `[status][payload]` into a result buffer the host frees with `statemesh_dealloc`.
    pub fn result(status: u8, payload: &[u8]) -> i64 {
        let mut out = Vec::with_capacity(1 + payload.len());
        out.push(status);
        out.extend_from_slice(payload);
        let boxed = out.into_boxed_slice();
        let len = boxed.len() as u64;
        let ptr = Box::into_raw(boxed) as *mut u8 as usize as u64;
        ((ptr << 32) | len) as i64
    }

    fn status<T: AsRef<[u8]>>(r: Result<Option<T>, String>) -> i64 {
        match r {
            Ok(Some(payload)) => result(OK, payload.as_ref()),
            Ok(None) => result(NONE, &[]),
            Err(message) => result(ERROR, message.as_bytes()),
        }
    }

    pub fn describe<C: super::Codec>() -> i64 {
        let json = format!(
            "{{\"name\":{},\"version\":{},\"abi\":{},\"sdk\":\"statemesh-plugin-sdk\"}}",
            super::json_string(C::NAME),
            super::json_string(C::VERSION),
            super::ABI_VERSION
        );
        result(OK, json.as_bytes())
    }

    pub fn validate<C: super::Codec>(ptr: i32, len: i32) -> i64 {
        let data = input(ptr, len);
        match C::validate(&data) {
            // A packed 0 is "ok, empty payload": no buffer to allocate or free.
            Ok(()) => 0,
            Err(message) => result(ERROR, message.as_bytes()),
        }
    }

    pub fn encode<C: super::Codec>(ptr: i32, len: i32) -> i64 {
        status(C::encode(&input(ptr, len)).map(Some))
    }

    pub fn decode<C: super::Codec>(ptr: i32, len: i32) -> i64 {
        status(C::decode(&input(ptr, len)).map(Some))
    }

    pub fn to_text<C: super::Codec>(ptr: i32, len: i32) -> i64 {
        status(C::to_text(&input(ptr, len)))
    }

    pub fn to_json<C: super::Codec>(ptr: i32, len: i32) -> i64 {
        status(C::to_json(&input(ptr, len)))
    }
}

/// Exports the codec ABI for `$codec` (a type implementing [`Codec`]). Call it once per crate.
#[macro_export]
macro_rules! export_codec {
    ($codec:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn statemesh_abi_version() -> i32 {
            $crate::ABI_VERSION
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn statemesh_alloc(len: i32) -> i32 {
            $crate::rt::alloc(len)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn statemesh_dealloc(ptr: i32, len: i32) {
            $crate::rt::dealloc(ptr, len)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn statemesh_describe() -> i64 {
            $crate::rt::describe::<$codec>()
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn statemesh_validate(ptr: i32, len: i32) -> i64 {
            $crate::rt::validate::<$codec>(ptr, len)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn statemesh_encode(ptr: i32, len: i32) -> i64 {
            $crate::rt::encode::<$codec>(ptr, len)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn statemesh_decode(ptr: i32, len: i32) -> i64 {
            $crate::rt::decode::<$codec>(ptr, len)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn statemesh_to_text(ptr: i32, len: i32) -> i64 {
            $crate::rt::to_text::<$codec>(ptr, len)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn statemesh_to_json(ptr: i32, len: i32) -> i64 {
            $crate::rt::to_json::<$codec>(ptr, len)
        }
    };
}
