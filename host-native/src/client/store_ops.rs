//! The [`crate::Store`] operations of [`Client`]: same names, arguments and results.

use serde_json::{Map, Value as Json};
use statemesh_core::search::{
    IndexOrigin, IndexStats, TextHit, TextIndexDef, ValueIndexDef, VectorHit, VectorIndexDef,
};
use statemesh_core::{
    Cursor, Metadata, PutOptions, Record, ScanPage, StoredValue, Ttl, Value, WriteResult,
};

use super::conn::Args;
use super::{Client, args, decode, wire};
use crate::error::{Error, Result};
use crate::scan_stream::ScanStream;
use crate::server::jsonl::wire::WireValue;

fn key(key: &str) -> Map<String, Json> {
    args([("key", key.into())])
}

fn list<K: AsRef<str>>(keys: &[K]) -> Json {
    Json::Array(keys.iter().map(|k| Json::from(k.as_ref())).collect())
}

impl Client {
    async fn write(&self, op: &str, a: impl Into<Args>) -> Result<WriteResult> {
        decode::write_result(&self.call(op, a).await?)
    }

    // ---- reads ----

    /// The value of `key`, or `None` when it does not exist or has expired.
    pub async fn get(&self, key: &str) -> Result<Option<Value>> {
        decode::opt_value(self.call("get", Args::new().with("key", key)).await?)
    }

    /// The value and its version, for a later [`Client::put_if_version`].
    pub async fn get_with_version(&self, key_: &str) -> Result<Option<(Value, u64)>> {
        let mut r = self.call("get_with_version", key(key_)).await?;
        if r.is_null() {
            return Ok(None);
        }
        let version = decode::u64_field(&r, "version")?;
        let value = decode::value(r.get_mut("value").map(Json::take).unwrap_or(Json::Null))?;
        Ok(Some((value, version)))
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key_: &str) -> Result<bool> {
        decode::as_bool(&self.call("exists", key(key_)).await?)
    }

    /// How long `key` has left; `None` when it does not exist.
    pub async fn get_ttl(&self, key_: &str) -> Result<Option<Ttl>> {
        decode::ttl(&self.call("get_ttl", key(key_)).await?)
    }

    /// Values of several keys, in the order asked.
    pub async fn multi_get<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Value>>> {
        decode::values(self.call("multi_get", args([("keys", list(keys))])).await?)
    }

    /// The value of `key` with its system and user metadata.
    pub async fn get_record(&self, key_: &str) -> Result<Option<Record>> {
        let mut r = self.call("get_record", key(key_)).await?;
        if r.is_null() {
            return Ok(None);
        }
        let take = |r: &mut Json, name: &str| r.get_mut(name).map(Json::take).unwrap_or(Json::Null);
        let value = decode::value(take(&mut r, "value"))?;
        let meta = decode::metadata(take(&mut r, "meta"))?;
        let key = decode::string(take(&mut r, "key"))?;
        Ok(Some(Record { key, value, meta }))
    }

    /// The stored form of the value of `key`, as [`crate::Store::get_stored`]: its bytes
    /// cross undecoded (`payload()` reads them, `decode()` decodes), values of custom codecs
    /// included.
    pub async fn get_stored(&self, key_: &str) -> Result<Option<StoredValue>> {
        let r = self.call("get_stored", key(key_)).await?;
        if r.is_null() {
            return Ok(None);
        }
        let bytes = decode::base64(&r, "get_stored")?;
        StoredValue::from_bytes(bytes)
            .map(Some)
            .map_err(|e| Error::Protocol(format!("stored value from the server: {e}")))
    }

    /// The metadata of `key` without its value.
    pub async fn get_metadata(&self, key_: &str) -> Result<Option<Metadata>> {
        let r = self.call("get_metadata", key(key_)).await?;
        if r.is_null() {
            return Ok(None);
        }
        decode::metadata(r).map(Some)
    }

