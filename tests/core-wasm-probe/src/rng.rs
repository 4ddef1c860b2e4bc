//! The randomness source of the wasm build (getrandom's `custom` backend, chosen with
//! `--cfg getrandom_backend="custom"` in tests/run).
//!
//! tantivy names each segment with a random UUID; in a module that may import nothing, the
//! bytes come from a counter mixed by splitmix64. Names only need to be unique, and core never
//! lets them influence results, so a deterministic source is both enough and reproducible.

#![cfg(all(target_family = "wasm", target_os = "unknown"))]

use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// # Safety
/// getrandom calls it with a valid, writable `dest` of `len` bytes.
#[unsafe(no_mangle)]
unsafe extern "Rust" fn __getrandom_v03_custom(
    dest: *mut u8,
    len: usize,
) -> Result<(), getrandom::Error> {
    // SAFETY: the caller passes a valid, writable buffer of `len` bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(dest, len) };
    for chunk in out.chunks_mut(8) {
        let bytes = splitmix64(COUNTER.fetch_add(1, Ordering::Relaxed)).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    Ok(())
}
