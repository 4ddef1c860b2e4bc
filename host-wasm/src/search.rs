//! Search from JavaScript: declaring text, value and vector indexes, and searching them. The
//! engine does the work (core's search module); this file turns JS objects into declarations
//! and hits into plain objects.

use serde::{Deserialize, Serialize};
use statemesh_core::search::{
    Language, TextIndexDef, ValueIndexDef, VectorIndexDef, language_from_name, metric_from_name,
};
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use crate::convert::{self, value_from_js};
use crate::error::{HostError, Result};
use crate::store::{Store, optional, parse, reject};
use crate::types::{Fields, WriteResult};

/// A full-text index over keys matching `pattern`.
#[derive(Debug, Clone, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TextIndexOptions {
    pub name: String,
    /// Keys indexed, e.g. `"chat:conv.*.msg.*"`.
    pub pattern: String,
    /// JSON fields (dotted paths) to index; none: the whole value, which must be a string.
    #[tsify(optional)]
    pub fields: Option<Vec<String>>,
    /// Stemming and stop words, e.g. `"english"` (the default) or `"french"`; `null`: none.
    #[tsify(optional, type = "string | null")]
    pub language: Option<Option<String>>,
}

/// An exact-value index over keys matching `pattern`.
#[derive(Debug, Clone, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ValueIndexOptions {
    pub name: String,
    pub pattern: String,
    /// JSON fields (dotted paths) to index; none: the whole value.
    #[tsify(optional)]
    pub fields: Option<Vec<String>>,
}

/// A vector index over keys matching `pattern` (exact search in wasm).
#[derive(Debug, Clone, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct VectorIndexOptions {
    pub name: String,
    pub pattern: String,
    pub dimension: usize,
    /// `"cosine"`, `"l2"` or `"dot"`.
    #[tsify(type = "\"cosine\" | \"l2\" | \"dot\"")]
    pub metric: String,
    /// The JSON field holding each key's vector; none: the whole value (an array of numbers, or
    /// what `addVector` wrote).
    #[tsify(optional)]
    pub field: Option<String>,
}

/// An index declared at open (`OpenOptions.indexes`).
#[derive(Debug, Clone, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum IndexDeclaration {
    Text(TextIndexOptions),
    Value(ValueIndexOptions),
    Vector(VectorIndexOptions),
}

/// Options of `searchText`.
#[derive(Debug, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TextSearchOptions {
    /// Only keys matching this pattern.
    #[tsify(optional)]
    pub filter: Option<String>,
    /// Most hits (default 10, at most 10,000).
    #[tsify(optional)]
    pub limit: Option<usize>,
}

/// Options of `searchByValue`.
#[derive(Debug, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ValueSearchOptions {
    /// The indexed field to look in (needed when the index has several).
    #[tsify(optional)]
    pub field: Option<String>,
    #[tsify(optional)]
    pub filter: Option<String>,
}

/// Options of `vectorSearch`.
#[derive(Debug, Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct VectorSearchOptions {
    /// Nearest keys wanted (default 10, at most 10,000).
    #[tsify(optional)]
    pub top_k: Option<usize>,
    #[tsify(optional)]
    pub filter: Option<String>,
}

/// A text search hit: higher scores rank first (BM25).
#[derive(Debug, Serialize, Tsify)]
pub struct TextHit {
    pub key: String,
    pub score: f32,
}

/// A vector search hit: nearest first.
#[derive(Debug, Serialize, Tsify)]
pub struct VectorHit {
    pub key: String,
    pub distance: f32,
}

/// How many entries an index holds, and how it was built when declared.
#[derive(Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct IndexStats {
    pub entries: usize,
    /// Vector indexes: writes whose value held no usable vector.
    pub skipped: u64,
    /// The index was loaded from the index image stored at the last checkpoint instead of being
    /// built from the keys.
    pub restored_from_image: bool,
    /// Keys read to build the index when it was declared (0 when restored from an image).
    pub backfilled: u64,
    /// Why the stored image of this index was not used (it was rebuilt), when one was offered.
    #[tsify(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_rejected: Option<String>,
}

