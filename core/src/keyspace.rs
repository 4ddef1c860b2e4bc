//! One namespace's keys: a hash index for point lookups beside an ordered index for scans.
//!
//! Point reads are cache-miss bound (DESIGN.md). The hash table keeps the entry inline and the
//! key inline too when it is at most 24 bytes (CompactString), so a get touches the table's
//! control bytes, one bucket and the value's bytes. The ordered set holds a second copy of each
//! key for range scans; scans then look each key up in the hash table.

use std::collections::BTreeSet;
use std::ops::Bound;

use compact_str::CompactString;
use hashbrown::HashMap;

use crate::entry::Entry;

#[derive(Debug, Default, Clone)]
pub(crate) struct Keyspace {
    map: HashMap<CompactString, Entry>,
    order: BTreeSet<CompactString>,
}

impl Keyspace {
    #[inline]
    pub(crate) fn get(&self, path: &str) -> Option<&Entry> {
        self.map.get(path)
    }

    pub(crate) fn get_mut(&mut self, path: &str) -> Option<&mut Entry> {
        self.map.get_mut(path)
    }

    /// A keyspace from entries in strictly increasing path order (as snapshots hold them): the
    /// ordered index is bulk-built in one pass instead of by one insert per key.
    pub(crate) fn from_sorted(items: Vec<(CompactString, Entry)>) -> Keyspace {
        let order: BTreeSet<CompactString> = items.iter().map(|(p, _)| p.clone()).collect();
        let mut map = HashMap::with_capacity(items.len());
        map.extend(items);
        Keyspace { map, order }
    }

    /// Inserts or replaces (one hash probe); returns the previous entry.
    pub(crate) fn insert(&mut self, path: &str, entry: Entry) -> Option<Entry> {
        match self.map.entry_ref(path) {
            hashbrown::hash_map::EntryRef::Occupied(mut slot) => Some(slot.insert(entry)),
            hashbrown::hash_map::EntryRef::Vacant(slot) => {
                let key = CompactString::from(path);
                self.order.insert(key.clone());
                slot.insert_with_key(key, entry);
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, path: &str) -> Option<Entry> {
        let old = self.map.remove(path)?;
        self.order.remove(path);
        Some(old)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
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
        self.order
            .range::<str, _>((start, Bound::Unbounded))
            .map(CompactString::as_str)
            .take_while(move |p| p.starts_with(prefix))
            .filter_map(|p| self.map.get(p).map(|e| (p, e)))
    }

    /// All entries in path order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> + '_ {
        self.range("", None)
    }
}
