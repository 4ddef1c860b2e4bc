//! Search through the engine: declaring indexes, and text, value and vector searches.
//!
//! Index maintenance itself happens where the keyspace changes (`store_entry` and
//! `account_remove` in `mod.rs`), so every path that changes a key (writes, transactions,
//! expiry, eviction, replay) reaches the indexes without knowing about them.

use std::sync::Arc;

use super::{Engine, KeyPattern};
use crate::error::EngineError;
use crate::key::split_namespace;
use crate::ops::WriteResult;
use crate::search::{
    ExactVectorIndex, ImageError, IndexImage, IndexOrigin, IndexStats, MAX_SEARCH_LIMIT,
    SearchError, TextHit, TextIndexDef, ValueIndexDef, VectorHit, VectorIndex, VectorIndexDef,
};
use crate::time::Timestamp;
use crate::value::{StoredValue, Value};

impl Engine {
    /// Declares a full-text index and indexes the keys already held that match it (or loads
    /// the index image offered for it, see [`Engine::offer_index_images`]).
    pub fn declare_text_index(&mut self, def: TextIndexDef) -> Result<(), EngineError> {
        let pattern = self.key_pattern(&def.pattern)?;
        if !self.search.add_text(&def, pattern, self.revision)? {
            return Ok(());
        }
        let (_, items) = self.held_matching(&def.pattern)?;
        self.search.note_backfilled(&def.name, items.len() as u64);
        if let Some(index) = self.search.text_mut(&def.name) {
            for (key, value) in items {
                match value.decode() {
                    Ok(v) => index.put(&key, &v),
                    Err(_) => index.remove(&key),
                }
            }
        }
        Ok(())
    }

    /// Declares an exact-value index and files the keys already held that match it (or loads
    /// its offered image).
    pub fn declare_value_index(&mut self, def: ValueIndexDef) -> Result<(), EngineError> {
        let pattern = self.key_pattern(&def.pattern)?;
        if !self.search.add_value(&def, pattern, self.revision)? {
            return Ok(());
        }
        let (_, items) = self.held_matching(&def.pattern)?;
        self.search.note_backfilled(&def.name, items.len() as u64);
        if let Some(index) = self.search.value_mut(&def.name) {
            for (key, value) in items {
                if let Ok(v) = value.decode() {
                    index.put(&key, &v);
                }
            }
        }
        Ok(())
    }

    /// Declares a vector index backed by the exact (brute-force) index.
    pub fn declare_vector_index(&mut self, def: VectorIndexDef) -> Result<(), EngineError> {
        let index = Box::new(ExactVectorIndex::new(def.spec));
        self.declare_vector_index_with(def, index)
    }

    /// Declares a vector index backed by `index` (an approximate one a host provides, built for
    /// `def.spec`), and adds the vectors of the keys already held that match it (or loads its
    /// offered image, when `index` can load one).
    pub fn declare_vector_index_with(
        &mut self,
        def: VectorIndexDef,
        index: Box<dyn VectorIndex>,
    ) -> Result<(), EngineError> {
        let pattern = self.key_pattern(&def.pattern)?;
        let name = def.name.clone();
        let source = def.pattern.clone();
        if !self.search.add_vector(def, pattern, index, self.revision)? {
            return Ok(());
        }
        let (_, items) = self.held_matching(&source)?;
        self.search.note_backfilled(&name, items.len() as u64);
        for (key, value) in items {
            if let Ok(v) = value.decode() {
                self.search.put_vector(&name, &key, &v);
            }
        }
        Ok(())
    }

    /// Offers index images (from storage, taken at the checkpoint whose snapshot this engine
    /// was restored from) to the declarations that follow. A declaration whose image matches
    /// (same revision as the engine now, same declaration, intact) loads it instead of reading
    /// the keyspace; otherwise the index is built as usual and the image is reported by
    /// [`Engine::take_image_rejections`]. Offer and declare right after [`Engine::restore`],
    /// before replaying the log: replay then updates the loaded indexes like any write.
    pub fn offer_index_images(&mut self, images: Vec<IndexImage>) {
        self.search.offer(images);
    }

