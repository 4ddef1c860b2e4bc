//! The declared indexes of one engine, and how changes to keys reach them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::extract::{VectorProblem, vector_of_json, vector_of_value};
use super::text::TextIndex;
use super::value_index::ValueIndex;
use super::vector::normalize;
use super::{
    Metric, SearchError, TextIndexDef, ValueIndexDef, VectorIndex, VectorIndexDef, VectorSpec,
};
use crate::engine::KeyPattern;
use crate::key::join_key;
use crate::value::{StoredValue, Value};

/// Every index declared on an engine, by name. Names are shared by all kinds.
#[derive(Debug, Default)]
pub struct Indexes {
    text: BTreeMap<String, Declared<TextIndex>>,
    value: BTreeMap<String, Declared<ValueIndex>>,
    vector: BTreeMap<String, Declared<Vectors>>,
}

#[derive(Debug)]
pub(crate) struct Declared<T> {
    pub(crate) pattern: KeyPattern,
    pub(crate) index: T,
}

/// A vector index with the key <-> id mapping core keeps for it.
#[derive(Debug)]
pub(crate) struct Vectors {
    pub(crate) def: VectorIndexDef,
    pub(crate) index: Box<dyn VectorIndex>,
    ids: hashbrown::HashMap<Arc<str>, u64>,
    keys: hashbrown::HashMap<u64, Arc<str>>,
    next_id: u64,
    /// Keys matching the pattern whose value holds no usable vector.
    skipped: u64,
}

impl Vectors {
    pub(crate) fn new(def: VectorIndexDef, index: Box<dyn VectorIndex>) -> Vectors {
        Vectors {
            def,
            index,
            ids: Default::default(),
            keys: Default::default(),
            next_id: 0,
            skipped: 0,
        }
    }

    pub(crate) fn key(&self, id: u64) -> Option<&Arc<str>> {
        self.keys.get(&id)
    }

    /// Checks a vector against the index and brings it to the form the index holds.
    pub(crate) fn prepare(&self, vector: &[f32]) -> Result<Vec<f32>, SearchError> {
        let spec = self.def.spec;
        if vector.len() != spec.dimension {
            return Err(SearchError::DimensionMismatch {
                index: self.def.name.clone(),
                expected: spec.dimension,
                actual: vector.len(),
            });
        }
        let invalid = |reason: &str| SearchError::InvalidVector {
            index: self.def.name.clone(),
            reason: reason.to_owned(),
        };
        if !vector.iter().all(|x| x.is_finite()) {
            return Err(invalid("a component is NaN or infinite"));
        }
        let mut v = vector.to_vec();
        if spec.metric == Metric::Cosine && !normalize(&mut v) {
            return Err(invalid("the zero vector has no direction (cosine metric)"));
        }
        Ok(v)
    }

    fn put(&mut self, key: &str, value: &Value) {
        let spec = self.def.spec;
        let found = match &self.def.field {
            None => vector_of_value(value, spec.dimension),
            Some(path) => super::extract::as_json(value)
                .and_then(|json| super::extract::at_path(&json, path).cloned())
                .map_or(Err(VectorProblem::Missing), |node| {
                    vector_of_json(&node, spec.dimension)
                }),
        };
        match found.ok().and_then(|v| self.prepare(&v).ok()) {
            Some(v) => {
                let id = match self.ids.get(key) {
                    Some(&id) => id,
                    None => {
                        let id = self.next_id;
                        self.next_id += 1;
                        let key: Arc<str> = Arc::from(key);
                        self.ids.insert(key.clone(), id);
                        self.keys.insert(id, key);
                        id
                    }
                };
                self.index.insert(id, &v);
            }
            None => {
                self.remove(key);
                self.skipped += 1;
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(id) = self.ids.remove(key) {
            self.keys.remove(&id);
            self.index.remove(id);
        }
    }
}

/// Sizes of one index, for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexStats {
    /// Keys the index holds an entry for.
    pub entries: usize,
    /// Vector indexes: writes to matching keys whose value held no usable vector.
    pub skipped: u64,
}

impl Indexes {
    /// True when nothing is declared, so writes skip index maintenance entirely.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.value.is_empty() && self.vector.is_empty()
    }

