//! Search on the native store: index declarations on the builder or the store, and text,
//! value and vector searches (see docs/search.md).
//!
//! Vector indexes use hnsw_rs (`statemesh-hnsw`) for the cosine and L2 metrics and core's exact
//! index for `Dot` (hnsw_rs needs non-negative distances) or when
//! [`StoreBuilder::exact_vectors`] asks for it. Indexes are derived state, declared on the
//! builder at every open. On the file adapter every checkpoint also stores an image of each
//! index; an open loads the images that match the snapshot it restores and replays only the
//! log after it into them, and rebuilds an index from the keyspace only when its image is
//! missing, stale or damaged ([`Store::index_origin`] tells which happened).

use std::time::{Duration, Instant};

use statemesh_core::search::{
    ExactVectorIndex, IndexImage, IndexOrigin, IndexStats, TextHit, TextIndexDef, ValueIndexDef,
    VectorHit, VectorIndex, VectorIndexDef,
};
use statemesh_core::{Engine, EngineError, WriteResult};
use statemesh_hnsw::{HnswIndex, HnswParams};

use crate::builder::StoreBuilder;
use crate::error::Result;
use crate::store::Store;

/// One index declared on the builder.
#[derive(Debug, Clone)]
pub(crate) enum Declaration {
    Text(TextIndexDef),
    Value(ValueIndexDef),
    Vector(VectorIndexDef),
}

/// How the store builds vector indexes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VectorChoice {
    pub(crate) exact: bool,
    pub(crate) hnsw: HnswParams,
}

impl VectorChoice {
    fn index_for(&self, def: &VectorIndexDef) -> Box<dyn VectorIndex> {
        if !self.exact
            && let Some(index) = HnswIndex::new(def.spec, self.hnsw)
        {
            return Box::new(index);
        }
        Box::new(ExactVectorIndex::new(def.spec))
    }
}

impl StoreBuilder {
    /// Declares a full-text index, built from the keyspace at every open.
    pub fn text_index(mut self, def: TextIndexDef) -> Self {
        self.indexes.push(Declaration::Text(def));
        self
    }

    /// Declares an exact-value index, built from the keyspace at every open.
    pub fn value_index(mut self, def: ValueIndexDef) -> Self {
        self.indexes.push(Declaration::Value(def));
        self
    }

    /// Declares a vector index, built from the keyspace at every open.
    pub fn vector_index(mut self, def: VectorIndexDef) -> Self {
        self.indexes.push(Declaration::Vector(def));
        self
    }

    /// HNSW parameters for vector indexes (defaults: M 16, ef_construction 200, ef_search 64).
    pub fn hnsw_params(mut self, params: HnswParams) -> Self {
        self.vectors.hnsw = params;
        self
    }

    /// Use the exact (brute-force) vector index instead of HNSW: exact results, linear cost.
    pub fn exact_vectors(mut self, yes: bool) -> Self {
        self.vectors.exact = yes;
        self
    }
}

/// Declares the builder's indexes on a freshly restored engine, loading those of `images`
/// (stored with the snapshot it was restored from) that match and building the others from
/// the keyspace; returns how long that took. Images that do not match are logged and dropped.
pub(crate) fn install(
    builder: &StoreBuilder,
    engine: &mut Engine,
    images: Vec<IndexImage>,
) -> Result<Duration> {
    let start = Instant::now();
    engine.offer_index_images(images);
    for declaration in &builder.indexes {
        declare(engine, &builder.vectors, declaration.clone())?;
    }
    for name in engine.clear_offered_images() {
        tracing::debug!("index image {name:?} unused: no such index is declared");
    }
    for (name, why) in engine.take_image_rejections() {
        tracing::warn!("index image {name:?} ignored, the index was rebuilt: {why}");
    }
    // Text indexes build their segments at the first search; do it now, as part of the open.
    engine.flush_search()?;
    Ok(start.elapsed())
}

fn declare(
    engine: &mut Engine,
    vectors: &VectorChoice,
    declaration: Declaration,
) -> Result<(), EngineError> {
    match declaration {
        Declaration::Text(def) => engine.declare_text_index(def),
        Declaration::Value(def) => engine.declare_value_index(def),
        Declaration::Vector(def) => {
            let index = vectors.index_for(&def);
            engine.declare_vector_index_with(def, index)
        }
    }
}

