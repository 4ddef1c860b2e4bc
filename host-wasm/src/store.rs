//! `Store`: the JavaScript face of one engine. Every method reads its arguments at once (so a
//! caller may reuse a `Uint8Array` right after the call) and returns a promise.

use statemesh_core::{Engine, EngineConfig, EngineError, Patch, Storage, Timestamp, Value};
use wasm_bindgen::prelude::*;

use crate::convert::{self, value_from_js, value_to_js};
use crate::error::{HostError, Result};
use crate::feed::{Feed, Subscription};
use crate::host::{self, Persist, Shared, now};
use crate::types::{
    self, ChangesOptions, Entry, Metadata, OpenOptions, PutOptions, StoreRecord, Versioned,
    WriteResult,
};

/// An open statemesh store. Open one with `Store.open()`; call `close()` when done (a store
/// that is garbage-collected unclosed is freed, but its storage is not synced first).
#[wasm_bindgen]
pub struct Store {
    pub(crate) shared: Shared,
}

pub(crate) fn reject(e: HostError) -> js_sys::Promise {
    js_sys::Promise::reject(&e.into())
}

fn opt_js(v: Option<Value>) -> Result<JsValue> {
    match v {
        Some(v) => value_to_js(&v),
        None => Ok(JsValue::UNDEFINED),
    }
}

/// An optional options object as a plain JS value (`undefined` when not given).
pub(crate) fn optional(options: Option<js_sys::Object>) -> JsValue {
    options.map_or(JsValue::UNDEFINED, JsValue::from)
}

/// The codec a custom value names, and its bytes.
fn named_codec<'v>(
    e: &Engine,
    key: &str,
    value: &'v Value,
) -> Result<(std::sync::Arc<dyn statemesh_core::ValueCodec>, &'v [u8])> {
    let Value::Custom { codec, data } = value else {
        return Err(EngineError::WrongType {
            key: key.to_owned(),
            expected: "custom",
            actual: value.kind().name(),
        }
        .into());
    };
    match e.codecs().named(codec) {
        Some(c) => Ok((c.clone(), data)),
        None => Err(EngineError::UnknownCodec {
            key: key.to_owned(),
            codec: codec.clone(),
        }
        .into()),
    }
}

/// `undefined` and `null` as "not given".
fn given(v: &JsValue) -> bool {
    !(v.is_undefined() || v.is_null())
}

pub(crate) fn parse<T: serde::de::DeserializeOwned + Default + types::Fields>(
    v: &JsValue,
) -> Result<T> {
    if given(v) {
        for key in js_sys::Object::keys(&js_sys::Object::from(v.clone())).iter() {
            let key = key.as_string().unwrap_or_default();
            if !T::FIELDS.contains(&key.as_str()) {
                return Err(HostError::Argument(format!(
                    "unknown option {key:?}; expected one of {}",
                    T::FIELDS.join(", ")
                )));
            }
        }
        Ok(serde_wasm_bindgen::from_value(v.clone())?)
    } else {
        Ok(T::default())
    }
}

fn config(opts: &OpenOptions) -> EngineConfig {
    let mut config = EngineConfig::default();
    if let Some(sep) = opts.separator {
        config = config.with_separator(sep);
    }
    if let Some(yes) = opts.case_insensitive_keys {
        config = config.with_case_insensitive_keys(yes);
    }
    if let Some(max) = opts.max_value_size {
        config = config.with_max_value_size(max);
    }
    if let Some(limit) = opts.history_limit {
        config = config.with_history_limit(limit);
    }
    if opts.max_entries.is_some() || opts.max_bytes.is_some() {
        config = config.with_memory_limits(opts.max_entries, opts.max_bytes);
    }
    config
}

