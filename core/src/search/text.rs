//! The full-text index: tantivy, driven single-threaded and deterministically.
//!
//! tantivy's normal `IndexWriter` spawns threads (and cannot be created on wasm32), and its merge
//! timing depends on them. This index writes with `SingleSegmentIndexWriter` instead:
//!
//! * Writes only record what changed: a put queues the key's text as *pending*, a delete marks
//!   the key's document dead (or drops it from pending).
//! * Before a search, pending documents become one new immutable segment, dead documents are
//!   written as tantivy delete bitsets (so scoring and top-k pruning skip them natively), and
//!   the segment list is written as the combined index's `meta.json` (see `text_dir.rs`).
//! * Segments are merged like a binary counter (a segment is merged into the one before it
//!   while that one is less than twice its size), and a segment more than half dead is
//!   rewritten, so there are O(log n) segments and each document is rewritten O(log n) times.
//!
//! The segment list, document order, merge decisions and delete opstamps depend only on the
//! sequence of writes and searches, so the same inputs give the same hits, scores and order on
//! every target.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use tantivy::Searcher;
use tantivy::collector::TopDocs;
use tantivy::directory::TerminatingWrite;
use tantivy::directory::{OwnedBytes, RamDirectory};
use tantivy::fastfield::{AliveBitSet, write_alive_bitset};
use tantivy::index::{IndexSettings, SegmentComponent, SegmentMeta};
use tantivy::query::QueryParser;
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    TokenizerManager,
};
use tantivy::{BitSet, Directory, Index, IndexMeta, IndexReader, ReloadPolicy, TantivyDocument};

use super::extract::{as_json, at_path, text_of};
use super::image::{ImageError, decode, split_blobs};
use super::text_dir::SegmentOnlyDir;
use super::{SearchError, TextIndexDef};
use crate::value::Value;

const TOKENIZER: &str = "statemesh";
/// Field name used when the whole value is indexed.
const WHOLE_VALUE_FIELD: &str = "text";
/// Segments with fewer documents than this are not rewritten for their deletes alone.
const MIN_REWRITE: u32 = 64;

/// A document waiting for the next flush: its key and its texts by field.
type PendingDoc = (Arc<str>, Vec<(Field, String)>);

/// Documents of one segment by doc id; `None` once deleted.
type SegmentKeys = Arc<Vec<Option<Arc<str>>>>;

pub(crate) struct TextIndex {
    name: String,
    /// (JSON path, tantivy field); the path is `None` when the whole value is indexed.
    fields: Vec<(Option<String>, Field)>,
    schema: Schema,
    settings: IndexSettings,
    tokenizers: TokenizerManager,
    shared: RamDirectory,
    index: Index,
    reader: IndexReader,
    parser: QueryParser,
    state: Mutex<State>,
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex")
            .field("name", &self.name)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

/// Where a key's document is.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Pending(u64),
    Segment { uid: u64, doc: u32 },
}

struct Segment {
    uid: u64,
    meta: SegmentMeta,
    keys: SegmentKeys,
    deleted: u32,
    /// Deletes not yet written as the segment's delete bitset.
    unwritten_deletes: bool,
}

impl Segment {
    fn max_doc(&self) -> u32 {
        self.meta.max_doc()
    }
    fn alive(&self) -> u32 {
        self.max_doc() - self.deleted
    }
}

/// What a search needs, published after every flush: the searcher and each segment's keys.
struct View {
    searcher: Searcher,
    keys: Vec<SegmentKeys>,
}

struct State {
    docs: hashbrown::HashMap<Arc<str>, Loc>,
    /// Documents not yet in a segment, in write order: (key, [(field, text)]).
    pending: BTreeMap<u64, PendingDoc>,
    next_seq: u64,
    segments: Vec<Segment>,
    next_uid: u64,
    next_opstamp: u64,
    /// The segment list or a delete bitset changed since the view was published.
    stale: bool,
    view: Arc<View>,
}

