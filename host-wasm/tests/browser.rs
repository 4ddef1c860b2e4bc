//! The store on IndexedDB in headless Chromium: data survives closing and reopening, a second
//! opener is refused, writes committed in one flush come back whole.
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p statemesh-wasm --target wasm32-unknown-unknown`
//! with `wasm-bindgen-test-runner` as the wasm32 runner.
#![cfg(target_family = "wasm")]

use statemesh_wasm::Store;
use statemesh_wasm::types::OpenOptions;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

async fn js(p: js_sys::Promise) -> JsValue {
    JsFuture::from(p).await.expect("promise resolves")
}

fn code(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &"code".into())
        .ok()
        .and_then(|c| c.as_string())
        .unwrap_or_default()
}

fn options(name: &str) -> OpenOptions {
    OpenOptions {
        indexed_db: Some(name.to_owned()),
        ..OpenOptions::default()
    }
}

/// Opens again after a close. The previous handle's Web Lock is released asynchronously; the
/// open's default lock wait covers that.
async fn reopen(name: &str) -> Store {
    Store::open_with(options(name)).await.expect("reopen")
}

#[wasm_bindgen_test]
async fn a_store_on_indexeddb_survives_close_and_reopen() {
    let name = format!("store-{}-{}", js_sys::Date::now(), js_sys::Math::random());
    let store = Store::open_with(options(&name)).await.expect("open");
    js(store.put("chat:c1.m1".into(), "hello".into(), None)).await;
    let entries = js_sys::Array::new();
    for i in 0..50 {
        entries.push(&js_sys::Array::of2(
            &format!("chat:c1.n{i:02}").into(),
            &(i as f64).into(),
        ));
    }
    js(store.multi_put(entries.into())).await;
    js(store.increment("stats:n".into(), Some(5.0))).await;

    let second = Store::open_with(OpenOptions {
        lock_wait_ms: Some(50),
        ..options(&name)
    })
    .await;
    assert_eq!(second.err().map(|e| e.code()), Some("STORE_LOCKED"));

    js(store.close()).await;
    let store = reopen(&name).await;
    assert_eq!(
        js(store.get("chat:c1.m1".into()))
            .await
            .as_string()
            .as_deref(),
        Some("hello")
    );
    assert_eq!(js(store.get("stats:n".into())).await.as_f64(), Some(5.0));
    let keys: js_sys::Array = js(store.keys("chat:c1.n*".into())).await.into();
    assert_eq!(keys.length(), 50);
    assert_eq!(store.revision(), 3.0);

    // After a checkpoint the log is replaced by a snapshot; reopening still sees everything.
    js(store.checkpoint()).await;
    js(store.put("chat:c1.m2".into(), "after".into(), None)).await;
    js(store.close()).await;
    let store = reopen(&name).await;
    assert_eq!(
        js(store.get("chat:c1.m2".into()))
            .await
            .as_string()
            .as_deref(),
        Some("after")
    );
    assert_eq!(
        js(store.get("chat:c1.n49".into())).await.as_f64(),
        Some(49.0)
    );
    js(store.close()).await;
    let closed = JsFuture::from(store.get("chat:c1.m2".into())).await;
    assert_eq!(closed.err().map(|e| code(&e)).as_deref(), Some("CLOSED"));
}

// ---- index images on IndexedDB ----

use statemesh_wasm::search::{
    IndexDeclaration, TextIndexOptions, ValueIndexOptions, VectorIndexOptions,
};

#[wasm_bindgen(inline_js = r#"
function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}
// Flips one bit near the end of every stored image set; resolves to how many there were.
export async function damageImages(name) {
  const db = await req(indexedDB.open(name));
  try {
    const tx = db.transaction('images', 'readwrite');
    const store = tx.objectStore('images');
    const keys = await req(store.getAllKeys());
    for (const key of keys) {
      const bytes = await req(store.get(key));
      bytes[bytes.length - 3] ^= 0x08;
      await req(store.put(bytes, key));
    }
    await done(tx);
    return keys.length;
  } finally {
    db.close();
  }
}
// Copies database `from` into a new database `to` laid out as version 1 of the adapter was
// (object stores `log` and `meta` only).
export async function copyAsVersion1(from, to) {
  const src = await req(indexedDB.open(from));
  let keys, values, meta;
  try {
    const tx = src.transaction(['log', 'meta'], 'readonly');
    keys = req(tx.objectStore('log').getAllKeys());
    values = req(tx.objectStore('log').getAll());
    meta = req(tx.objectStore('meta').get('snapshot'));
    [keys, values, meta] = await Promise.all([keys, values, meta]);
  } finally {
    src.close();
  }
  const open = indexedDB.open(to, 1);
  open.onupgradeneeded = () => {
    open.result.createObjectStore('log');
    open.result.createObjectStore('meta');
  };
  const db = await req(open);
  try {
    const tx = db.transaction(['log', 'meta'], 'readwrite');
    keys.forEach((k, i) => tx.objectStore('log').put(values[i], k));
    if (meta) tx.objectStore('meta').put(meta, 'snapshot');
    await done(tx);
    return db.version;
  } finally {
    db.close();
  }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = damageImages)]
    async fn damage_images(name: &str) -> JsValue;
    #[wasm_bindgen(js_name = copyAsVersion1)]
    async fn copy_as_version_1(from: &str, to: &str) -> JsValue;
}

fn declarations() -> Vec<IndexDeclaration> {
    vec![
        IndexDeclaration::Text(TextIndexOptions {
            name: "notes".into(),
            pattern: "notes:*".into(),
            fields: Some(vec!["title".into(), "body".into()]),
            language: None,
        }),
        IndexDeclaration::Value(ValueIndexOptions {
            name: "by_tag".into(),
            pattern: "notes:*".into(),
            fields: Some(vec!["tag".into()]),
        }),
        IndexDeclaration::Vector(VectorIndexOptions {
            name: "emb".into(),
            pattern: "notes:*".into(),
            dimension: 3,
            metric: "l2".into(),
            field: Some("v".into()),
        }),
    ]
}

fn indexed(name: &str) -> OpenOptions {
    OpenOptions {
        indexes: Some(declarations()),
        ..options(name)
    }
}

/// Opens with the indexes declared (the default lock wait covers the previous handle's release).
async fn reopen_indexed(name: &str) -> Store {
    Store::open_with(indexed(name)).await.expect("reopen")
}

fn json(text: &str) -> JsValue {
    js_sys::JSON::parse(text).expect("test JSON")
}

fn note(i: u32, extra: &str) -> JsValue {
    let body = if i % 2 == 1 {
        "storage engines"
    } else {
        "cooking rice"
    };
    let tag = if i.is_multiple_of(3) {
        "three"
    } else {
        "other"
    };
    json(&format!(
        r#"{{"title":"note {i} {extra}","body":"{body}","tag":"{tag}","v":[{i},{},1]}}"#,
        i * 2
    ))
}

/// 30 notes, a checkpoint, then a new note, a changed one and a deleted one after it.
async fn populate(name: &str) {
    let store = Store::open_with(indexed(name)).await.expect("open");
    for i in 0..30 {
        js(store.put(format!("notes:n{i}"), note(i, ""), None)).await;
    }
    js(store.checkpoint()).await;
    js(store.put(
        "notes:late".into(),
        json(r#"{"title":"zeppelin arrives late","body":"storage","tag":"three","v":[100,200,1]}"#),
        None,
    ))
    .await;
    js(store.put("notes:n4".into(), note(4, "zeppelin"), None)).await;
    js(store.delete("notes:n3".into())).await;
    js(store.close()).await;
}

fn field(v: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(v, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

fn keys_of(hits: JsValue) -> Vec<String> {
    let mut keys: Vec<String> = js_sys::Array::from(&hits)
        .iter()
        .map(|h| {
            if h.is_string() {
                h.as_string().unwrap_or_default()
            } else {
                field(&h, "key").as_string().unwrap_or_default()
            }
        })
        .collect();
    keys.sort();
    keys
}

/// How each index was built at open: (restored from image, keys backfilled).
async fn origins(store: &Store) -> Vec<(bool, f64)> {
    let mut out = Vec::new();
    for name in ["notes", "by_tag", "emb"] {
        let stats = js(store.index_stats(name.into())).await;
        out.push((
            field(&stats, "restoredFromImage")
                .as_bool()
                .unwrap_or(false),
            field(&stats, "backfilled").as_f64().unwrap_or(-1.0),
        ));
    }
    out
}

async fn expect_searches(store: &Store) {
    let limit = json(r#"{"limit":100}"#);
    let text = keys_of(
        js(store.search_text(
            "notes".into(),
            "zeppelin".into(),
            Some(limit.clone().unchecked_into()),
        ))
        .await,
    );
    assert_eq!(text, ["notes:late", "notes:n4"]);
    let storage = keys_of(
        js(store.search_text(
            "notes".into(),
            "storage".into(),
            Some(limit.unchecked_into()),
        ))
        .await,
    );
    assert_eq!(storage.len(), 15, "{storage:?}");
    assert!(!storage.contains(&"notes:n3".to_owned()), "a deleted key");
    let three = keys_of(
        js(store.search_by_value(
            "by_tag".into(),
            "three".into(),
            Some(json(r#"{"field":"tag"}"#).unchecked_into()),
        ))
        .await,
    );
    assert_eq!(three.len(), 10, "{three:?}");
    assert!(three.contains(&"notes:late".to_owned()) && !three.contains(&"notes:n3".to_owned()));
    let near = js(store.vector_search(
        "emb".into(),
        json("[3.1, 6.2, 1]"),
        Some(json(r#"{"topK":3}"#).unchecked_into()),
    ))
    .await;
    let near: Vec<String> = js_sys::Array::from(&near)
        .iter()
        .map(|h| field(&h, "key").as_string().unwrap_or_default())
        .collect();
    assert_eq!(near, ["notes:n4", "notes:n2", "notes:n5"]);
    let stats = js(store.index_stats("emb".into())).await;
    assert_eq!(field(&stats, "entries").as_f64(), Some(30.0));
}

#[wasm_bindgen_test]
async fn indexes_come_back_from_their_image_on_indexeddb() {
    let name = format!("images-{}-{}", js_sys::Date::now(), js_sys::Math::random());
    populate(&name).await;
    let store = reopen_indexed(&name).await;
    assert_eq!(origins(&store).await, vec![(true, 0.0); 3]);
    expect_searches(&store).await;
    js(store.close()).await;

    // Damage the stored images: the indexes are rebuilt, with the same results.
    assert_eq!(damage_images(&name).await.as_f64(), Some(1.0));
    let store = reopen_indexed(&name).await;
    assert!(
        origins(&store)
            .await
            .iter()
            .all(|(restored, backfilled)| !restored && *backfilled >= 29.0),
        "{:?}",
        origins(&store).await
    );
    expect_searches(&store).await;
    // A checkpoint stores fresh images; the next open uses them again.
    js(store.checkpoint()).await;
    js(store.close()).await;
    let store = reopen_indexed(&name).await;
    assert_eq!(origins(&store).await, vec![(true, 0.0); 3]);
    expect_searches(&store).await;
    js(store.close()).await;
}

#[wasm_bindgen_test]
async fn a_database_from_before_images_opens_and_then_keeps_images() {
    let stamp = format!("{}-{}", js_sys::Date::now(), js_sys::Math::random());
    let (old, copy) = (format!("v1-src-{stamp}"), format!("v1-{stamp}"));
    populate(&old).await;
    assert_eq!(copy_as_version_1(&old, &copy).await.as_f64(), Some(1.0));
    let store = reopen_indexed(&copy).await;
    assert!(
        origins(&store).await.iter().all(|(restored, _)| !restored),
        "a version 1 database holds no images"
    );
    expect_searches(&store).await;
    js(store.checkpoint()).await;
    js(store.close()).await;
    let store = reopen_indexed(&copy).await;
    assert_eq!(origins(&store).await, vec![(true, 0.0); 3]);
    expect_searches(&store).await;
    js(store.close()).await;
}
