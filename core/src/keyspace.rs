//! One namespace's keys: a hash index for point lookups beside an ordered index for scans.
//!
//! Point reads and writes are cache-miss bound (DESIGN.md). Entries live in a slab (a `Vec` of
//! key + entry, in no particular order), and the hash index holds only a 4-byte slot per key:
//! the entry's position in the slab. A million keys make an index of ~5.7 MB (slots plus the
//! table's one control byte per slot), which stays in the last-level cache, where an index
//! holding the 136-byte entries inline was ~160 MB of DRAM: each new key then cost a random write
//! of three cache lines plus first-touch page faults, and each growth rehashed and copied
//! everything. Now a new key is an append to the slab (sequential memory) and a write to a
//! cached slot; growing the slab is a `realloc` (the allocator remaps large blocks instead of
//! copying). The table's 7-bit tags reject almost every other key before the slab is read.
//! Growing the index rehashes from the slab's keys (random reads), which is why bulk loads and
//! replays reserve room first ([`Keyspace::reserve`]). A get costs the slot (usually cached),
//! the slab entry and the value.
//!
//! Removal swaps the slab's last entry into the hole and re-points its slot, so the slab stays
//! dense. Positions are `u32`: a namespace holds at most 2^32 - 1 keys.
//!
//! The ordered index is a B-tree plus a sorted *tail*: a key greater than every key held is
//! pushed onto the tail instead of inserted into the tree. Keys that arrive in order (message
//! ids, timestamps, sequence numbers, a sorted import, the replay of one, a snapshot restore)
//! then cost a push instead of a B-tree descent with dozens of key comparisons, which dominated
//! bulk loads and log replay. The tail is never folded for size: scans merge two sorted
//! sequences either way, and folding a million-key tail cost a tenth of a bulk load. It is folded
//! into the tree only when a removal hits its middle (shifting a long `Vec` per removal would be
//! quadratic), so every key is folded at most once per removal burst.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::iter::Peekable;
use std::ops::Bound;

use compact_str::CompactString;
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::entry::Entry;

/// A key and its entry. A tuple, so that a snapshot's `Vec` of them becomes the slab as it is.
type Slot = (CompactString, Entry);

/// Where a key's entry was found, so a write that just read it replaces it without a second
/// hash probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position(usize);

#[derive(Debug, Default, Clone)]
pub(crate) struct Keyspace {
    slab: Vec<Slot>,
    /// Slab positions. The table's tags (7 hash bits per slot) reject almost every other key
    /// before the slab is read; growing rehashes from the slab's keys.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    tree: BTreeSet<CompactString>,
    /// Keys greater than every key in `tree`, in increasing order.
    tail: Vec<CompactString>,
}

/// The table's hash of the key at `position`, for rehashing.
#[inline]
fn slot_hash<'a>(hasher: &'a DefaultHashBuilder, slab: &'a [Slot]) -> impl Fn(&u32) -> u64 + 'a {
    move |&p| hasher.hash_one(slab[p as usize].0.as_str())
}

impl Keyspace {
    #[inline]
    fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    #[inline]
    fn find(&self, path: &str) -> Option<usize> {
        let slab = &self.slab;
        self.index
            .find(self.hash(path), |&p| slab[p as usize].0.as_str() == path)
            .map(|&p| p as usize)
    }

    #[inline]
    pub(crate) fn get(&self, path: &str) -> Option<&Entry> {
        self.find(path).map(|i| &self.slab[i].1)
    }

    /// [`Keyspace::get`], with where the entry is, for [`Keyspace::replace_at`].
    #[inline]
    pub(crate) fn get_with_position(&self, path: &str) -> Option<(Position, &Entry)> {
        self.find(path).map(|i| (Position(i), &self.slab[i].1))
    }

    /// [`Keyspace::get_with_position`] for changing the entry where it lies.
    #[inline]
    pub(crate) fn get_with_position_mut(&mut self, path: &str) -> Option<(Position, &mut Entry)> {
        let i = self.find(path)?;
        self.slab.get_mut(i).map(|(_, entry)| (Position(i), entry))
    }

    /// The entry of `path` at `at`; `None` when `at` no longer holds `path`.
    #[inline]
    pub(crate) fn get_at(&self, at: Position, path: &str) -> Option<&Entry> {
        match self.slab.get(at.0) {
            Some((key, held)) if key.as_str() == path => Some(held),
            _ => None,
        }
    }

    /// Replaces the entry of `path` found at `at` without looking it up again; `Err` gives the
    /// entry back when `at` no longer holds `path` (the keyspace changed since).
    #[inline]
    pub(crate) fn replace_at(
        &mut self,
        at: Position,
        path: &str,
        entry: Entry,
    ) -> Result<Entry, Entry> {
        match self.slab.get_mut(at.0) {
            Some((key, held)) if key.as_str() == path => Ok(std::mem::replace(held, entry)),
            _ => Err(entry),
        }
    }

    pub(crate) fn get_mut(&mut self, path: &str) -> Option<&mut Entry> {
        self.find(path).map(|i| &mut self.slab[i].1)
    }