impl State {
    /// A fresh segment id, with every key of the segment located at its document number
    /// (`None` marks a document that is no longer any key's).
    fn claim_segment(&mut self, keys: &[Option<Arc<str>>]) -> u64 {
        let uid = self.next_uid;
        self.next_uid += 1;
        for (doc, key) in keys.iter().enumerate() {
            if let Some(key) = key {
                self.docs.insert(
                    key.clone(),
                    Loc::Segment {
                        uid,
                        doc: doc as u32,
                    },
                );
            }
        }
        uid
    }
}

fn index_error(name: &str, e: impl std::fmt::Display) -> SearchError {
    SearchError::Index {
        index: name.to_owned(),
        message: e.to_string(),
    }
}

fn analyzer(language: Option<tantivy::tokenizer::Language>) -> TextAnalyzer {
    let mut builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .dynamic();
    if let Some(language) = language {
        if let Some(stop) = StopWordFilter::new(language) {
            builder = builder.filter_dynamic(stop);
        }
        builder = builder.filter_dynamic(Stemmer::new(language));
    }
    builder.build()
}

/// A tantivy field name for a JSON path: `meta.title` becomes `meta_title`.
fn field_name(path: &str) -> String {
    path.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl TextIndex {
    pub(crate) fn new(def: &TextIndexDef) -> Result<TextIndex, SearchError> {
        let invalid = |reason: String| SearchError::InvalidDeclaration {
            name: def.name.clone(),
            reason,
        };
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let options = TextOptions::default().set_indexing_options(indexing);
        let mut builder = Schema::builder();
        let mut fields = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        if def.fields.is_empty() {
            fields.push((None, builder.add_text_field(WHOLE_VALUE_FIELD, options)));
        } else {
            for path in &def.fields {
                let name = field_name(path);
                if path.is_empty() || !names.insert(name.clone()) {
                    return Err(invalid(format!(
                        "field {path:?} is empty or maps to the same query name {name:?} as another"
                    )));
                }
                fields.push((
                    Some(path.clone()),
                    builder.add_text_field(&name, options.clone()),
                ));
            }
        }
        let schema = builder.build();
        let settings = IndexSettings {
            docstore_compress_dedicated_thread: false,
            ..IndexSettings::default()
        };
        let tokenizers = TokenizerManager::default();
        tokenizers.register(TOKENIZER, analyzer(def.language));
        let shared = RamDirectory::create();
        let index = Index::builder()
            .schema(schema.clone())
            .settings(settings.clone())
            .tokenizers(tokenizers.clone())
            .open_or_create(shared.clone())
            .map_err(|e| index_error(&def.name, e))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| index_error(&def.name, e))?;
        let parser = QueryParser::for_index(&index, fields.iter().map(|(_, f)| *f).collect());
        let view = Arc::new(View {
            searcher: reader.searcher(),
            keys: Vec::new(),
        });
        Ok(TextIndex {
            name: def.name.clone(),
            fields,
            schema,
            settings,
            tokenizers,
            shared,
            index,
            reader,
            parser,
            state: Mutex::new(State {
                docs: Default::default(),
                pending: BTreeMap::new(),
                next_seq: 0,
                segments: Vec::new(),
                next_uid: 0,
                next_opstamp: 1,
                stale: false,
                view,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic mid-flush leaves at worst a stale view; the state itself stays consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state_mut(&mut self) -> &mut State {
        self.state.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// The texts of `value` this index takes, by field.
    fn texts(&self, value: &Value) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        for (path, field) in &self.fields {
            match path {
                None => {
                    if let Value::String(s) = value {
                        out.push((*field, s.clone()));
                    }
                }
                Some(path) => {
                    let Some(json) = as_json(value) else { break };
                    if let Some(text) = at_path(&json, path).and_then(text_of) {
                        out.push((*field, text.into_owned()));
                    }
                }
            }
        }
        out
    }

    /// Indexes `value` under `key`, replacing what the key had.
    pub(crate) fn put(&mut self, key: &str, value: &Value) {
        let texts = self.texts(value);
        let state = self.state_mut();
        state.remove(key);
        if texts.is_empty() {
            return;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let key: Arc<str> = Arc::from(key);
        state.docs.insert(key.clone(), Loc::Pending(seq));
        state.pending.insert(seq, (key, texts));
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.state_mut().remove(key);
    }

    /// Documents indexed (pending ones included).
    pub(crate) fn len(&self) -> usize {
        self.lock().docs.len()
    }

    /// Makes every write so far searchable now (searches do it on their own).
    pub(crate) fn flush(&self) -> Result<(), SearchError> {
        let mut state = self.lock();
        self.flush_locked(&mut state)
    }

    /// The best `limit` documents for `query` whose keys `accept` allows, best first, with their
    /// BM25 scores. Ties keep tantivy's order (segment, then document), which is write order.
    pub(crate) fn search(
        &self,
        query: &str,
        limit: usize,
        accept: &dyn Fn(&str) -> bool,
        unfiltered: bool,
    ) -> Result<Vec<(Arc<str>, f32)>, SearchError> {
        let parsed = self
            .parser
            .parse_query(query)
            .map_err(|e| SearchError::MalformedQuery {
                query: query.to_owned(),
                message: e.to_string(),
            })?;
        let view = {
            let mut state = self.lock();
            self.flush_locked(&mut state)?;
            state.view.clone()
        };
        // Keys the caller rejects are skipped after the fact: fetch more until `limit` pass or
        // the index runs out.
        let mut fetch = limit;
        loop {
            let top = view
                .searcher
                .search(&parsed, &TopDocs::with_limit(fetch).order_by_score())
                .map_err(|e| index_error(&self.name, e))?;
            let exhausted = top.len() < fetch;
            let mut hits = Vec::with_capacity(limit);
            for (score, address) in top {
                let key = view
                    .keys
                    .get(address.segment_ord as usize)
                    .and_then(|keys| keys.get(address.doc_id as usize))
                    .and_then(Option::as_ref);
                if let Some(key) = key
                    && (unfiltered || accept(key))
                {
                    hits.push((key.clone(), score));
                    if hits.len() == limit {
                        return Ok(hits);
                    }
                }
            }
            if exhausted {
                return Ok(hits);
            }
            fetch = fetch.saturating_mul(4);
        }
    }

    fn flush_locked(&self, state: &mut State) -> Result<(), SearchError> {
        if !state.pending.is_empty() {
            self.write_pending(state)?;
        }
        if state.segments.iter().any(|s| s.unwritten_deletes) {
            self.write_deletes(state)?;
        }
        if state.stale {
            self.merge_as_needed(state)?;
            self.publish(state)?;
        }
        Ok(())
    }

    /// A new writer into the shared directory.
    fn new_writer(
        &self,
        docs: usize,
    ) -> Result<tantivy::SingleSegmentIndexWriter<TantivyDocument>, SearchError> {
        // The budget sizes the writer's term hash table up front: small flushes get a small one.
        let budget = docs.saturating_mul(4096).clamp(1 << 20, 256 << 20);
        Index::builder()
            .schema(self.schema.clone())
            .settings(self.settings.clone())
            .tokenizers(self.tokenizers.clone())
            .single_segment_index_writer(SegmentOnlyDir::new(self.shared.clone()), budget)
            .map_err(|e| index_error(&self.name, e))
    }

    fn write_pending(&self, state: &mut State) -> Result<(), SearchError> {
        let err = |e: tantivy::TantivyError| index_error(&self.name, e);
        let pending = std::mem::take(&mut state.pending);
        let mut writer = self.new_writer(pending.len())?;
        let mut keys = Vec::with_capacity(pending.len());
        for (_, (key, texts)) in pending {
            let mut doc = TantivyDocument::default();
            for (field, text) in texts {
                doc.add_text(field, text);
            }
            writer.add_document(doc).map_err(err)?;
            keys.push(Some(key));
        }
        let meta = segment_meta(&writer.finalize().map_err(err)?, &self.name)?;
        let uid = state.claim_segment(&keys);
        state.segments.push(Segment {
            uid,
            meta,
            keys: Arc::new(keys),
            deleted: 0,
            unwritten_deletes: false,
        });
        state.stale = true;
        Ok(())
    }

    /// Writes the delete bitset of every segment with new deletes; drops segments with none
    /// left alive.
    fn write_deletes(&self, state: &mut State) -> Result<(), SearchError> {
        let mut kept = Vec::with_capacity(state.segments.len());
        for mut segment in std::mem::take(&mut state.segments) {
            if !segment.unwritten_deletes {
                kept.push(segment);
                continue;
            }
            if segment.alive() == 0 {
                self.drop_files(std::slice::from_ref(&segment.meta));
                continue;
            }
            let old = segment.meta.clone();
            let opstamp = state.next_opstamp;
            state.next_opstamp += 1;
            segment.meta = segment
                .meta
                .clone()
                .with_delete_meta(segment.deleted, opstamp);
            let mut out = self
                .index
                .segment(segment.meta.clone())
                .open_write(SegmentComponent::Delete)
                .map_err(|e| index_error(&self.name, e))?;
            write_alive_bitset(&alive_bits(&segment), &mut out)
                .and_then(|()| out.terminate())
                .map_err(|e| index_error(&self.name, e))?;
            if old.has_deletes() {
                let _ = self
                    .shared
                    .delete(&old.relative_path(SegmentComponent::Delete));
            }
            segment.unwritten_deletes = false;
            kept.push(segment);
        }
        state.segments = kept;
        state.stale = true;
        Ok(())
    }

    fn merge_as_needed(&self, state: &mut State) -> Result<(), SearchError> {
        loop {
            let n = state.segments.len();
            let range =
                if n >= 2 && state.segments[n - 2].alive() < 2 * state.segments[n - 1].alive() {
                    n - 2..n
                } else if let Some(i) = state
                    .segments
                    .iter()
                    .position(|s| s.max_doc() >= MIN_REWRITE && s.deleted * 2 > s.max_doc())
                {
                    i..i + 1
                } else {
                    return Ok(());
                };
            self.merge(state, range)?;
        }
    }

    /// Replaces the segments in `range` by one segment of their live documents, in order.
    fn merge(&self, state: &mut State, range: std::ops::Range<usize>) -> Result<(), SearchError> {
        let err = |e: tantivy::TantivyError| index_error(&self.name, e);
        let merged: Vec<Segment> = state.segments.drain(range.clone()).collect();
        let segments: Vec<tantivy::Segment> = merged
            .iter()
            .map(|s| self.index.segment(s.meta.clone()))
            .collect();
        let filters = merged
            .iter()
            .map(|s| {
                (s.deleted > 0).then(|| {
                    let mut bytes = Vec::new();
                    // Writing into a Vec cannot fail.
                    let _ = write_alive_bitset(&alive_bits(s), &mut bytes);
                    AliveBitSet::open(OwnedBytes::new(bytes))
                })
            })
            .collect();
        let out = tantivy::indexer::merge_filtered_segments(
            &segments,
            self.settings.clone(),
            filters,
            SegmentOnlyDir::new(self.shared.clone()),
        )
        .map_err(err)?;
        let meta = segment_meta(&out, &self.name)?;
        let keys: Vec<Option<Arc<str>>> = merged
            .iter()
            .flat_map(|s| s.keys.iter().flatten().cloned().map(Some))
            .collect();
        let uid = state.claim_segment(&keys);
        let metas: Vec<SegmentMeta> = merged.iter().map(|s| s.meta.clone()).collect();
        self.drop_files(&metas);
        state.segments.insert(
            range.start,
            Segment {
                uid,
                meta,
                keys: Arc::new(keys),
                deleted: 0,
                unwritten_deletes: false,
            },
        );
        Ok(())
    }

    /// Frees the files of segments that left the index.
    fn drop_files(&self, metas: &[SegmentMeta]) {
        let mut meta = IndexMeta::with_schema(self.schema.clone());
        meta.segments = metas.to_vec();
        for path in meta.list_segment_files() {
            let _ = self.shared.delete(&path);
        }
    }

    /// Writes the segment list as the combined index's `meta.json` and reloads the searcher.
    fn publish(&self, state: &mut State) -> Result<(), SearchError> {
        let mut meta = IndexMeta::with_schema(self.schema.clone());
        meta.index_settings = self.settings.clone();
        meta.segments = state.segments.iter().map(|s| s.meta.clone()).collect();
        let json = serde_json::to_vec(&meta).map_err(|e| index_error(&self.name, e))?;
        self.shared
            .atomic_write(Path::new("meta.json"), &json)
            .map_err(|e| index_error(&self.name, e))?;
        self.reader
            .reload()
            .map_err(|e| index_error(&self.name, e))?;
        state.view = Arc::new(View {
            searcher: self.reader.searcher(),
            keys: state.segments.iter().map(|s| s.keys.clone()).collect(),
        });
        state.stale = false;
        Ok(())
    }
}

impl State {
    fn remove(&mut self, key: &str) {
        match self.docs.remove(key) {
            None => {}
            Some(Loc::Pending(seq)) => {
                self.pending.remove(&seq);
            }
            Some(Loc::Segment { uid, doc }) => {
                if let Some(segment) = self.segments.iter_mut().find(|s| s.uid == uid)
                    && let Some(slot) = Arc::make_mut(&mut segment.keys).get_mut(doc as usize)
                    && slot.take().is_some()
                {
                    segment.deleted += 1;
                    segment.unwritten_deletes = true;
                }
            }
        }
    }
}

/// The alive documents of a segment as tantivy's bitset.
fn alive_bits(segment: &Segment) -> BitSet {
    let mut bits = BitSet::with_max_value_and_full(segment.max_doc());
    for (doc, key) in segment.keys.iter().enumerate() {
        if key.is_none() {
            bits.remove(doc as u32);
        }
    }
    bits
}

/// The one segment of an index a writer or merge just produced.
fn segment_meta(index: &Index, name: &str) -> Result<SegmentMeta, SearchError> {
    index
        .searchable_segment_metas()
        .map_err(|e| index_error(name, e))?
        .into_iter()
        .next()
        .ok_or_else(|| index_error(name, "the writer produced no segment"))
}

/// The postcard part of a text index image; the files' bytes follow it, in `files` order.
#[derive(serde::Serialize, serde::Deserialize)]
struct TextImage {
    next_uid: u64,
    next_opstamp: u64,
    segments: Vec<SegmentImage>,
    /// (file name, length) of every file of the index, `meta.json` included.
    files: Vec<(String, u64)>,
}

/// One segment: its id and the key of each document (`None`: deleted).
#[derive(serde::Serialize, serde::Deserialize)]
struct SegmentImage {
    uid: u64,
    keys: Vec<Option<String>>,
}

const META_FILE: &str = "meta.json";

impl TextIndex {
    /// The index as an image body: every pending write is flushed first, then the segment
    /// files, `meta.json` and which key each document belongs to are written out.
    pub(crate) fn image(&self) -> Result<Vec<u8>, SearchError> {
        let err = |e: &dyn std::fmt::Display| index_error(&self.name, e);
        let mut state = self.lock();
        self.flush_locked(&mut state)?;
        let mut meta = IndexMeta::with_schema(self.schema.clone());
        meta.segments = state.segments.iter().map(|s| s.meta.clone()).collect();
        let mut paths: Vec<std::path::PathBuf> = meta.list_segment_files().into_iter().collect();
        paths.sort();
        paths.push(META_FILE.into());
        let mut files = Vec::with_capacity(paths.len());
        let mut blobs = Vec::with_capacity(paths.len());
        for path in paths {
            if !self.shared.exists(&path).map_err(|e| err(&e))? {
                continue;
            }
            let Some(name) = path.to_str() else {
                return Err(err(&"a segment file name is not UTF-8"));
            };
            let bytes = self
                .shared
                .open_read(&path)
                .map_err(|e| err(&e))?
                .read_bytes()
                .map_err(|e| err(&e))?;
            files.push((name.to_owned(), bytes.len() as u64));
            blobs.push(bytes);
        }
        let head = TextImage {
            next_uid: state.next_uid,
            next_opstamp: state.next_opstamp,
            segments: state
                .segments
                .iter()
                .map(|s| SegmentImage {
                    uid: s.uid,
                    keys: s
                        .keys
                        .iter()
                        .map(|k| k.as_deref().map(str::to_owned))
                        .collect(),
                })
                .collect(),
            files,
        };
        let mut out = postcard::to_allocvec(&head).map_err(|e| err(&e))?;
        out.reserve(blobs.iter().map(|b| b.len()).sum());
        for blob in &blobs {
            out.extend_from_slice(blob.as_slice());
        }
        Ok(out)
    }

    /// Loads an image body into this freshly declared (empty) index. On an error the index
    /// may hold some of the image's files: drop it and declare a fresh one.
    pub(crate) fn load_image(&mut self, body: &[u8]) -> Result<(), ImageError> {
        let (head, raw) = postcard::take_from_bytes::<TextImage>(body).map_err(decode)?;
        let lens: Vec<u64> = head.files.iter().map(|(_, len)| *len).collect();
        let blobs = split_blobs(raw, &lens)?;
        let mut meta_json = None;
        for ((name, _), blob) in head.files.iter().zip(blobs) {
            if name == META_FILE {
                meta_json = Some(blob);
                continue;
            }
            let plain = !name.is_empty()
                && !name.starts_with('.')
                && !name.contains(['/', '\\'])
                && name != ".managed.json";
            if !plain {
                return Err(ImageError::Decode(format!("unexpected file name {name:?}")));
            }
            self.shared
                .atomic_write(Path::new(name), blob)
                .map_err(decode)?;
        }
        let meta_json = meta_json.ok_or_else(|| ImageError::Decode("no meta.json".into()))?;
        self.shared
            .atomic_write(Path::new(META_FILE), meta_json)
            .map_err(decode)?;
        let metas = self.index.searchable_segment_metas().map_err(decode)?;
        if metas.len() != head.segments.len() {
            return Err(ImageError::Decode(format!(
                "{} segments in meta.json, {} in the image",
                metas.len(),
                head.segments.len()
            )));
        }
        let mut state = self.lock();
        let mut segments = Vec::with_capacity(metas.len());
        for (meta, image) in metas.into_iter().zip(head.segments) {
            let deleted = image.keys.iter().filter(|k| k.is_none()).count();
            if meta.max_doc() as usize != image.keys.len()
                || meta.num_deleted_docs() as usize != deleted
                || image.uid >= head.next_uid
                || segments.iter().any(|s: &Segment| s.uid == image.uid)
            {
                return Err(ImageError::Decode(format!(
                    "segment {} disagrees with its documents",
                    image.uid
                )));
            }
            let keys: Vec<Option<Arc<str>>> =
                image.keys.into_iter().map(|k| k.map(Arc::from)).collect();
            for (doc, key) in keys.iter().enumerate() {
                if let Some(key) = key {
                    let loc = Loc::Segment {
                        uid: image.uid,
                        doc: doc as u32,
                    };
                    if state.docs.insert(key.clone(), loc).is_some() {
                        return Err(ImageError::Decode(format!("key {key} appears twice")));
                    }
                }
            }
            segments.push(Segment {
                uid: image.uid,
                meta,
                keys: Arc::new(keys),
                deleted: deleted as u32,
                unwritten_deletes: false,
            });
        }
        state.segments = segments;
        state.next_uid = head.next_uid;
        state.next_opstamp = head.next_opstamp.max(1);
        // Opening the segments checks that every file they need is there.
        self.publish(&mut state)
            .map_err(|e| ImageError::Decode(e.to_string()))
    }
}
