//! Helpers shared by the bench binaries.
#![allow(dead_code)] // each bench uses a subset

use anyhow::{Context, Result};

/// A count from the environment (`1_000_000` and `1,000,000` accepted), or `default`.
pub(crate) fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(text) => parse_count(&text).with_context(|| format!("{name}={text}")),
        Err(_) => Ok(default),
    }
}

/// A count written with optional `_` or `,` separators.
pub(crate) fn parse_count(text: &str) -> Result<usize> {
    let digits: String = text.chars().filter(|c| !matches!(c, '_' | ',')).collect();
    Ok(digits.trim().parse()?)
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