    /// A keyspace from entries in strictly increasing path order (as snapshots hold them): the
    /// entries become the slab and their keys the tail as they are, with no tree to build.
    pub(crate) fn from_sorted(items: Vec<Slot>) -> Keyspace {
        let mut keyspace = Keyspace {
            tail: items.iter().map(|(p, _)| p.clone()).collect(),
            slab: items,
            ..Keyspace::default()
        };
        let Keyspace {
            slab,
            index,
            hasher,
            ..
        } = &mut keyspace;
        index.reserve(slab.len(), slot_hash(hasher, slab));
        for (position, (key, _)) in slab.iter().enumerate() {
            // Saturating as in `insert`: no memory holds 2^32 keys of a namespace.
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            index.insert_unique(
                hasher.hash_one(key.as_str()),
                position,
                slot_hash(hasher, slab),
            );
        }
        keyspace
    }

    /// Room for `additional` more keys without growing, whose growth was a fifth of a bulk load
    /// when entries lived in the index.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.slab.reserve(additional);
        self.index
            .reserve(additional, slot_hash(&self.hasher, &self.slab));
    }

    /// Gives back capacity far beyond the keys held (after an over-estimated
    /// [`Keyspace::reserve`]).
    pub(crate) fn shrink_if_sparse(&mut self) {
        if self.index.capacity() > 4 * self.index.len().max(1024) {
            self.index
                .shrink_to_fit(slot_hash(&self.hasher, &self.slab));
            self.slab.shrink_to_fit();
        }
    }

    /// Inserts or replaces (one hash probe); returns the previous entry.
    pub(crate) fn insert(&mut self, path: &str, entry: Entry) -> Option<Entry> {
        let hash = self.hash(path);
        let Keyspace {
            slab,
            index,
            hasher,
            ..
        } = self;
        let found = index
            .find(hash, |&p| slab[p as usize].0.as_str() == path)
            .copied();
        if let Some(p) = found {
            return Some(std::mem::replace(&mut slab[p as usize].1, entry));
        }
        let key = CompactString::from(path);
        // More than 2^32 - 1 keys in one namespace is past any memory this runs in (each costs
        // well over 100 bytes); saturating keeps the arithmetic total.
        let position = u32::try_from(slab.len()).unwrap_or(u32::MAX);
        index.insert_unique(hash, position, slot_hash(hasher, slab));
        slab.push((key.clone(), entry));
        self.order_insert(key);
        None
    }

    fn order_insert(&mut self, key: CompactString) {
        let greatest = self.tail.last().or_else(|| self.tree.last());
        if greatest.is_none_or(|g| key > *g) {
            self.tail.push(key);
        } else {
            self.tree.insert(key);
        }
    }

    /// Moves the tail into the tree: a linear rebuild when the tail is a large share of the
    /// keys, inserts (which all take the tree's rightmost path) when it is small.
    fn fold_tail(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let tail = std::mem::take(&mut self.tail);
        if tail.len() * 16 >= self.tree.len() {
            // Every tail key is greater than every tree key: append rebuilds from two sorted runs.
            let mut other: BTreeSet<CompactString> = tail.into_iter().collect();
            self.tree.append(&mut other);
        } else {
            self.tree.extend(tail);
        }
    }

    pub(crate) fn remove(&mut self, path: &str) -> Option<Entry> {
        let hash = self.hash(path);
        let slab = &self.slab;
        let found = self
            .index
            .find_entry(hash, |&p| slab[p as usize].0.as_str() == path)
            .ok()?;
        let (removed, _) = found.remove();
        let position = removed as usize;
        let last = self.slab.len() - 1;
        if position != last {
            // The last entry fills the hole: point its slot at its new place.
            let moved_hash = self.hash(&self.slab[last].0);
            if let Some(slot) = self.index.find_mut(moved_hash, |&p| p as usize == last) {
                *slot = removed;
            }
        }
        let old = self.slab.swap_remove(position).1;
        if !self.tree.remove(path) {
            match self.tail.binary_search_by(|k| k.as_str().cmp(path)) {
                // The last key leaves in O(1); any other folds the tail first, so a removal
                // never shifts a long tail.
                Ok(i) if i + 1 == self.tail.len() => {
                    self.tail.pop();
                }
                Ok(_) => {
                    self.fold_tail();
                    self.tree.remove(path);
                }
                Err(_) => {}
            }
        }
        Some(old)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Paths that start with `prefix`, in order, beginning after `after` when given.
    pub(crate) fn range<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let tree = self
            .tree
            .range::<str, _>((start, Bound::Unbounded))
            .map(CompactString::as_str);
        let first = match start {
            Bound::Excluded(a) => self.tail.partition_point(|k| k.as_str() <= a),
            _ => self.tail.partition_point(|k| k.as_str() < prefix),
        };
        let tail = self.tail[first..].iter().map(CompactString::as_str);
        Merge {
            tree: tree.peekable(),
            tail: tail.peekable(),
        }
        .take_while(move |p| p.starts_with(prefix))
        .filter_map(|p| self.get(p).map(|e| (p, e)))
    }

    /// All entries in path order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> + '_ {
        self.range("", None)
    }
}