    /// Forgets offered images that no declaration took; returns their names.
    pub fn clear_offered_images(&mut self) -> Vec<String> {
        self.search.clear_offered()
    }

    /// Offered images that a declaration could not use since the last call, and why.
    pub fn take_image_rejections(&mut self) -> Vec<(String, ImageError)> {
        self.search.take_rejected()
    }

    /// An image of every declared index, tagged with the current revision, for a host to store
    /// beside the snapshot taken at the same revision. Pending text writes are flushed first.
    /// Vector indexes whose implementation does not dump its vectors get none.
    pub fn index_images(&self) -> Result<Vec<IndexImage>, EngineError> {
        Ok(self.search.images(self.revision)?)
    }

    /// How the index `name` was built when it was declared.
    pub fn index_origin(&self, name: &str) -> Option<IndexOrigin> {
        self.search.origin(name)
    }

    /// Sets how hard the vector index `index` searches (HNSW's `ef`; at least 1): more finds
    /// more of the true nearest neighbours, slower. A no-op for exact indexes.
    pub fn set_vector_search_effort(
        &mut self,
        index: &str,
        effort: usize,
    ) -> Result<(), EngineError> {
        let declared = self.search.vector_mut(index)?;
        declared.index.index.set_search_effort(effort.max(1));
        Ok(())
    }

    /// A declaration's pattern, and the keys already held that match it with their values:
    /// what a new index starts from.
    fn held_matching(
        &self,
        pattern: &str,
    ) -> Result<(KeyPattern, Vec<(String, StoredValue)>), EngineError> {
        let pattern = self.key_pattern(pattern)?;
        let mut items = Vec::new();
        self.each_match(self.clock(), &pattern, |ns, path, entry| {
            items.push((crate::key::join_key(ns, path), entry.value.clone()));
            Ok(())
        })?;
        Ok((pattern, items))
    }

    /// Removes a declared index; false when there is none by that name.
    pub fn drop_index(&mut self, name: &str) -> bool {
        self.search.drop_index(name)
    }

    /// Names of the declared indexes, in order.
    pub fn index_names(&self) -> Vec<String> {
        self.search.names()
    }

    /// Sizes of the index `name`.
    pub fn index_stats(&self, name: &str) -> Option<IndexStats> {
        self.search.stats(name)
    }