impl Fields for TextIndexOptions {
    const FIELDS: &'static [&'static str] = &["name", "pattern", "fields", "language"];
}
impl Fields for ValueIndexOptions {
    const FIELDS: &'static [&'static str] = &["name", "pattern", "fields"];
}
impl Fields for VectorIndexOptions {
    const FIELDS: &'static [&'static str] = &["name", "pattern", "dimension", "metric", "field"];
}
impl Fields for TextSearchOptions {
    const FIELDS: &'static [&'static str] = &["filter", "limit"];
}
impl Fields for ValueSearchOptions {
    const FIELDS: &'static [&'static str] = &["field", "filter"];
}
impl Fields for VectorSearchOptions {
    const FIELDS: &'static [&'static str] = &["topK", "filter"];
}

const DEFAULT_LIMIT: usize = 10;

fn language(opt: Option<Option<String>>) -> Result<Option<Language>> {
    match opt {
        None => Ok(Some(Language::English)),
        Some(None) => Ok(None),
        Some(Some(name)) => language_from_name(&name).map(Some).ok_or_else(|| {
            HostError::Argument(format!(
                "unknown language {name:?}; expected one of {}",
                statemesh_core::search::LANGUAGES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
    }
}

/// A vector argument: an array of numbers or a `Float32Array`.
fn vector_arg(v: &JsValue) -> Result<Vec<f32>> {
    if let Some(f) = v.dyn_ref::<js_sys::Float32Array>() {
        return Ok(f.to_vec());
    }
    if js_sys::Array::is_array(v) {
        let array = js_sys::Array::from(v);
        let mut out = Vec::with_capacity(array.length() as usize);
        for item in array.iter() {
            let n = item.as_f64().ok_or_else(|| {
                HostError::Argument("a vector must be an array of numbers".into())
            })?;
            out.push(n as f32);
        }
        return Ok(out);
    }
    Err(HostError::Argument(
        "a vector must be an array of numbers or a Float32Array".into(),
    ))
}

#[wasm_bindgen]
impl Store {
    /// Declares a full-text index and indexes the keys already held that match it. Declared
    /// here, after the open, an index is built from the keys (unless nothing was written since
    /// the checkpoint whose image it matches); declare it in `OpenOptions.indexes` to have it
    /// restored from its image at every open.
    #[wasm_bindgen(js_name = declareTextIndex, unchecked_return_type = "Promise<void>")]
    pub fn declare_text_index(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TextIndexOptions")] options: js_sys::Object,
    ) -> js_sys::Promise {
        let declared = parse::<TextIndexOptions>(&options.into())
            .and_then(|o| self.declare_now(IndexDeclaration::Text(o)));
        settle(declared.map(|()| JsValue::UNDEFINED))
    }

    /// Declares an exact-value index (see `searchByValue`).
    #[wasm_bindgen(js_name = declareValueIndex, unchecked_return_type = "Promise<void>")]
    pub fn declare_value_index(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ValueIndexOptions")] options: js_sys::Object,
    ) -> js_sys::Promise {
        let declared = parse::<ValueIndexOptions>(&options.into())
            .and_then(|o| self.declare_now(IndexDeclaration::Value(o)));
        settle(declared.map(|()| JsValue::UNDEFINED))
    }

    /// Declares a vector index (exact nearest-neighbour search in wasm).
    #[wasm_bindgen(js_name = declareVectorIndex, unchecked_return_type = "Promise<void>")]
    pub fn declare_vector_index(
        &self,
        #[wasm_bindgen(unchecked_param_type = "VectorIndexOptions")] options: js_sys::Object,
    ) -> js_sys::Promise {
        let declared = parse::<VectorIndexOptions>(&options.into())
            .and_then(|o| self.declare_now(IndexDeclaration::Vector(o)));
        settle(declared.map(|()| JsValue::UNDEFINED))
    }

    /// Drops an index; resolves to whether it existed.
    #[wasm_bindgen(js_name = dropIndex, unchecked_return_type = "Promise<boolean>")]
    pub fn drop_index(&self, name: String) -> js_sys::Promise {
        settle(
            self.declare(|e| Ok(e.drop_index(&name)))
                .inspect(|_| {
                    self.shared.borrow_mut().image_rejections.remove(&name);
                })
                .map(JsValue::from_bool),
        )
    }

    /// Sizes of an index and how it was built, or `undefined` when none has that name.
    #[wasm_bindgen(js_name = indexStats, unchecked_return_type = "Promise<IndexStats | undefined>")]
    pub fn index_stats(&self, name: String) -> js_sys::Promise {
        let stats = (|| {
            let state = self.shared.borrow();
            if state.closed {
                return Err(HostError::Closed);
            }
            let Some(s) = state.engine.index_stats(&name) else {
                return Ok(JsValue::UNDEFINED);
            };
            let origin = state.engine.index_origin(&name).unwrap_or_default();
            convert::to_js(&IndexStats {
                entries: s.entries,
                skipped: s.skipped,
                restored_from_image: origin.restored_from_image,
                backfilled: origin.backfilled,
                image_rejected: state.image_rejections.get(&name).cloned(),
            })
        })();
        settle(stats)
    }

    /// BM25-ranked keys for a query in tantivy's query language (terms, "phrases", AND/OR,
    /// field:term). Never returns a deleted or expired key.
    #[wasm_bindgen(js_name = searchText, unchecked_return_type = "Promise<TextHit[]>")]
    pub fn search_text(
        &self,
        index: String,
        query: String,
        #[wasm_bindgen(unchecked_param_type = "TextSearchOptions")] options: Option<js_sys::Object>,
    ) -> js_sys::Promise {
        let opts = match parse::<TextSearchOptions>(&optional(options)) {
            Ok(o) => o,
            Err(e) => return reject(e),
        };
        self.read(move |e, now| {
            let hits = e.search_text(
                now,
                &index,
                &query,
                opts.filter.as_deref(),
                opts.limit.unwrap_or(DEFAULT_LIMIT),
            )?;
            let hits: Vec<TextHit> = hits
                .into_iter()
                .map(|h| TextHit {
                    key: h.key,
                    score: h.score,
                })
                .collect();
            convert::to_js(&hits)
        })
    }

    /// Keys whose indexed field (or whole value) equals `value` exactly, in key order.
    #[wasm_bindgen(js_name = searchByValue, unchecked_return_type = "Promise<string[]>")]
    pub fn search_by_value(
        &self,
        index: String,
        #[wasm_bindgen(unchecked_param_type = "Value")] value: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ValueSearchOptions")] options: Option<
            js_sys::Object,
        >,
    ) -> js_sys::Promise {
        let parsed = parse::<ValueSearchOptions>(&optional(options)).and_then(|opts| {
            let json = match value_from_js(&value)? {
                statemesh_core::Value::Json(j) => j,
                statemesh_core::Value::String(s) => serde_json::Value::String(s),
                statemesh_core::Value::Integer(i) => serde_json::Value::from(i),
                statemesh_core::Value::Float(f) => serde_json::Value::from(f),
                statemesh_core::Value::Bool(b) => serde_json::Value::Bool(b),
                _ => {
                    return Err(HostError::Argument(
                        "searchByValue takes a string, number, boolean or JSON value".into(),
                    ));
                }
            };
            Ok((opts, json))
        });
        let (opts, json) = match parsed {
            Ok(p) => p,
            Err(e) => return reject(e),
        };
        self.read(move |e, now| {
            let keys = e.search_by_value(
                now,
                &index,
                opts.field.as_deref(),
                &json,
                opts.filter.as_deref(),
            )?;
            convert::to_js(&keys)
        })
    }

    /// The `topK` keys nearest to `vector`, nearest first.
    #[wasm_bindgen(js_name = vectorSearch, unchecked_return_type = "Promise<VectorHit[]>")]
    pub fn vector_search(
        &self,
        index: String,
        #[wasm_bindgen(unchecked_param_type = "number[] | Float32Array")] vector: JsValue,
        #[wasm_bindgen(unchecked_param_type = "VectorSearchOptions")] options: Option<
            js_sys::Object,
        >,
    ) -> js_sys::Promise {
        let parsed = parse::<VectorSearchOptions>(&optional(options))
            .and_then(|opts| Ok((opts, vector_arg(&vector)?)));
        let (opts, vector) = match parsed {
            Ok(p) => p,
            Err(e) => return reject(e),
        };
        self.read(move |e, now| {
            let hits = e.vector_search(
                now,
                &index,
                &vector,
                opts.top_k.unwrap_or(DEFAULT_LIMIT),
                opts.filter.as_deref(),
            )?;
            let hits: Vec<VectorHit> = hits
                .into_iter()
                .map(|h| VectorHit {
                    key: h.key,
                    distance: h.distance,
                })
                .collect();
            convert::to_js(&hits)
        })
    }

    /// Stores `vector` as the value of `key` (little-endian f32 bytes) and indexes it; the key
    /// must match the index's pattern.
    #[wasm_bindgen(js_name = addVector, unchecked_return_type = "Promise<WriteResult>")]
    pub fn add_vector(
        &self,
        index: String,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "number[] | Float32Array")] vector: JsValue,
    ) -> js_sys::Promise {
        match vector_arg(&vector) {
            Ok(vector) => self.write(
                move |e, now| e.add_vector(now, &index, &key, &vector),
                |r| WriteResult::js(&r),
            ),
            Err(e) => reject(e),
        }
    }
}

impl IndexDeclaration {
    /// Declares this index on `engine` (exact vector search: the one index that runs in wasm).
    pub(crate) fn declare(self, engine: &mut statemesh_core::Engine) -> Result<()> {
        match self {
            IndexDeclaration::Text(o) => {
                let mut def = TextIndexDef::new(o.name, o.pattern).language(language(o.language)?);
                for field in o.fields.unwrap_or_default() {
                    def = def.field(field);
                }
                Ok(engine.declare_text_index(def)?)
            }
            IndexDeclaration::Value(o) => {
                let mut def = ValueIndexDef::new(o.name, o.pattern);
                for field in o.fields.unwrap_or_default() {
                    def = def.field(field);
                }
                Ok(engine.declare_value_index(def)?)
            }
            IndexDeclaration::Vector(o) => {
                let metric = metric_from_name(&o.metric).ok_or_else(|| {
                    HostError::Argument(format!(
                        "unknown metric {:?}; expected cosine, l2 or dot",
                        o.metric
                    ))
                })?;
                let mut def = VectorIndexDef::new(o.name, o.pattern, o.dimension, metric);
                if let Some(field) = o.field {
                    def = def.field(field);
                }
                Ok(engine.declare_vector_index(def)?)
            }
        }
    }
}

impl Store {
    /// Declares an index on the open engine (not a logged write). An image still offered from
    /// the open is used if it matches the engine as it is now; core checks that.
    fn declare_now(&self, declaration: IndexDeclaration) -> Result<()> {
        let mut state = self.shared.borrow_mut();
        if state.closed {
            return Err(HostError::Closed);
        }
        declaration.declare(&mut state.engine)?;
        state.note_image_rejections();
        Ok(())
    }

    /// Runs a declaration (not a logged write) on the open engine.
    fn declare<R>(
        &self,
        op: impl FnOnce(&mut statemesh_core::Engine) -> Result<R, statemesh_core::EngineError>,
    ) -> Result<R> {
        let mut state = self.shared.borrow_mut();
        if state.closed {
            return Err(HostError::Closed);
        }
        Ok(op(&mut state.engine)?)
    }
}

fn settle(result: Result<JsValue>) -> js_sys::Promise {
    match result {
        Ok(v) => js_sys::Promise::resolve(&v),
        Err(e) => reject(e),
    }
}