    /// Names of every declared index, in order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .text
            .keys()
            .chain(self.value.keys())
            .chain(self.vector.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn check_new(&self, name: &str) -> Result<(), SearchError> {
        if name.is_empty() {
            return Err(SearchError::InvalidDeclaration {
                name: name.to_owned(),
                reason: "the name is empty".into(),
            });
        }
        if self.text.contains_key(name)
            || self.value.contains_key(name)
            || self.vector.contains_key(name)
        {
            return Err(SearchError::DuplicateIndex {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    pub(crate) fn add_text(
        &mut self,
        def: &TextIndexDef,
        pattern: KeyPattern,
    ) -> Result<&mut TextIndex, SearchError> {
        self.check_new(&def.name)?;
        let index = TextIndex::new(def)?;
        let slot = self
            .text
            .entry(def.name.clone())
            .or_insert(Declared { pattern, index });
        Ok(&mut slot.index)
    }

    pub(crate) fn add_value(
        &mut self,
        def: &ValueIndexDef,
        pattern: KeyPattern,
    ) -> Result<&mut ValueIndex, SearchError> {
        self.check_new(&def.name)?;
        if def.fields.iter().any(String::is_empty) {
            return Err(SearchError::InvalidDeclaration {
                name: def.name.clone(),
                reason: "a field path is empty".into(),
            });
        }
        let index = ValueIndex::new(def.fields.clone());
        let slot = self
            .value
            .entry(def.name.clone())
            .or_insert(Declared { pattern, index });
        Ok(&mut slot.index)
    }

    pub(crate) fn add_vector(
        &mut self,
        def: VectorIndexDef,
        pattern: KeyPattern,
        index: Box<dyn VectorIndex>,
    ) -> Result<(), SearchError> {
        self.check_new(&def.name)?;
        let VectorSpec { dimension, .. } = def.spec;
        if dimension == 0 || dimension > super::MAX_DIMENSION {
            return Err(SearchError::InvalidDeclaration {
                name: def.name.clone(),
                reason: format!(
                    "dimension {dimension} is outside 1..={}",
                    super::MAX_DIMENSION
                ),
            });
        }
        let name = def.name.clone();
        self.vector.insert(
            name,
            Declared {
                pattern,
                index: Vectors::new(def, index),
            },
        );
        Ok(())
    }

    /// Feeds one value to the vector index `name` (backfill of a new declaration).
    pub(crate) fn put_vector(&mut self, name: &str, key: &str, value: &Value) {
        if let Some(d) = self.vector.get_mut(name) {
            d.index.put(key, value);
        }
    }

    /// Makes pending text writes searchable in every text index.
    pub(crate) fn flush_text(&self) -> Result<(), SearchError> {
        self.text.values().try_for_each(|d| d.index.flush())
    }

    /// Removes an index; false when none has that name.
    pub fn drop_index(&mut self, name: &str) -> bool {
        self.text.remove(name).is_some()
            || self.value.remove(name).is_some()
            || self.vector.remove(name).is_some()
    }

    pub(crate) fn text(&self, name: &str) -> Result<&Declared<TextIndex>, SearchError> {
        self.text.get(name).ok_or_else(|| unknown("text", name))
    }

    pub(crate) fn value(&self, name: &str) -> Result<&Declared<ValueIndex>, SearchError> {
        self.value.get(name).ok_or_else(|| unknown("value", name))
    }

    pub(crate) fn vector(&self, name: &str) -> Result<&Declared<Vectors>, SearchError> {
        self.vector.get(name).ok_or_else(|| unknown("vector", name))
    }

    pub(crate) fn vector_mut(&mut self, name: &str) -> Result<&mut Declared<Vectors>, SearchError> {
        self.vector
            .get_mut(name)
            .ok_or_else(|| unknown("vector", name))
    }

    /// Sizes of the index `name`.
    pub fn stats(&self, name: &str) -> Option<IndexStats> {
        if let Some(d) = self.text.get(name) {
            return Some(IndexStats {
                entries: d.index.len(),
                skipped: 0,
            });
        }
        if let Some(d) = self.value.get(name) {
            return Some(IndexStats {
                entries: d.index.len(),
                skipped: 0,
            });
        }
        self.vector.get(name).map(|d| IndexStats {
            entries: d.index.ids.len(),
            skipped: d.index.skipped,
        })
    }

    /// A key now holds `value`: every index whose pattern matches re-files it.
    pub(crate) fn on_put(&mut self, ns: &str, path: &str, value: &StoredValue) {
        let mut decoded: Option<Option<Value>> = None;
        let mut key: Option<String> = None;
        let get = |decoded: &mut Option<Option<Value>>| -> Option<Value> {
            decoded.get_or_insert_with(|| value.decode().ok()).clone()
        };
        for d in self.text.values_mut() {
            if d.pattern.matches_parts(ns, path) {
                let key = key.get_or_insert_with(|| join_key(ns, path));
                match get(&mut decoded) {
                    Some(v) => d.index.put(key, &v),
                    None => d.index.remove(key),
                }
            }
        }
        for d in self.value.values_mut() {
            if d.pattern.matches_parts(ns, path) {
                let key = key.get_or_insert_with(|| join_key(ns, path));
                match get(&mut decoded) {
                    Some(v) => d.index.put(key, &v),
                    None => d.index.remove(key),
                }
            }
        }
        for d in self.vector.values_mut() {
            if d.pattern.matches_parts(ns, path) {
                let key = key.get_or_insert_with(|| join_key(ns, path));
                match get(&mut decoded) {
                    Some(v) => d.index.put(key, &v),
                    None => d.index.remove(key),
                }
            }
        }
    }

    /// A key left the keyspace (delete, expiry, eviction): every index forgets it.
    pub(crate) fn on_remove(&mut self, ns: &str, path: &str) {
        let mut key: Option<String> = None;
        for d in self.text.values_mut() {
            if d.pattern.matches_parts(ns, path) {
                d.index
                    .remove(key.get_or_insert_with(|| join_key(ns, path)));
            }
        }
        for d in self.value.values_mut() {
            if d.pattern.matches_parts(ns, path) {
                d.index
                    .remove(key.get_or_insert_with(|| join_key(ns, path)));
            }
        }
        for d in self.vector.values_mut() {
            if d.pattern.matches_parts(ns, path) {
                d.index
                    .remove(key.get_or_insert_with(|| join_key(ns, path)));
            }
        }
    }
}

fn unknown(kind: &'static str, name: &str) -> SearchError {
    SearchError::UnknownIndex {
        kind,
        name: name.to_owned(),
    }
}
