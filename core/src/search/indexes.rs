//! The declared indexes of one engine, and how changes to keys reach them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::extract::{VectorProblem, vector_of_json, vector_of_value};
use super::image::{self, ImageError, IndexImage, Kind};
use super::text::TextIndex;
use super::value_index::ValueIndex;
use super::vector::normalize;
use super::{
    Metric, SearchError, TextIndexDef, ValueIndexDef, VectorDump, VectorIndex, VectorIndexDef,
    VectorSpec,
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
    /// Images offered by the host at open, by index name, until a declaration takes them.
    offered: BTreeMap<String, Vec<u8>>,
    /// Offered images a declaration could not use, and why (the index was rebuilt).
    rejected: Vec<(String, ImageError)>,
}

#[derive(Debug)]
pub(crate) struct Declared<T> {
    pub(crate) pattern: KeyPattern,
    pub(crate) index: T,
    /// The declaration as image bytes (see `image.rs`): an image must carry the same.
    declaration: Vec<u8>,
    origin: IndexOrigin,
}

/// How an index came to hold what it held when it was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexOrigin {
    /// Loaded from an index image instead of being built from the keyspace.
    pub restored_from_image: bool,
    /// Keys read from the keyspace to build it when it was declared (0 when restored).
    pub backfilled: u64,
    /// Vector indexes restored from an image: the vector index could not use its own part of
    /// the image (an HNSW graph: missing in images written without one, such as an exact
    /// index's, or unusable) and rebuilt it from the image's vectors. The keyspace was still
    /// not read. `false` when the image was used whole, and for every other index.
    pub rebuilt_from_image_vectors: bool,
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

/// The postcard part of a vector index image; the vectors' `f32`s (little-endian) follow it,
/// then the vector index's own part ([`VectorDump::extra`], often empty) fills the rest.
#[derive(serde::Serialize, serde::Deserialize)]
struct VectorsImage {
    next_id: u64,
    skipped: u64,
    /// (id, key), by id.
    keys: Vec<(u64, String)>,
    /// The ids of the vectors that follow, in their order.
    ids: Vec<u64>,
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

    /// The index as an image body; `None` when its vector index does not dump.
    fn image(&self) -> Option<Result<Vec<u8>, postcard::Error>> {
        let dump = self.index.dump()?;
        let mut keys: Vec<(u64, String)> = self
            .keys
            .iter()
            .map(|(id, k)| (*id, k.to_string()))
            .collect();
        keys.sort_unstable_by_key(|(id, _)| *id);
        let head = VectorsImage {
            next_id: self.next_id,
            skipped: self.skipped,
            keys,
            ids: dump.ids,
        };
        Some(postcard::to_allocvec(&head).map(|mut out| {
            out.extend_from_slice(&image::f32_bytes(&dump.data));
            out.extend_from_slice(&dump.extra);
            out
        }))
    }