/// Opens a store on `storage`: loads its snapshot and log, restores the snapshot, declares the
/// indexes of `opts` (loading the index images stored with the snapshot where they match,
/// building the others from the keys), then replays the log into engine and indexes alike.
pub(crate) async fn open_on(opts: &OpenOptions, mut storage: Box<dyn Storage>) -> Result<Shared> {
    let recovered = storage.load().await.map_err(HostError::Storage)?;
    let images = if recovered.snapshot.is_some() && storage.supports_index_images() {
        match storage.load_index_images().await {
            Ok(images) => images,
            Err(e) => {
                host::warn(&format!(
                    "statemesh: index images unreadable, indexes will be rebuilt: {e}"
                ));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let config = config(opts);
    let mut engine = match &recovered.snapshot {
        Some(bytes) => Engine::restore(config, bytes)?,
        None => Engine::new(config)?,
    };
    install_codecs(&mut engine, opts)?;
    let offered = !images.is_empty();
    engine.offer_index_images(images);
    for declaration in opts.indexes.iter().flatten() {
        declaration.clone().declare(&mut engine)?;
    }
    let rejections = engine.take_image_rejections();
    let before = engine.revision();
    for record in &recovered.records {
        engine.replay_bytes(&record.bytes)?;
    }
    // Images describe the snapshot's revision: after a replay no later declaration can use them.
    let offered = offered && engine.revision() == before;
    if !offered {
        engine.clear_offered_images();
    }
    // Text indexes build segments of what the replay wrote at their first search: now.
    engine.flush_search()?;
    let persist = Persist::new(
        storage,
        opts.durability.unwrap_or_default(),
        engine.revision(),
        opts.checkpoint_every.unwrap_or(100_000),
        recovered.repairs,
    );
    let feed = Feed::new(opts.event_capacity.unwrap_or(4096));
    let shared = host::new_shared(engine, feed, Some(persist));
    {
        let mut state = shared.borrow_mut();
        state.offered_images = offered;
        for (name, why) in rejections {
            state.image_rejections.insert(name, why.to_string());
        }
    }
    Ok(shared)
}

/// Registers the codec plugins of `opts` (codecs are not part of the state: every open does it).
#[cfg(target_family = "wasm")]
fn install_codecs(engine: &mut Engine, opts: &OpenOptions) -> Result<()> {
    for spec in opts.codecs.iter().flatten() {
        engine.register_codec(
            &spec.pattern,
            crate::codec::JsCodec::from_plugin(spec.plugin.clone())?,
        )?;
    }
    engine
        .codecs_mut()
        .set_strict(opts.strict_codecs.unwrap_or(false));
    Ok(())
}

#[cfg(not(target_family = "wasm"))]
fn install_codecs(_engine: &mut Engine, opts: &OpenOptions) -> Result<()> {
    match &opts.codecs {
        Some(c) if !c.is_empty() => Err(HostError::Unsupported(
            "codec plugins exist only in wasm builds".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(target_family = "wasm")]
async fn open_indexed_db(name: &str, opts: &OpenOptions) -> Result<Box<dyn Storage>> {
    use statemesh_indexeddb::{DEFAULT_LOCK_WAIT_MS, IdbOptions, IdbStorage};
    let options = IdbOptions::default()
        .relaxed(opts.relaxed_durability.unwrap_or(false))
        .lock_wait_ms(opts.lock_wait_ms.unwrap_or(DEFAULT_LOCK_WAIT_MS));
    let storage = IdbStorage::open(name, options)
        .await
        .map_err(HostError::Storage)?;
    Ok(Box::new(storage))
}

#[cfg(not(target_family = "wasm"))]
async fn open_indexed_db(_name: &str, _opts: &OpenOptions) -> Result<Box<dyn Storage>> {
    Err(HostError::Unsupported(
        "IndexedDB exists only in wasm builds".into(),
    ))
}

impl Store {
    /// `Store.open` for Rust callers (and tests).
    pub async fn open_with(opts: OpenOptions) -> Result<Store> {
        let shared = match (&opts.path, &opts.indexed_db) {
            (Some(_), Some(_)) => {
                return Err(HostError::Argument(
                    "give either `path` (Node) or `indexedDb` (browser), not both".into(),
                ));
            }
            (Some(path), None) => {
                let storage = crate::node_disk::open(path)?;
                open_on(&opts, storage).await?
            }
            (None, Some(name)) => {
                let storage = open_indexed_db(name, &opts).await?;
                open_on(&opts, storage).await?
            }
            (None, None) => {
                let mut engine = Engine::new(config(&opts))?;
                install_codecs(&mut engine, &opts)?;
                for declaration in opts.indexes.iter().flatten() {
                    declaration.clone().declare(&mut engine)?;
                }
                let feed = Feed::new(opts.event_capacity.unwrap_or(4096));
                host::new_shared(engine, feed, None)
            }
        };
        Ok(Store { shared })
    }

    /// Runs a read once every write so far is durable (CP).
    pub(crate) fn read(
        &self,
        op: impl FnOnce(&Engine, Timestamp) -> Result<JsValue> + 'static,
    ) -> js_sys::Promise {
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            host::before_read(&shared).await?;
            let state = shared.borrow();
            Ok(op(&state.engine, now())?)
        })
    }

    /// Applies a write now and resolves once it is durable (CP) or at once (AP, memory).
    pub(crate) fn write<R: 'static>(
        &self,
        op: impl FnOnce(&mut Engine, Timestamp) -> Result<R, EngineError> + 'static,
        out: impl FnOnce(R) -> Result<JsValue> + 'static,
    ) -> js_sys::Promise {
        let applied = self.shared.borrow_mut().apply(op);
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (result, queued) = applied?;
            host::settle(&shared, queued).await?;
            Ok(out(result)?)
        })
    }

    fn write_result(
        &self,
        op: impl FnOnce(&mut Engine, Timestamp) -> Result<statemesh_core::WriteResult, EngineError>
        + 'static,
    ) -> js_sys::Promise {
        self.write(op, |r| WriteResult::js(&r))
    }
}

#[wasm_bindgen]
impl Store {
    /// Opens a store: in memory by default, in the directory `options.path` (Node), or in the
    /// IndexedDB database `options.indexedDb` (browser).
    #[wasm_bindgen(unchecked_return_type = "Promise<Store>")]
    pub fn open(
        #[wasm_bindgen(unchecked_param_type = "OpenOptions")] options: Option<js_sys::Object>,
    ) -> js_sys::Promise {
        let options = optional(options);
        let opts: OpenOptions = match parse(&options) {
            Ok(o) => o,
            Err(e) => return reject(e),
        };
        wasm_bindgen_futures::future_to_promise(
            async move { Ok(Store::open_with(opts).await?.into()) },
        )
    }

    /// An in-memory store holding the state of a `snapshot()`.
    #[wasm_bindgen(js_name = fromSnapshot, unchecked_return_type = "Promise<Store>")]
    pub fn from_snapshot(
        snapshot: &[u8],
        #[wasm_bindgen(unchecked_param_type = "OpenOptions")] options: Option<js_sys::Object>,
    ) -> js_sys::Promise {
        let options = optional(options);
        let result = parse::<OpenOptions>(&options).and_then(|opts| {
            let engine = Engine::restore(config(&opts), snapshot)?;
            let feed = Feed::new(opts.event_capacity.unwrap_or(4096));
            Ok(Store {
                shared: host::new_shared(engine, feed, None),
            })
        });
        match result {
            Ok(store) => js_sys::Promise::resolve(&JsValue::from(store)),
            Err(e) => reject(e),
        }
    }

    // ---- reads ----

    /// The value of `key` (`namespace:path`), or `undefined`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Value | undefined>")]
    pub fn get(&self, key: String) -> js_sys::Promise {
        self.read(move |e, now| opt_js(e.get(now, &key)?))
    }

    /// The value with its system and user metadata.
    #[wasm_bindgen(js_name = getRecord, unchecked_return_type = "Promise<StoreRecord | undefined>")]
    pub fn get_record(&self, key: String) -> js_sys::Promise {
        self.read(move |e, now| match e.get_record(now, &key)? {
            Some(r) => convert::to_js(&StoreRecord {
                value: value_to_js(&r.value)?,
                key: r.key,
                meta: Metadata::from_core(r.meta),
            }),
            None => Ok(JsValue::UNDEFINED),
        })
    }

    /// The metadata of `key` without its value.
    #[wasm_bindgen(js_name = getMetadata, unchecked_return_type = "Promise<Metadata | undefined>")]
    pub fn get_metadata(&self, key: String) -> js_sys::Promise {
        self.read(move |e, now| match e.get_metadata(now, &key)? {
            Some(m) => convert::to_js(&Metadata::from_core(m)),
            None => Ok(JsValue::UNDEFINED),
        })
    }

    /// The value and its version, for `put(key, value, { ifVersion })`.
    #[wasm_bindgen(js_name = getWithVersion, unchecked_return_type = "Promise<Versioned | undefined>")]
    pub fn get_with_version(&self, key: String) -> js_sys::Promise {
        self.read(move |e, now| match e.get_with_version(now, &key)? {
            Some((value, version)) => convert::to_js(&Versioned {
                value: value_to_js(&value)?,
                version,
            }),
            None => Ok(JsValue::UNDEFINED),
        })
    }

    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn exists(&self, key: String) -> js_sys::Promise {
        self.read(move |e, now| Ok(JsValue::from_bool(e.exists(now, &key)?)))
    }

    /// Milliseconds `key` has left; `null` when it has no TTL, `undefined` when it is absent.
    #[wasm_bindgen(js_name = getTtl, unchecked_return_type = "Promise<number | null | undefined>")]
    pub fn get_ttl(&self, key: String) -> js_sys::Promise {
        self.read(move |e, now| {
            Ok(match e.get_ttl(now, &key)? {
                None => JsValue::UNDEFINED,
                Some(statemesh_core::Ttl::Persistent) => JsValue::NULL,
                Some(statemesh_core::Ttl::Expires { remaining_ms, .. }) => {
                    convert::num(remaining_ms)
                }
            })
        })
    }

    /// Values of several keys, in the order asked (`undefined` for absent ones).
    #[wasm_bindgen(js_name = multiGet, unchecked_return_type = "Promise<Array<Value | undefined>>")]
    pub fn multi_get(&self, keys: Vec<String>) -> js_sys::Promise {
        self.read(move |e, now| {
            let values = e.multi_get(now, &keys)?;
            let out = js_sys::Array::new_with_length(values.len() as u32);
            for (i, v) in values.into_iter().enumerate() {
                out.set(i as u32, opt_js(v)?);
            }
            Ok(out.into())
        })
    }

    /// Keys matching a pattern such as `app:config.*` or `*:user.**`, in key order.
    #[wasm_bindgen(unchecked_return_type = "Promise<string[]>")]
    pub fn keys(&self, pattern: String) -> js_sys::Promise {
        self.read(move |e, now| convert::to_js(&e.keys(now, &pattern)?))
    }

    /// Namespaces that hold at least one key, in order.
    #[wasm_bindgen(unchecked_return_type = "Promise<string[]>")]
    pub fn namespaces(&self) -> js_sys::Promise {
        self.read(move |e, _| {
            let names: Vec<&str> = e.namespaces().collect();
            convert::to_js(&names)
        })
    }

    /// Keys and values matching a pattern, in key order.
    #[wasm_bindgen(js_name = getPattern, unchecked_return_type = "Promise<Entry[]>")]
    pub fn get_pattern(&self, pattern: String) -> js_sys::Promise {
        self.read(move |e, now| Entry::list(&e.get_pattern(now, &pattern)?))
    }

    /// One page of keys under `prefix` (`namespace:path-prefix`); pass `page.next` back as
    /// `cursor` for the next page. For every key, use `iterate(prefix)`.
    #[wasm_bindgen(unchecked_return_type = "Promise<ScanPage>")]
    pub fn scan(
        &self,
        prefix: String,
        #[wasm_bindgen(unchecked_param_type = "{ limit?: number, cursor?: string }")]
        options: Option<js_sys::Object>,
    ) -> js_sys::Promise {
        let options = optional(options);
        let parsed = (|| -> Result<_> {
            let limit = convert::opt_u64(&options, "limit")?.unwrap_or(100);
            let cursor = convert::get(&options, "cursor").as_string();
            let cursor = cursor
                .map(|c| statemesh_core::Cursor::decode(&c))
                .transpose()?;
            Ok((limit, cursor))
        })();
        let (limit, cursor) = match parsed {
            Ok(p) => p,
            Err(e) => return reject(e),
        };
        self.read(move |e, now| {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let page = e.scan(now, &prefix, limit, cursor.as_ref())?;
            convert::to_js(&types::ScanPage {
                items: Entry::list(&page.items)?,
                next: page.next.map(|c| c.encode()),
            })
        })
    }

    /// Every key under `prefix`, as an async iterator of entries fetched `batch` at a time:
    /// `for await (const { key, value } of store.iterate('chat:conv.42.'))`.
    pub fn iterate(
        &self,
        prefix: String,
        #[wasm_bindgen(unchecked_param_type = "{ batch?: number }")] options: Option<
            js_sys::Object,
        >,
    ) -> std::result::Result<crate::scan::ScanIterator, JsValue> {
        let options = optional(options);
        let batch = convert::opt_u64(&options, "batch")?.unwrap_or(256);
        Ok(crate::scan::ScanIterator::new(
            self.shared.clone(),
            prefix,
            usize::try_from(batch).unwrap_or(usize::MAX),
        ))
    }

    // ---- writes ----

    /// Creates or replaces `key`. Clears any TTL unless `ttlMs` or `keepTtl` says otherwise.
    #[wasm_bindgen(unchecked_return_type = "Promise<WriteResult>")]
    pub fn put(
        &self,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "Value")] value: JsValue,
        #[wasm_bindgen(unchecked_param_type = "PutOptions")] options: Option<js_sys::Object>,
    ) -> js_sys::Promise {
        let options = optional(options);
        let parsed = value_from_js(&value).and_then(|v| {
            let opts = parse::<PutOptions>(&options)?;
            Ok((v, opts))
        });
        match parsed {
            Ok((value, opts)) if !given(&options) => {
                drop(opts);
                self.write_result(move |e, now| e.put(now, &key, &value))
            }
            Ok((value, opts)) => {
                let opts = opts.into_core();
                self.write_result(move |e, now| e.put_with(now, &key, &value, &opts))
            }
            Err(e) => reject(e),
        }
    }

    /// Stores document or image bytes with their content type (e.g. `image/png`).
    #[wasm_bindgen(js_name = putDocument, unchecked_return_type = "Promise<WriteResult>")]
    pub fn put_document(
        &self,
        key: String,
        content_type: String,
        data: Vec<u8>,
        #[wasm_bindgen(unchecked_param_type = "PutOptions")] options: Option<js_sys::Object>,
    ) -> js_sys::Promise {
        let options = optional(options);
        let opts = match parse::<PutOptions>(&options) {
            Ok(o) => o.into_core(),
            Err(e) => return reject(e),
        };
        let value = Value::Document { content_type, data };
        self.write_result(move |e, now| e.put_with(now, &key, &value, &opts))
    }

    /// Deletes `key`; `affected` is 0 when it did not exist.
    #[wasm_bindgen(unchecked_return_type = "Promise<WriteResult>")]
    pub fn delete(&self, key: String) -> js_sys::Promise {
        self.write_result(move |e, now| e.delete(now, &key))
    }

    /// Replaces the value only if it equals `expected` (`undefined`: only if absent). Keeps the
    /// TTL. Fails with `VALUE_CONFLICT` otherwise.
    #[wasm_bindgen(js_name = compareAndSwap, unchecked_return_type = "Promise<WriteResult>")]
    pub fn compare_and_swap(
        &self,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "Value | undefined")] expected: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Value")] value: JsValue,
    ) -> js_sys::Promise {
        let parsed = (|| -> Result<_> {
            let expected = if expected.is_undefined() {
                None
            } else {
                Some(value_from_js(&expected)?)
            };
            Ok((expected, value_from_js(&value)?))
        })();
        match parsed {
            Ok((expected, value)) => self.write_result(move |e, now| {
                e.compare_and_swap(now, &key, expected.as_ref(), &value)
            }),
            Err(e) => reject(e),
        }
    }

    /// Adds `delta` (default 1) to an integer (a missing key counts as 0); resolves to the new
    /// value.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn increment(&self, key: String, delta: Option<f64>) -> js_sys::Promise {
        let delta = delta.unwrap_or(1.0);
        if delta.fract() != 0.0 || delta.abs() > 9_007_199_254_740_991.0 {
            return reject(HostError::Argument("delta must be a safe integer".into()));
        }
        let delta = delta as i64;
        self.write(
            move |e, now| e.increment(now, &key, delta),
            |(v, _)| value_to_js(&Value::Integer(v)),
        )
    }

    /// Appends a string to a string, or bytes to bytes; resolves to the new length in bytes.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn append(
        &self,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] suffix: JsValue,
    ) -> js_sys::Promise {
        match value_from_js(&suffix) {
            Ok(suffix) => self.write(
                move |e, now| e.append(now, &key, &suffix),
                |(len, _)| Ok(JsValue::from_f64(len as f64)),
            ),
            Err(e) => reject(e),
        }
    }

    /// Replaces the user metadata of `key` (a plain object).
    #[wasm_bindgen(js_name = setMetadata, unchecked_return_type = "Promise<WriteResult>")]
    pub fn set_metadata(
        &self,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] metadata: JsValue,
    ) -> js_sys::Promise {
        match convert::json_object(&metadata) {
            Ok(meta) => self.write_result(move |e, now| e.set_metadata(now, &key, &meta)),
            Err(e) => reject(e),
        }
    }

    /// Puts every entry in one atomic revision. Entries are `[key, value]` pairs or
    /// `{ key, value }` objects.
    #[wasm_bindgen(js_name = multiPut, unchecked_return_type = "Promise<WriteResult>")]
    pub fn multi_put(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Array<[string, Value] | Entry>")] entries: JsValue,
    ) -> js_sys::Promise {
        match crate::scan::entries_from_js(&entries) {
            Ok(items) => self.write_result(move |e, now| e.multi_put(now, &items)),
            Err(e) => reject(e),
        }
    }

    /// Deletes every listed key in one revision.
    #[wasm_bindgen(js_name = multiDelete, unchecked_return_type = "Promise<WriteResult>")]
    pub fn multi_delete(&self, keys: Vec<String>) -> js_sys::Promise {
        self.write_result(move |e, now| e.multi_delete(now, &keys))
    }

    /// Deletes every key matching `pattern` in one revision.
    #[wasm_bindgen(js_name = deletePattern, unchecked_return_type = "Promise<WriteResult>")]
    pub fn delete_pattern(&self, pattern: String) -> js_sys::Promise {
        self.write_result(move |e, now| e.delete_pattern(now, &pattern))
    }

    /// Applies a JSON merge patch (RFC 7386) to the key's JSON value.
    #[wasm_bindgen(js_name = mergePatch, unchecked_return_type = "Promise<WriteResult>")]
    pub fn merge_patch(
        &self,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "unknown")] patch: JsValue,
    ) -> js_sys::Promise {
        match serde_wasm_bindgen::from_value::<serde_json::Value>(patch) {
            Ok(p) => {
                let patch = Patch::merge(p);
                self.write_result(move |e, now| e.patch(now, &key, &patch))
            }
            Err(e) => reject(e.into()),
        }
    }

    /// Applies a JSON patch (RFC 6902, an array of operations) to the key's JSON value.
    #[wasm_bindgen(js_name = jsonPatch, unchecked_return_type = "Promise<WriteResult>")]
    pub fn json_patch(
        &self,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "unknown[]")] ops: JsValue,
    ) -> js_sys::Promise {
        let patch = serde_wasm_bindgen::from_value::<serde_json::Value>(ops)
            .map_err(HostError::from)
            .and_then(|ops| Ok(Patch::json(ops)?));
        match patch {
            Ok(patch) => self.write_result(move |e, now| e.patch(now, &key, &patch)),
            Err(e) => reject(e),
        }
    }

    // ---- codec plugins ----

    /// Encodes `input` with the codec plugin that owns `key` and puts the result (the engine
    /// validates it again, as every custom put).
    #[wasm_bindgen(js_name = putCustom, unchecked_return_type = "Promise<WriteResult>")]
    pub fn put_custom(
        &self,
        key: String,
        input: Vec<u8>,
        #[wasm_bindgen(unchecked_param_type = "PutOptions")] options: Option<js_sys::Object>,
    ) -> js_sys::Promise {
        let options = optional(options);
        let encoded = (|| -> Result<_> {
            let opts = parse::<PutOptions>(&options)?.into_core();
            let codec = {
                let state = self.shared.borrow();
                let k = state
                    .engine
                    .config()
                    .keys
                    .parse(&key)
                    .map_err(EngineError::from)?;
                state.engine.codecs().for_key(&k.to_key_string()).cloned()
            };
            let Some(codec) = codec else {
                return Err(HostError::Argument(format!(
                    "no codec owns {key}; register one with Store.open({{ codecs }})"
                )));
            };
            let data = codec.encode(&input).map_err(|error| EngineError::Codec {
                key: key.clone(),
                error,
            })?;
            let value = Value::Custom {
                codec: codec.name().to_owned(),
                data,
            };
            Ok((value, opts))
        })();
        match encoded {
            Ok((value, opts)) => {
                self.write_result(move |e, now| e.put_with(now, &key, &value, &opts))
            }
            Err(e) => reject(e),
        }
    }

    /// The input form of `key`'s custom value, decoded by the codec it names.
    #[wasm_bindgen(js_name = getDecoded, unchecked_return_type = "Promise<Uint8Array | undefined>")]
    pub fn get_decoded(&self, key: String) -> js_sys::Promise {
        self.read(move |e, now| match e.get(now, &key)? {
            None => Ok(JsValue::UNDEFINED),
            Some(value) => {
                let (codec, data) = named_codec(e, &key, &value)?;
                let out = codec
                    .decode(data)
                    .map_err(|error| EngineError::Codec { key, error })?;
                Ok(js_sys::Uint8Array::from(out.as_slice()).into())
            }
        })
    }

    /// A JSON view of `key`'s value: a custom value's `to_json`, a JSON value itself.
    #[wasm_bindgen(js_name = toJson, unchecked_return_type = "Promise<unknown>")]
    pub fn to_json(&self, key: String) -> js_sys::Promise {
        self.read(move |e, now| match e.get(now, &key)? {
            Some(Value::Json(j)) => convert::to_js(&j),
            Some(value @ Value::Custom { .. }) => {
                let (codec, data) = named_codec(e, &key, &value)?;
                match codec
                    .to_json(data)
                    .map_err(|error| EngineError::Codec { key, error })?
                {
                    Some(j) => convert::to_js(&j),
                    None => Ok(JsValue::NULL),
                }
            }
            Some(_) => Ok(JsValue::NULL),
            None => Ok(JsValue::UNDEFINED),
        })
    }

    /// Searchable text of `key`'s value: a string's text, a JSON document's strings, a custom
    /// value's `to_text`.
    #[wasm_bindgen(js_name = toText, unchecked_return_type = "Promise<string | null | undefined>")]
    pub fn to_text(&self, key: String) -> js_sys::Promise {
        self.read(move |e, now| {
            let text = match e.get(now, &key)? {
                None => return Ok(JsValue::UNDEFINED),
                Some(Value::String(s)) => Some(s),
                Some(Value::Json(j)) => statemesh_core::codec::json_text(&j),
                Some(value @ Value::Custom { .. }) => {
                    let (codec, data) = named_codec(e, &key, &value)?;
                    codec
                        .to_text(data)
                        .map_err(|error| EngineError::Codec { key, error })?
                }
                Some(_) => None,
            };
            Ok(text.map_or(JsValue::NULL, |t| JsValue::from_str(&t)))
        })
    }

    // ---- TTL ----

    /// Makes `key` expire `ttlMs` milliseconds from now.
    #[wasm_bindgen(js_name = setTtl, unchecked_return_type = "Promise<WriteResult>")]
    pub fn set_ttl(&self, key: String, ttl_ms: f64) -> js_sys::Promise {
        match convert::u64_arg(&JsValue::from_f64(ttl_ms), "ttlMs") {
            Ok(ttl) => self.write_result(move |e, now| e.set_ttl(now, &key, ttl)),
            Err(e) => reject(e),
        }
    }

    /// Pushes the expiry of `key` later by `byMs`.
    #[wasm_bindgen(js_name = extendTtl, unchecked_return_type = "Promise<WriteResult>")]
    pub fn extend_ttl(&self, key: String, by_ms: f64) -> js_sys::Promise {
        match convert::u64_arg(&JsValue::from_f64(by_ms), "byMs") {
            Ok(by) => self.write_result(move |e, now| e.extend_ttl(now, &key, by)),
            Err(e) => reject(e),
        }
    }

    /// Removes the TTL of `key`.
    #[wasm_bindgen(js_name = removeTtl, unchecked_return_type = "Promise<WriteResult>")]
    pub fn remove_ttl(&self, key: String) -> js_sys::Promise {
        self.write_result(move |e, now| e.remove_ttl(now, &key))
    }

    /// Removes expired keys now (a timer does it on its own); resolves to how many.
    #[wasm_bindgen(js_name = cleanupExpired, unchecked_return_type = "Promise<number>")]
    pub fn cleanup_expired(&self) -> js_sys::Promise {
        self.write(|e, now| Ok(e.cleanup_expired(now)), |n| Ok(convert::num(n)))
    }

    // ---- transactions ----

    /// A compare-then-else transaction (etcd's model).
    #[wasm_bindgen(unchecked_return_type = "Promise<TxnResult>")]
    pub fn txn(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TxnSpec")] spec: JsValue,
    ) -> js_sys::Promise {
        match crate::txn::txn_from_js(&spec) {
            Ok(txn) => self.write(
                move |e, now| e.txn(now, &txn),
                |r| crate::txn::txn_result_js(&r),
            ),
            Err(e) => reject(e),
        }
    }

    /// Begins an interactive optimistic transaction.
    #[wasm_bindgen(unchecked_return_type = "Promise<Transaction>")]
    pub fn begin(
        &self,
        #[wasm_bindgen(unchecked_param_type = "BeginOptions")] options: Option<js_sys::Object>,
    ) -> js_sys::Promise {
        let options = optional(options);
        match parse::<types::BeginOptions>(&options) {
            Ok(opts) => crate::txn::begin(&self.shared, opts),
            Err(e) => reject(e),
        }
    }

    // ---- history and feed ----

    /// The value `key` held right after `revision` committed (`undefined`: absent then).
    #[wasm_bindgen(js_name = getAt, unchecked_return_type = "Promise<ValueAt | undefined>")]
    pub fn get_at(&self, key: String, revision: f64) -> js_sys::Promise {
        match convert::u64_arg(&JsValue::from_f64(revision), "revision") {
            Ok(rev) => {
                self.read(move |e, now| types::ValueAt::js(e.get_at(now, &key, rev)?.as_ref()))
            }
            Err(e) => reject(e),
        }
    }

    /// The kept versions of `key`, oldest first.
    #[wasm_bindgen(js_name = keyHistory, unchecked_return_type = "Promise<KeyVersion[]>")]
    pub fn key_history(&self, key: String) -> js_sys::Promise {
        self.read(move |e, _| {
            let out = js_sys::Array::new();
            for v in e.key_history(&key)? {
                out.push(&convert::to_js(&types::KeyVersion {
                    revision: v.revision,
                    at: v.at.as_millis(),
                    kind: types::ChangeKind::from_core(v.kind),
                    version: v.version,
                    value: match &v.value {
                        Some(v) => value_to_js(v)?,
                        None => JsValue::UNDEFINED,
                    },
                })?);
            }
            Ok(out.into())
        })
    }

    /// Up to `limit` (default 1000) kept changes after `revision`, whole revisions at a time.
    #[wasm_bindgen(js_name = changesSince, unchecked_return_type = "Promise<ChangeEvent[]>")]
    pub fn changes_since(&self, revision: f64, limit: Option<f64>) -> js_sys::Promise {
        let parsed = convert::u64_arg(&JsValue::from_f64(revision), "revision").and_then(|r| {
            let l = convert::u64_arg(&JsValue::from_f64(limit.unwrap_or(1000.0)), "limit")?;
            Ok((r, usize::try_from(l).unwrap_or(usize::MAX)))
        });
        match parsed {
            Ok((rev, limit)) => self.read(move |e, _| {
                let out = js_sys::Array::new();
                for event in e.changes_since(rev, limit)? {
                    out.push(&types::ChangeEvent::js(&event)?);
                }
                Ok(out.into())
            }),
            Err(e) => reject(e),
        }
    }

    /// Drops the history up to and including `revision`.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn compact(&self, revision: f64) -> js_sys::Promise {
        match convert::u64_arg(&JsValue::from_f64(revision), "revision") {
            Ok(rev) => self.write(move |e, _| e.compact(rev), |()| Ok(JsValue::UNDEFINED)),
            Err(e) => reject(e),
        }
    }

    /// Live changes to keys matching `pattern` (every key when omitted), from now on.
    pub fn subscribe(&self, pattern: Option<String>) -> std::result::Result<Subscription, JsValue> {
        let options = ChangesOptions {
            since: None,
            pattern,
        };
        Ok(self.changes_with(options)?)
    }

    /// Kept changes after `since` (when given), then live ones, with no gap or duplicate.
    pub fn changes(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ChangesOptions")] options: Option<js_sys::Object>,
    ) -> std::result::Result<Subscription, JsValue> {
        let options = optional(options);
        let options = parse::<ChangesOptions>(&options)?;
        Ok(self.changes_with(options)?)
    }

    // ---- state and lifecycle ----

    /// The revision of the last committed write.
    #[wasm_bindgen(getter)]
    pub fn revision(&self) -> f64 {
        self.shared.borrow().engine.revision() as f64
    }

    /// Keys held (expired keys not swept yet included).
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.shared.borrow().engine.len() as f64
    }

    /// Whether `close()` was called.
    #[wasm_bindgen(getter)]
    pub fn closed(&self) -> bool {
        self.shared.borrow().closed
    }

    /// What storage repaired at open (e.g. a torn log tail after a crash).
    #[wasm_bindgen(getter, js_name = recoveryRepairs)]
    pub fn recovery_repairs(&self) -> Vec<String> {
        let state = self.shared.borrow();
        state
            .persist
            .as_ref()
            .map(|p| p.repairs.clone())
            .unwrap_or_default()
    }

    /// The whole state as bytes; open it again with `Store.fromSnapshot`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array>")]
    pub fn snapshot(&self) -> js_sys::Promise {
        self.read(|e, _| {
            let bytes = e.snapshot()?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// Writes a snapshot to storage so reopening replays less (runs on its own as well).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn checkpoint(&self) -> js_sys::Promise {
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            host::checkpoint(&shared).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Makes every write so far durable (for AP stores; CP writes are durable when they resolve).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn flush(&self) -> js_sys::Promise {
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            host::sync(&shared).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Flushes, releases the storage (and its lock) and ends every subscription. Later calls
    /// fail with `CLOSED`. Closing twice is harmless.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> js_sys::Promise {
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            if shared.borrow().closed {
                return Ok(JsValue::UNDEFINED);
            }
            host::close(&shared).await?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl Store {
    fn changes_with(&self, options: ChangesOptions) -> Result<Subscription> {
        let mut state = self.shared.borrow_mut();
        state.check()?;
        let pattern = match &options.pattern {
            Some(p) => Some(state.engine.key_pattern(p)?),
            None => None,
        };
        // History up to the current revision and live events after it, both taken here with no
        // write in between (one thread), so nothing is missed or repeated. In CP mode the
        // replayed part may include the last writes while they are still being made durable.
        let cut = state.engine.revision();
        let backlog = match options.since {
            Some(since) => {
                let mut events = state.engine.changes_since(since, usize::MAX)?;
                events.retain(|e| pattern.as_ref().is_none_or(|p| p.matches(&e.key)));
                events
            }
            None => Vec::new(),
        };
        state.engine.set_capture_events(true);
        let queue = state.feed.subscribe(pattern, backlog, cut);
        state.keep_alive();
        Ok(Subscription::new(queue))
    }
}