/// Two increasing sequences of distinct keys as one. Every tail key is greater than every tree
/// key, so this is the tree's keys and then the tail's; comparing keeps it correct regardless.
struct Merge<'a, A: Iterator<Item = &'a str>, B: Iterator<Item = &'a str>> {
    tree: Peekable<A>,
    tail: Peekable<B>,
}

impl<'a, A: Iterator<Item = &'a str>, B: Iterator<Item = &'a str>> Iterator for Merge<'a, A, B> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match (self.tree.peek(), self.tail.peek()) {
            (Some(a), Some(b)) if b < a => self.tail.next(),
            (Some(_), _) => self.tree.next(),
            (None, _) => self.tail.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
        Range(u16, Option<u16>),
    }

    fn key(n: u16) -> String {
        format!("k{n:05}")
    }

    fn op() -> impl Strategy<Value = Op> {
        // Mostly increasing inserts (the tail's case) mixed with random ones and removals.
        prop_oneof![
            4 => any::<u16>().prop_map(Op::Insert),
            2 => any::<u16>().prop_map(Op::Remove),
            1 => (0u16..7, proptest::option::of(any::<u16>())).prop_map(|(p, a)| Op::Range(p, a)),
        ]
    }

    fn entry() -> Entry {
        Entry {
            value: crate::value::StoredValue::encode(
                &crate::value::Value::Integer(1),
                crate::value::JsonEncoding::Text,
                1024,
            )
            .unwrap(),
            checksum: 0,
            created_at: crate::time::Timestamp(0),
            updated_at: crate::time::Timestamp(0),
            expires_at: None,
            version: 1,
            create_revision: 1,
            mod_revision: 1,
            user_meta: None,
            lru: Default::default(),
        }
    }

    /// A position replaces only the key found there: after a removal moved another key into
    /// it, or past the end, the entry comes back and nothing changes.
    #[test]
    fn replace_at_replaces_only_the_key_found_there() {
        let mut ks = Keyspace::default();
        for n in 0..3 {
            ks.insert(&key(n), entry());
        }
        let (at, _) = ks.get_with_position(&key(0)).unwrap();
        let mut newer = entry();
        newer.version = 2;
        let old = ks.replace_at(at, &key(0), newer).unwrap();
        assert_eq!(old.version, 1);
        assert_eq!(ks.get(&key(0)).unwrap().version, 2);
        // Removing key 0 moves the last key into its place: the position now holds key 2.
        ks.remove(&key(0));
        assert!(ks.replace_at(at, &key(0), entry()).is_err());
        assert_eq!(ks.get(&key(0)), None);
        assert_eq!(ks.get(&key(2)).unwrap().version, 1);
        let (last, _) = ks.get_with_position(&key(1)).unwrap();
        ks.remove(&key(1));
        assert!(ks.replace_at(last, &key(1), entry()).is_err());
        assert_eq!(ks.slab.len(), 1);
    }

    proptest! {
        // The keyspace's order agrees with a BTreeMap through inserts in and out of order,
        // removals from the tree, the tail's end and its middle (which folds the tail).
        #[test]
        fn ordered_index_agrees_with_a_btreemap(
            ops in proptest::collection::vec(op(), 1..400),
            ascending in 0usize..6000,
        ) {
            let mut ks = Keyspace::default();
            let mut model: BTreeMap<String, ()> = BTreeMap::new();
            // A long ascending run first, so that removals fold a long tail (by merge) as well
            // as short ones (by inserts).
            for n in 0..ascending {
                let k = format!("a{n:05}");
                ks.insert(&k, entry());
                model.insert(k, ());
            }
            let mut next = 0u16;
            for op in ops {
                match op {
                    Op::Insert(n) => {
                        // Every other insert is the next key in order, the tail's case.
                        let k = if n % 2 == 0 { next = next.wrapping_add(1); key(next) } else { key(n) };
                        prop_assert_eq!(ks.insert(&k, entry()).is_some(), model.insert(k, ()).is_some());
                    }
                    Op::Remove(n) => {
                        let k = if n % 3 == 0 { key(next) } else { key(n % 64) };
                        prop_assert_eq!(ks.remove(&k).is_some(), model.remove(&k).is_some());
                    }
                    Op::Range(p, after) => {
                        let prefix = format!("k0{p}");
                        let after = after.map(key);
                        let got: Vec<&str> = ks.range(&prefix, after.as_deref()).map(|(k, _)| k).collect();
                        let want: Vec<&str> = model
                            .keys()
                            .map(String::as_str)
                            .filter(|k| k.starts_with(&prefix) && after.as_deref().is_none_or(|a| *k > a))
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                }
            }
            let all: Vec<&str> = ks.iter().map(|(k, _)| k).collect();
            let want: Vec<&str> = model.keys().map(String::as_str).collect();
            prop_assert_eq!(all, want);
        }
    }
}
