//! Memory limits for AP stores: a segmented LRU (a probation and a protected segment),
//! approximated with access bits as in CLOCK so that reads only set a bit and never take a lock.
//!
//! New keys enter probation. A key found accessed when it reaches the head of probation is
//! promoted to protected instead of evicted; protected is capped at 80% of the keys and demotes
//! its oldest back to probation. A burst of keys that are written once and never read (a scan,
//! a bulk import) therefore only ever displaces other probation keys, never the protected hot
//! set: the segmented LRU's scan resistance.
//!
//! The queues are bookkeeping, not data: snapshots and log records do not carry them, and a
//! reopened store starts with every key in probation. Evictions are logged, so replay agrees.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use compact_str::CompactString;

/// Per-entry LRU state. Compares equal and serializes to nothing: it is not part of the data.
#[derive(Debug, Default)]
pub struct LruSlot {
    accessed: AtomicBool,
    pub(crate) ticket: u64,
    pub(crate) protected: bool,
}

impl Clone for LruSlot {
    fn clone(&self) -> Self {
        LruSlot {
            accessed: AtomicBool::new(self.accessed.load(Ordering::Relaxed)),
            ticket: self.ticket,
            protected: self.protected,
        }
    }
}

impl PartialEq for LruSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for LruSlot {}

impl LruSlot {
    /// Marks the entry used. Loads first so a hot entry's cache line is not written every read.
    #[inline]
    pub(crate) fn touch(&self) {
        if !self.accessed.load(Ordering::Relaxed) {
            self.accessed.store(true, Ordering::Relaxed);
        }
    }

    /// Reads and clears the access bit.
    pub(crate) fn take_accessed(&self) -> bool {
        self.accessed.swap(false, Ordering::Relaxed)
    }
}

/// A queue node: the key and the ticket it had when queued; a node whose ticket no longer
/// matches its entry's (deleted, re-created, moved) is stale and skipped.
pub(crate) type Node = (CompactString, CompactString, u64);

#[derive(Debug, Default)]
pub(crate) struct Lru {
    pub(crate) probation: VecDeque<Node>,
    pub(crate) protected: VecDeque<Node>,
    /// Live keys currently in the protected segment.
    pub(crate) protected_len: u64,
    next_ticket: u64,
}

impl Lru {
    pub(crate) fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    /// Protected holds at most 80% of the keys.
    pub(crate) fn protected_cap(entries: u64) -> u64 {
        entries - entries / 5
    }

    pub(crate) fn queued(&self) -> usize {
        self.probation.len() + self.protected.len()
    }
}
