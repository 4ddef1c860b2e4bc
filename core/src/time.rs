//! Time as the core sees it: a number the host passes in, never a clock it reads.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as measured by the host.
///
/// The core never reads a clock. Every call that depends on time takes a `Timestamp`, and the
/// engine keeps the highest one it has seen so that time never runs backwards inside it: a key
/// that was expired at some `now` stays expired when a later call passes an earlier `now`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + millis`, saturating at `u64::MAX` instead of wrapping.
    pub const fn saturating_add_millis(self, millis: u64) -> Self {
        Timestamp(self.0.saturating_add(millis))
    }

    /// Milliseconds from `self` until `later`, zero when `later` is not after `self`.
    pub const fn millis_until(self, later: Timestamp) -> u64 {
        later.0.saturating_sub(self.0)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// The time of a call: a [`Timestamp`], or a closure that reads the host's clock only when the
/// call needs it. Point reads take a `Now` and consult it only for a key that has a TTL, so a
/// host can hand them its clock without paying for a clock read on every get.
pub trait Now {
    fn now(self) -> Timestamp;
}

impl Now for Timestamp {
    #[inline]
    fn now(self) -> Timestamp {
        self
    }
}

impl<F: FnOnce() -> Timestamp> Now for F {
    #[inline]
    fn now(self) -> Timestamp {
        self()
    }
}