    /// Decides, for results of one search, which keys may be returned: live at `now` and, when
    /// a filter pattern is given, matching it. `None` when every indexed key qualifies (no
    /// filter, and no key due to expire), so searches can skip the check.
    fn result_filter(
        &self,
        now: Timestamp,
        filter: Option<&str>,
    ) -> Result<Option<impl Fn(&str) -> bool + '_>, EngineError> {
        let now = self.observe(now);
        let pattern: Option<KeyPattern> = filter.map(|p| self.key_pattern(p)).transpose()?;
        let expiring = self.expiry.first().is_some_and(|(t, _, _)| *t <= now);
        if pattern.is_none() && !expiring {
            return Ok(None);
        }
        Ok(Some(move |key: &str| {
            if pattern.as_ref().is_some_and(|p| !p.matches(key)) {
                return false;
            }
            if !expiring {
                return true;
            }
            let (ns, path) = split_namespace(key);
            self.namespaces
                .get(ns)
                .and_then(|ks| ks.get(path))
                .is_some_and(|e| !e.is_expired(now))
        }))
    }

    /// The best `limit` keys of text index `index` for `query` (tantivy's query language:
    /// terms, `"phrases"`, `AND` / `OR` / `-term`, `field:term`), with BM25 scores, best first.
    /// `filter` narrows the keys to a pattern.
    pub fn search_text(
        &self,
        now: Timestamp,
        index: &str,
        query: &str,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TextHit>, EngineError> {
        check_limit(limit)?;
        let declared = self.search.text(index)?;
        let accept = self.result_filter(now, filter)?;
        let hits = match &accept {
            Some(f) => declared.index.search(query, limit, f, false)?,
            None => declared.index.search(query, limit, &|_| true, true)?,
        };
        Ok(hits
            .into_iter()
            .map(|(key, score)| TextHit {
                key: key.to_string(),
                score,
            })
            .collect())
    }

    /// Keys of value index `index` whose `field` (or whole value, for `None`) equals `value`,
    /// in key order. Integral numbers match whatever their spelling (`42` and `42.0`).
    pub fn search_by_value(
        &self,
        now: Timestamp,
        index: &str,
        field: Option<&str>,
        value: &serde_json::Value,
        filter: Option<&str>,
    ) -> Result<Vec<String>, EngineError> {
        let declared = self.search.value(index)?;
        if !declared.index.has_field(field) {
            return Err(SearchError::MalformedQuery {
                query: field.unwrap_or("(whole value)").to_owned(),
                message: format!("index {index:?} does not index this field"),
            }
            .into());
        }
        let Some(scalar) = crate::search::Scalar::of(value) else {
            return Err(SearchError::MalformedQuery {
                query: value.to_string(),
                message: "only strings, numbers, booleans and null can be looked up".into(),
            }
            .into());
        };
        let accept = self.result_filter(now, filter)?;
        Ok(declared
            .index
            .lookup(field, scalar)
            .filter(|key| accept.as_ref().is_none_or(|f| f(key)))
            .map(str::to_owned)
            .collect())
    }

    /// The `top_k` keys of vector index `index` nearest to `vector`, nearest first.
    pub fn vector_search(
        &self,
        now: Timestamp,
        index: &str,
        vector: &[f32],
        top_k: usize,
        filter: Option<&str>,
    ) -> Result<Vec<VectorHit>, EngineError> {
        check_limit(top_k)?;
        let declared = self.search.vector(index)?;
        let vectors = &declared.index;
        let query = vectors.prepare(vector)?;
        let accept = self.result_filter(now, filter)?;
        let by_id = accept
            .as_ref()
            .map(|f| move |id: u64| vectors.key(id).is_some_and(|key: &Arc<str>| f(key)));
        let found = vectors.index.search(
            &query,
            top_k,
            by_id.as_ref().map(|f| f as &dyn Fn(u64) -> bool),
        );
        Ok(found
            .into_iter()
            .filter_map(|n| {
                vectors.key(n.id).map(|key| VectorHit {
                    key: key.to_string(),
                    distance: n.distance,
                })
            })
            .collect())
    }

    /// Stores `vector` as the value of `key` (little-endian `f32` bytes), which vector index
    /// `index` (declared without a field) then holds. Checked first: the key must match the
    /// index's pattern, and the vector its dimension.
    pub fn add_vector(
        &mut self,
        now: Timestamp,
        index: &str,
        key: &str,
        vector: &[f32],
    ) -> Result<WriteResult, EngineError> {
        let declared = self.search.vector(index)?;
        let def = &declared.index.def;
        if def.field.is_some() {
            return Err(SearchError::InvalidVector {
                index: index.to_owned(),
                reason: format!(
                    "the index takes vectors from field {:?} of values; put a value with that \
                     field instead",
                    def.field.as_deref().unwrap_or_default()
                ),
            }
            .into());
        }
        declared.index.prepare(vector)?;
        let parsed = self.config.keys.parse(key)?;
        if !declared
            .pattern
            .matches_parts(&parsed.namespace, &parsed.path)
        {
            return Err(SearchError::KeyOutsideIndex {
                key: key.to_owned(),
                index: index.to_owned(),
                pattern: def.pattern.clone(),
            }
            .into());
        }
        let bytes = crate::search::vector_bytes(vector);
        self.put(now, key, &Value::Bytes(bytes))
    }

    /// Makes every write so far searchable in the text indexes now (searches do it themselves;
    /// this moves the cost out of the first search after a bulk load).
    pub fn flush_search(&self) -> Result<(), EngineError> {
        self.search.flush_text()?;
        Ok(())
    }
}

fn check_limit(limit: usize) -> Result<(), SearchError> {
    if limit == 0 || limit > MAX_SEARCH_LIMIT {
        return Err(SearchError::InvalidLimit {
            limit,
            max: MAX_SEARCH_LIMIT,
        });
    }
    Ok(())
}