impl Store {
    /// How long building the declared indexes took when this store opened.
    pub fn index_build_time(&self) -> Duration {
        self.inner().index_build_time
    }

    /// Declares a full-text index now, indexing the keys already held. Not persisted: declare
    /// it on the builder to have it at every open.
    pub async fn declare_text_index(&self, def: TextIndexDef) -> Result<()> {
        self.declare(Declaration::Text(def))
    }

    /// Declares an exact-value index now (see [`Store::declare_text_index`]).
    pub async fn declare_value_index(&self, def: ValueIndexDef) -> Result<()> {
        self.declare(Declaration::Value(def))
    }

    /// Declares a vector index now (see [`Store::declare_text_index`]).
    pub async fn declare_vector_index(&self, def: VectorIndexDef) -> Result<()> {
        self.declare(Declaration::Vector(def))
    }

    fn declare(&self, declaration: Declaration) -> Result<()> {
        let vectors = self.inner().vectors;
        self.check_open()?;
        Ok(self
            .inner()
            .with_engine(|e, _| declare(e, &vectors, declaration))?)
    }

    /// Removes an index; false when there is none by that name.
    pub fn drop_index(&self, name: &str) -> bool {
        self.inner().with_engine(|e, _| e.drop_index(name))
    }

    /// Sets how hard vector index `name` searches (HNSW's `ef`, default
    /// [`HnswParams::ef_search`](statemesh_hnsw::HnswParams)): more finds more of the true
    /// nearest neighbours, slower. Exact indexes ignore it.
    pub fn set_vector_search_effort(&self, name: &str, effort: usize) -> Result<()> {
        Ok(self
            .inner()
            .with_engine(|e, _| e.set_vector_search_effort(name, effort))?)
    }

    /// How the index `name` was built when the store opened (or when it was declared): loaded
    /// from the index image stored with the last checkpoint, or built from the keyspace (and
    /// from how many keys). For an HNSW index loaded from an image,
    /// `rebuilt_from_image_vectors` tells a graph reloaded from the image (`false`) from one
    /// rebuilt from the image's vectors (`true`: the image held no usable graph).
    pub fn index_origin(&self, name: &str) -> Result<Option<IndexOrigin>> {
        self.read_engine(|e| e.index_origin(name))
    }

    /// Sizes of the index `name`.
    pub fn index_stats(&self, name: &str) -> Result<Option<IndexStats>> {
        self.read_engine(|e| e.index_stats(name))
    }

    /// The best `limit` keys for `query` in text index `index`, best first, with BM25 scores;
    /// `filter` (a key pattern) narrows them. The query language is tantivy's: terms,
    /// `"phrases"`, `AND` / `OR` / `-term`, `field:term`.
    pub async fn search_text(
        &self,
        index: &str,
        query: &str,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TextHit>> {
        self.read_all(|e, now| e.search_text(now, index, query, filter, limit))
            .await
    }

    /// Keys whose `field` (or whole value, for `None`) equals `value`, in key order.
    pub async fn search_by_value(
        &self,
        index: &str,
        field: Option<&str>,
        value: &serde_json::Value,
        filter: Option<&str>,
    ) -> Result<Vec<String>> {
        self.read_all(|e, now| e.search_by_value(now, index, field, value, filter))
            .await
    }

    /// The `top_k` keys nearest to `vector` in vector index `index`, nearest first.
    pub async fn vector_search(
        &self,
        index: &str,
        vector: &[f32],
        top_k: usize,
        filter: Option<&str>,
    ) -> Result<Vec<VectorHit>> {
        self.read_all(|e, now| e.vector_search(now, index, vector, top_k, filter))
            .await
    }

    /// Stores `vector` as the value of `key` (little-endian `f32` bytes) for vector index
    /// `index` (declared without a field); checked against the index first.
    pub async fn add_vector(&self, index: &str, key: &str, vector: &[f32]) -> Result<WriteResult> {
        self.timed_write(|e, now| e.add_vector(now, index, key, vector))
            .await
    }
}