    /// Loads an image body into this freshly declared (empty) index; changes nothing on error.
    fn load_image(&mut self, body: &[u8]) -> Result<(), ImageError> {
        let (head, raw) = postcard::take_from_bytes::<VectorsImage>(body).map_err(image::decode)?;
        let bad = |what: &str| ImageError::Decode(format!("vector image: {what}"));
        let floats = head
            .ids
            .len()
            .checked_mul(self.def.spec.dimension)
            .and_then(|n| n.checked_mul(4))
            .filter(|n| *n <= raw.len())
            .ok_or_else(|| bad("fewer vector bytes than ids"))?;
        let (vectors, extra) = raw.split_at(floats);
        let dump = VectorDump {
            ids: head.ids,
            data: image::f32s(vectors)?,
            extra: extra.to_vec(),
        };
        if !dump.fits(self.def.spec.dimension) || dump.ids.len() != head.keys.len() {
            return Err(bad("vectors do not fit the declaration"));
        }
        if !dump.data.iter().all(|x| x.is_finite()) {
            return Err(bad("a component is not finite"));
        }
        let mut ids: hashbrown::HashMap<Arc<str>, u64> = Default::default();
        let mut keys: hashbrown::HashMap<u64, Arc<str>> = Default::default();
        for (id, key) in head.keys {
            let key: Arc<str> = Arc::from(key);
            if id >= head.next_id
                || ids.insert(key.clone(), id).is_some()
                || keys.insert(id, key).is_some()
            {
                return Err(bad("an id or key is repeated or out of range"));
            }
        }
        if !dump.ids.iter().all(|id| keys.contains_key(id)) {
            return Err(bad("a vector has no key"));
        }
        if !self.index.load(dump) {
            return Err(bad("the vector index refused the vectors"));
        }
        self.ids = ids;
        self.keys = keys;
        self.next_id = head.next_id;
        self.skipped = head.skipped;
        Ok(())
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

impl<T> Declared<T> {
    fn new(pattern: KeyPattern, index: T, declaration: Vec<u8>, restored: bool) -> Declared<T> {
        Declared {
            pattern,
            index,
            declaration,
            origin: IndexOrigin {
                restored_from_image: restored,
                backfilled: 0,
                rebuilt_from_image_vectors: false,
            },
        }
    }

    fn seal(&self, name: &str, kind: Kind, revision: u64, body: &[u8]) -> IndexImage {
        IndexImage {
            name: name.to_owned(),
            bytes: image::seal(kind, revision, self.declaration.clone(), body),
        }
    }
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

    /// Takes the image offered for `name`, when there is one, opened for `kind`, `revision`
    /// and `declaration`; a mismatch is recorded as rejected.
    fn offered_body(
        &mut self,
        name: &str,
        kind: Kind,
        revision: u64,
        declaration: &[u8],
    ) -> Option<Vec<u8>> {
        let bytes = self.offered.remove(name)?;
        match image::open(&bytes, kind, revision, declaration) {
            Ok(body) => Some(body.to_vec()),
            Err(e) => {
                self.rejected.push((name.to_owned(), e));
                None
            }
        }
    }

    fn loaded<T>(
        &mut self,
        name: &str,
        body: Option<Vec<u8>>,
        index: &mut T,
        load: impl FnOnce(&mut T, &[u8]) -> Result<(), ImageError>,
    ) -> bool {
        let Some(body) = body else { return false };
        match load(index, &body) {
            Ok(()) => true,
            Err(e) => {
                self.rejected.push((name.to_owned(), e));
                false
            }
        }
    }

    /// Declares a text index, from its offered image when that matches `revision` (the
    /// engine's). Returns true when it is empty and must be built from the keyspace.
    pub(crate) fn add_text(
        &mut self,
        def: &TextIndexDef,
        pattern: KeyPattern,
        revision: u64,
    ) -> Result<bool, SearchError> {
        self.check_new(&def.name)?;
        let declaration = image::text_declaration(def);
        let mut index = TextIndex::new(def)?;
        let body = self.offered_body(&def.name, Kind::Text, revision, &declaration);
        let tried = body.is_some();
        let restored = self.loaded(&def.name, body, &mut index, TextIndex::load_image);
        if tried && !restored {
            // A failed load may have left files behind.
            index = TextIndex::new(def)?;
        }
        self.text.insert(
            def.name.clone(),
            Declared::new(pattern, index, declaration, restored),
        );
        Ok(!restored)
    }

    /// Declares an exact-value index (see [`Indexes::add_text`]).
    pub(crate) fn add_value(
        &mut self,
        def: &ValueIndexDef,
        pattern: KeyPattern,
        revision: u64,
    ) -> Result<bool, SearchError> {
        self.check_new(&def.name)?;
        if def.fields.iter().any(String::is_empty) {
            return Err(SearchError::InvalidDeclaration {
                name: def.name.clone(),
                reason: "a field path is empty".into(),
            });
        }
        let declaration = image::value_declaration(def);
        let mut index = ValueIndex::new(def.fields.clone());
        let body = self.offered_body(&def.name, Kind::Value, revision, &declaration);
        let tried = body.is_some();
        let restored = self.loaded(&def.name, body, &mut index, ValueIndex::load_image);
        if tried && !restored {
            index = ValueIndex::new(def.fields.clone());
        }
        self.value.insert(
            def.name.clone(),
            Declared::new(pattern, index, declaration, restored),
        );
        Ok(!restored)
    }

    /// Declares a vector index on `index` (see [`Indexes::add_text`]).
    pub(crate) fn add_vector(
        &mut self,
        def: VectorIndexDef,
        pattern: KeyPattern,
        index: Box<dyn VectorIndex>,
        revision: u64,
    ) -> Result<bool, SearchError> {
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
        let declaration = image::vector_declaration(&def);
        let body = self.offered_body(&name, Kind::Vector, revision, &declaration);
        let mut vectors = Vectors::new(def, index);
        let restored = self.loaded(&name, body, &mut vectors, Vectors::load_image);
        let rebuilt = restored && vectors.index.rebuilt_on_load();
        let mut declared = Declared::new(pattern, vectors, declaration, restored);
        declared.origin.rebuilt_from_image_vectors = rebuilt;
        self.vector.insert(name, declared);
        Ok(!restored)
    }

    /// Offers images for the declarations that follow (see the module documentation).
    pub(crate) fn offer(&mut self, images: Vec<IndexImage>) {
        for image in images {
            self.offered.insert(image.name, image.bytes);
        }
    }

    /// Forgets offered images no declaration took; returns their names.
    pub(crate) fn clear_offered(&mut self) -> Vec<String> {
        std::mem::take(&mut self.offered).into_keys().collect()
    }

    /// Offered images that were not used, and why, since the last call.
    pub(crate) fn take_rejected(&mut self) -> Vec<(String, ImageError)> {
        std::mem::take(&mut self.rejected)
    }

    /// An image of every declared index that can make one, tagged with `revision`. Text
    /// indexes flush their pending writes first.
    pub(crate) fn images(&self, revision: u64) -> Result<Vec<IndexImage>, SearchError> {
        let failed = |name: &str, e: postcard::Error| SearchError::Index {
            index: name.to_owned(),
            message: format!("index image: {e}"),
        };
        let mut out = Vec::new();
        for (name, d) in &self.text {
            let body = d.index.image()?;
            out.push(d.seal(name, Kind::Text, revision, &body));
        }
        for (name, d) in &self.value {
            let body = d.index.image().map_err(|e| failed(name, e))?;
            out.push(d.seal(name, Kind::Value, revision, &body));
        }
        for (name, d) in &self.vector {
            if let Some(body) = d.index.image() {
                let body = body.map_err(|e| failed(name, e))?;
                out.push(d.seal(name, Kind::Vector, revision, &body));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// How the index `name` was built when declared.
    pub fn origin(&self, name: &str) -> Option<IndexOrigin> {
        self.text
            .get(name)
            .map(|d| d.origin)
            .or_else(|| self.value.get(name).map(|d| d.origin))
            .or_else(|| self.vector.get(name).map(|d| d.origin))
    }

    /// Counts keys read from the keyspace to build `name`.
    pub(crate) fn note_backfilled(&mut self, name: &str, keys: u64) {
        let origin = if let Some(d) = self.text.get_mut(name) {
            &mut d.origin
        } else if let Some(d) = self.value.get_mut(name) {
            &mut d.origin
        } else if let Some(d) = self.vector.get_mut(name) {
            &mut d.origin
        } else {
            return;
        };
        origin.backfilled += keys;
    }

    pub(crate) fn text_mut(&mut self, name: &str) -> Option<&mut TextIndex> {
        self.text.get_mut(name).map(|d| &mut d.index)
    }

    pub(crate) fn value_mut(&mut self, name: &str) -> Option<&mut ValueIndex> {
        self.value.get_mut(name).map(|d| &mut d.index)
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