    /// Namespaces that hold at least one key, in order.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        decode::strings(self.call("namespaces", Map::new()).await?)
    }

    /// Keys matching a pattern such as `app:config.*`.
    pub async fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        decode::strings(
            self.call("keys", args([("pattern", pattern.into())]))
                .await?,
        )
    }

    /// Keys and values matching a pattern.
    pub async fn get_pattern(&self, pattern: &str) -> Result<Vec<(String, Value)>> {
        decode::pairs(
            self.call("get_pattern", args([("pattern", pattern.into())]))
                .await?,
        )
    }

    /// One page of keys under `prefix`; pass `page.next` back for the next page.
    pub async fn scan(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&Cursor>,
    ) -> Result<ScanPage> {
        let mut a = args([("prefix", prefix.into()), ("limit", limit.into())]);
        if let Some(c) = cursor {
            a.insert("cursor".into(), c.encode().into());
        }
        decode::scan_page(self.call("scan", a).await?)
    }

    /// Every key under `prefix`, as a stream of pages of up to `batch` items (see
    /// [`crate::Store::scan_stream`]): the same [`ScanStream`] type, one `scan` request per
    /// page. A page that fails (the connection broke) ends the stream with its error.
    pub fn scan_stream(&self, prefix: &str, batch: usize) -> ScanStream {
        ScanStream::remote(self.clone(), prefix.to_owned(), batch)
    }

    // ---- writes ----

    /// Creates or replaces `key`; clears any TTL.
    pub async fn put(&self, key: &str, value: impl Into<Value>) -> Result<WriteResult> {
        let value = value.into();
        let a = Args::new()
            .with("key", key)
            .with("value", &WireValue(&value));
        self.write("put", a).await
    }

    /// Creates or replaces `key`, expiring it after `ttl_ms` milliseconds.
    pub async fn put_with_ttl(
        &self,
        key: &str,
        value: impl Into<Value>,
        ttl_ms: u64,
    ) -> Result<WriteResult> {
        let value = value.into();
        let a = Args::new()
            .with("key", key)
            .with("value", &WireValue(&value))
            .with("ttl_ms", &ttl_ms);
        self.write("put", a).await
    }

    /// Writes only if `key` is at version `expected` (0 = must not exist).
    pub async fn put_if_version(
        &self,
        key_: &str,
        value: impl Into<Value>,
        expected: u64,
    ) -> Result<WriteResult> {
        let mut a = key(key_);
        a.insert("value".into(), wire(&value.into())?);
        a.insert("if_version".into(), expected.into());
        self.write("put", a).await
    }

    /// A put with every option: TTL, keep TTL, expected version, user metadata.
    pub async fn put_with(
        &self,
        key_: &str,
        value: impl Into<Value>,
        opts: &PutOptions,
    ) -> Result<WriteResult> {
        let mut a = key(key_);
        a.insert("value".into(), wire(&value.into())?);
        if let Some(ttl) = opts.ttl_ms {
            a.insert("ttl_ms".into(), ttl.into());
        }
        if let Some(at) = opts.expires_at {
            a.insert("expires_at".into(), at.as_millis().into());
        }
        if opts.keep_ttl {
            a.insert("keep_ttl".into(), true.into());
        }
        if let Some(v) = opts.if_version {
            a.insert("if_version".into(), v.into());
        }
        if let Some(m) = &opts.metadata {
            a.insert("metadata".into(), Json::Object(m.clone()));
        }
        self.write("put", a).await
    }

    /// Deletes `key`; `affected` is 0 when it did not exist.
    pub async fn delete(&self, key: &str) -> Result<WriteResult> {
        self.write("delete", Args::new().with("key", key)).await
    }

    /// Replaces the value only if it equals `expected` (`None`: only if absent).
    pub async fn compare_and_swap(
        &self,
        key_: &str,
        expected: Option<&Value>,
        new: impl Into<Value>,
    ) -> Result<WriteResult> {
        let mut a = key(key_);
        if let Some(e) = expected {
            a.insert("expected".into(), wire(e)?);
        }
        a.insert("value".into(), wire(&new.into())?);
        self.write("compare_and_swap", a).await
    }

    /// Adds `delta` to an integer (a missing key counts as 0); returns the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<(i64, WriteResult)> {
        let a = Args::new().with("key", key).with("delta", &delta);
        let r = self.call("increment", a).await?;
        let value = r
            .get("value")
            .and_then(Json::as_i64)
            .ok_or_else(|| Error::Protocol("increment value".into()))?;
        Ok((
            value,
            decode::write_result(r.get("write").unwrap_or(&Json::Null))?,
        ))
    }

    /// Appends a string to a string or bytes to bytes; returns the new length in bytes.
    pub async fn append(
        &self,
        key_: &str,
        suffix: impl Into<Value>,
    ) -> Result<(usize, WriteResult)> {
        let mut a = key(key_);
        a.insert("value".into(), wire(&suffix.into())?);
        let r = self.call("append", a).await?;
        let len = decode::u64_field(&r, "len")?;
        let len = usize::try_from(len).map_err(|_| Error::Protocol("length".into()))?;
        Ok((
            len,
            decode::write_result(r.get("write").unwrap_or(&Json::Null))?,
        ))
    }

    /// Replaces the user metadata of `key`.
    pub async fn set_metadata(
        &self,
        key_: &str,
        metadata: &Map<String, Json>,
    ) -> Result<WriteResult> {
        let mut a = key(key_);
        a.insert("metadata".into(), Json::Object(metadata.clone()));
        self.write("set_metadata", a).await
    }

    /// Puts every pair in one atomic revision.
    pub async fn multi_put<K: AsRef<str>>(&self, items: &[(K, Value)]) -> Result<WriteResult> {
        let items = items
            .iter()
            .map(|(k, v)| Ok(Json::Array(vec![k.as_ref().into(), wire(v)?])))
            .collect::<Result<Vec<Json>>>()?;
        self.write("multi_put", args([("items", Json::Array(items))]))
            .await
    }

    /// Deletes every listed key in one revision.
    pub async fn multi_delete<K: AsRef<str>>(&self, keys: &[K]) -> Result<WriteResult> {
        self.write("multi_delete", args([("keys", list(keys))]))
            .await
    }

    /// Deletes every key matching `pattern` in one revision.
    pub async fn delete_pattern(&self, pattern: &str) -> Result<WriteResult> {
        self.write("delete_pattern", args([("pattern", pattern.into())]))
            .await
    }

    // ---- TTL ----

    /// Makes `key` expire after `ttl_ms` milliseconds.
    pub async fn set_ttl(&self, key_: &str, ttl_ms: u64) -> Result<WriteResult> {
        let mut a = key(key_);
        a.insert("ttl_ms".into(), ttl_ms.into());
        self.write("set_ttl", a).await
    }

    /// Pushes the expiry of `key` later by `by_ms`.
    pub async fn extend_ttl(&self, key_: &str, by_ms: u64) -> Result<WriteResult> {
        let mut a = key(key_);
        a.insert("by_ms".into(), by_ms.into());
        self.write("extend_ttl", a).await
    }

    /// Removes the TTL of `key`.
    pub async fn remove_ttl(&self, key_: &str) -> Result<WriteResult> {
        self.write("remove_ttl", key(key_)).await
    }

    /// Removes expired keys now; returns how many.
    pub async fn cleanup_expired(&self) -> Result<u64> {
        decode::as_u64(&self.call("cleanup_expired", Map::new()).await?)
    }

    // ---- search ----

    /// Declares a full-text index now (see [`crate::Store::declare_text_index`]).
    pub async fn declare_text_index(&self, def: TextIndexDef) -> Result<()> {
        let a = args([
            ("name", def.name.into()),
            ("pattern", def.pattern.into()),
            ("fields", def.fields.into()),
            (
                "language",
                def.language
                    .map_or("none", statemesh_core::search::language_name)
                    .into(),
            ),
        ]);
        self.call("declare_text_index", a).await.map(|_| ())
    }

    /// Declares an exact-value index now.
    pub async fn declare_value_index(&self, def: ValueIndexDef) -> Result<()> {
        let a = args([
            ("name", def.name.into()),
            ("pattern", def.pattern.into()),
            ("fields", def.fields.into()),
        ]);
        self.call("declare_value_index", a).await.map(|_| ())
    }

    /// Declares a vector index now.
    pub async fn declare_vector_index(&self, def: VectorIndexDef) -> Result<()> {
        let metric = statemesh_core::search::metric_name(def.spec.metric);
        let mut a = args([
            ("name", def.name.into()),
            ("pattern", def.pattern.into()),
            ("dimension", def.spec.dimension.into()),
            ("metric", metric.into()),
        ]);
        if let Some(field) = def.field {
            a.insert("field".into(), field.into());
        }
        self.call("declare_vector_index", a).await.map(|_| ())
    }

    /// Removes an index; false when there is none by that name.
    pub async fn drop_index(&self, name: &str) -> Result<bool> {
        decode::as_bool(
            &self
                .call("drop_index", args([("name", name.into())]))
                .await?,
        )
    }

    /// Sizes of the index `name`.
    pub async fn index_stats(&self, name: &str) -> Result<Option<IndexStats>> {
        let r = self
            .call("index_stats", args([("name", name.into())]))
            .await?;
        if r.is_null() {
            return Ok(None);
        }
        let entries = usize::try_from(decode::u64_field(&r, "entries")?)
            .map_err(|_| Error::Protocol("entries".into()))?;
        Ok(Some(IndexStats {
            entries,
            skipped: decode::u64_field(&r, "skipped")?,
        }))
    }

    /// How the index `name` was built on the server (see [`crate::Store::index_origin`]).
    pub async fn index_origin(&self, name: &str) -> Result<Option<IndexOrigin>> {
        let r = self
            .call("index_origin", args([("name", name.into())]))
            .await?;
        if r.is_null() {
            return Ok(None);
        }
        let flag = |field: &str| {
            r.get(field)
                .and_then(Json::as_bool)
                .ok_or_else(|| Error::Protocol(format!("index_origin: {field}")))
        };
        Ok(Some(IndexOrigin {
            restored_from_image: flag("restored_from_image")?,
            backfilled: decode::u64_field(&r, "backfilled")?,
            rebuilt_from_image_vectors: flag("rebuilt_from_image_vectors")?,
        }))
    }

    /// Sets how hard vector index `index` searches (see
    /// [`crate::Store::set_vector_search_effort`]); async, unlike the store's.
    pub async fn set_vector_search_effort(&self, index: &str, effort: usize) -> Result<()> {
        let a = args([("index", index.into()), ("effort", effort.into())]);
        self.call("set_vector_search_effort", a).await.map(|_| ())
    }

    /// The best `limit` keys for `query` in text index `index`.
    pub async fn search_text(
        &self,
        index: &str,
        query: &str,
        filter: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TextHit>> {
        let a = args([
            ("index", index.into()),
            ("query", query.into()),
            ("filter", filter.into()),
            ("limit", limit.into()),
        ]);
        decode::text_hits(self.call("search_text", a).await?)
    }

    /// Keys whose `field` (or whole value) equals `value`, in key order.
    pub async fn search_by_value(
        &self,
        index: &str,
        field: Option<&str>,
        value: &Json,
        filter: Option<&str>,
    ) -> Result<Vec<String>> {
        let a = args([
            ("index", index.into()),
            ("field", field.into()),
            ("value", value.clone()),
            ("filter", filter.into()),
        ]);
        decode::strings(self.call("search_by_value", a).await?)
    }

    /// The `top_k` keys nearest to `vector` in vector index `index`.
    pub async fn vector_search(
        &self,
        index: &str,
        vector: &[f32],
        top_k: usize,
        filter: Option<&str>,
    ) -> Result<Vec<VectorHit>> {
        let a = args([
            ("index", index.into()),
            ("vector", vector.to_vec().into()),
            ("top_k", top_k.into()),
            ("filter", filter.into()),
        ]);
        decode::vector_hits(self.call("vector_search", a).await?)
    }

    /// Stores `vector` as the value of `key` for vector index `index`.
    pub async fn add_vector(&self, index: &str, key_: &str, vector: &[f32]) -> Result<WriteResult> {
        let a = args([
            ("index", index.into()),
            ("key", key_.into()),
            ("vector", vector.to_vec().into()),
        ]);
        self.write("add_vector", a).await
    }
}
