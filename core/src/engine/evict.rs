//! Keeping an AP store within its memory limits (see `crate::lru` for the policy).

use compact_str::CompactString;

use super::{Batch, Engine};
use crate::entry::Entry;
use crate::event::ChangeKind;
use crate::keyspace::Keyspace;
use crate::lru::{Lru, Node};
use std::collections::BTreeMap;

/// The entry a queue node still stands for, if the node is not stale.
fn slot<'a>(
    namespaces: &'a mut BTreeMap<CompactString, Keyspace>,
    (ns, path, ticket): &Node,
) -> Option<&'a mut Entry> {
    namespaces
        .get_mut(ns.as_str())
        .and_then(|ks| ks.get_mut(path))
        .filter(|e| e.lru.ticket == *ticket)
}

impl Engine {
    /// Evicts keys (as part of `batch`) until the store is within its limits.
    pub(super) fn enforce_limits(&mut self, batch: &mut Batch) {
        if self.lru.is_none() {
            return;
        }
        let max_entries = self.config.max_entries.unwrap_or(u64::MAX);
        let max_bytes = self.config.max_bytes.unwrap_or(u64::MAX);
        while self.entries > max_entries || self.bytes > max_bytes {
            let Some((ns, path)) = self.next_victim() else {
                break;
            };
            self.erase(batch, &ns, &path, ChangeKind::Evict);
        }
    }

    /// Walks probation from its head: an accessed key is promoted, the first one not accessed
    /// since it was queued is the victim.
    fn next_victim(&mut self) -> Option<(CompactString, CompactString)> {
        let Engine {
            lru,
            namespaces,
            entries,
            ..
        } = self;
        let lru = lru.as_mut()?;
        // Every node is visited at most twice (its access bit is cleared on the first visit).
        let mut steps = lru.queued() * 2 + 8;
        while steps > 0 {
            steps -= 1;
            let Some(node) = lru.probation.pop_front() else {
                let node = lru.protected.pop_front()?;
                demote(lru, namespaces, node);
                continue;
            };
            let Some(entry) = slot(namespaces, &node) else {
                continue;
            };
            if entry.lru.take_accessed() {
                let ticket = lru.ticket();
                entry.lru.ticket = ticket;
                entry.lru.protected = true;
                lru.protected_len += 1;
                lru.protected.push_back((node.0, node.1, ticket));
                while lru.protected_len > Lru::protected_cap(*entries) {
                    let Some(oldest) = lru.protected.pop_front() else {
                        break;
                    };
                    demote(lru, namespaces, oldest);
                }
                continue;
            }
            return Some((node.0, node.1));
        }
        None
    }

    /// Forgets a key that left the keyspace; drops stale queue nodes once they pile up.
    pub(super) fn lru_forget(&mut self, old: &Entry) {
        let Engine {
            lru,
            namespaces,
            entries,
            ..
        } = self;
        let Some(lru) = lru.as_mut() else { return };
        if old.lru.protected {
            lru.protected_len -= 1;
        }
        if lru.queued() as u64 > 2 * *entries + 1024 {
            let live = |node: &Node| {
                namespaces
                    .get(node.0.as_str())
                    .and_then(|ks| ks.get(&node.1))
                    .is_some_and(|e| e.lru.ticket == node.2)
            };
            lru.probation.retain(live);
            lru.protected.retain(live);
        }
    }
}

/// Moves a protected key to the tail of probation, clearing its access bit.
fn demote(lru: &mut Lru, namespaces: &mut BTreeMap<CompactString, Keyspace>, node: Node) {
    let Some(entry) = slot(namespaces, &node) else {
        return;
    };
    entry.lru.take_accessed();
    let ticket = lru.ticket();
    entry.lru.ticket = ticket;
    if entry.lru.protected {
        entry.lru.protected = false;
        lru.protected_len -= 1;
    }
    lru.probation.push_back((node.0, node.1, ticket));
}
