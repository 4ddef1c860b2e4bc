//! The storage conformance suite and the one-opener rule, against real IndexedDB in headless
//! Chromium: `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p statemesh-indexeddb
//! --target wasm32-unknown-unknown` with `wasm-bindgen-test-runner` as the wasm32 runner.
#![cfg(target_family = "wasm")]

use statemesh_conformance::{Reopen, run_all};
use statemesh_core::{LogBytes, Storage, StorageError};
use statemesh_indexeddb::{IdbOptions, IdbStorage};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let set_timeout = js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        if let Some(set_timeout) = set_timeout {
            let _ = set_timeout.call2(&JsValue::UNDEFINED, &resolve, &ms.into());
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// A database name no earlier run used.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        js_sys::Date::now(),
        js_sys::Math::random()
    )
}

struct Idb {
    prefix: String,
    n: u32,
    options: IdbOptions,
}

impl Reopen for Idb {
    type S = IdbStorage;
    async fn open(&mut self, fresh: bool) -> Result<IdbStorage, StorageError> {
        if fresh {
            self.n += 1;
        }
        IdbStorage::open(&format!("{}-{}", self.prefix, self.n), self.options).await
    }
}

fn report(failures: Vec<statemesh_conformance::Failure>) {
    let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(
        report.is_empty(),
        "IdbStorage fails the storage contract:\n{}",
        report.join("\n")
    );
}

#[wasm_bindgen_test]
async fn indexeddb_storage_conforms_strict() {
    let mut adapter = Idb {
        prefix: unique("conformance-strict"),
        n: 0,
        options: IdbOptions::default(),
    };
    report(run_all(&mut adapter).await);
}

#[wasm_bindgen_test]
async fn indexeddb_storage_conforms_relaxed() {
    let mut adapter = Idb {
        prefix: unique("conformance-relaxed"),
        n: 0,
        options: IdbOptions::default().relaxed(true),
    };
    report(run_all(&mut adapter).await);
}

#[wasm_bindgen_test]
async fn a_second_opener_gets_locked_until_the_first_is_dropped() {
    let name = unique("lock");
    let mut first = IdbStorage::open(&name, IdbOptions::default())
        .await
        .expect("first open");
    first.load().await.expect("load");
    first
        .append(&[LogBytes {
            revision: 1,
            bytes: b"one".to_vec(),
        }])
        .await
        .expect("append");
    for wait in [0, 100] {
        let started = js_sys::Date::now();
        match IdbStorage::open(&name, IdbOptions::default().lock_wait_ms(wait)).await {
            Err(StorageError::Locked { path }) => assert!(path.contains(&name), "{path}"),
            other => panic!("expected Locked, got {other:?}"),
        }
        let waited = js_sys::Date::now() - started;
        assert!(
            waited >= f64::from(wait),
            "gave up after {waited} ms, not {wait}"
        );
    }
    // The lock is released asynchronously after the drop: the default wait covers it.
    drop(first);
    let mut second = IdbStorage::open(&name, IdbOptions::default())
        .await
        .expect("open after the first is dropped");
    let got = second.load().await.expect("load");
    assert_eq!(got.records.len(), 1);
    assert_eq!(got.records[0].bytes, b"one");
}

/// What a reloaded page meets: the old holder lets go while the new opener is already waiting.
#[wasm_bindgen_test]
async fn a_waiting_opener_gets_the_store_when_the_holder_lets_go() {
    let name = unique("lock-wait");
    let first = IdbStorage::open(&name, IdbOptions::default())
        .await
        .expect("first open");
    wasm_bindgen_futures::spawn_local(async move {
        sleep(200).await;
        drop(first);
    });
    let started = js_sys::Date::now();
    let mut second = IdbStorage::open(&name, IdbOptions::default().lock_wait_ms(10_000))
        .await
        .expect("the waiting open gets the lock");
    let waited = js_sys::Date::now() - started;
    assert!(
        waited >= 150.0,
        "opened after {waited} ms, while the first still held it"
    );
    second.load().await.expect("load");
}

#[wasm_bindgen_test]
async fn writes_before_load_and_backwards_revisions_are_refused_without_poisoning() {
    let name = unique("contract");
    let mut s = IdbStorage::open(&name, IdbOptions::default())
        .await
        .expect("open");
    let one = LogBytes {
        revision: 1,
        bytes: vec![1],
    };
    assert!(matches!(
        s.append(std::slice::from_ref(&one)).await,
        Err(StorageError::Invalid { .. })
    ));
    s.load().await.expect("load");
    s.append(std::slice::from_ref(&one)).await.expect("append");
    assert!(matches!(
        s.append(std::slice::from_ref(&one)).await,
        Err(StorageError::Invalid { .. })
    ));
    s.append(&[LogBytes {
        revision: 2,
        bytes: vec![2],
    }])
    .await
    .expect("still writable");
}

// ---- index images: tampering, damage, and databases created before images existed ----

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
// Replaces the value under `key` in object store `store` by what `change(old)` returns.
export async function tamper(name, store, key, change) {
  const db = await req(indexedDB.open(name));
  try {
    const read = db.transaction(store, 'readonly');
    const old = await req(read.objectStore(store).get(key));
    const tx = db.transaction(store, 'readwrite');
    tx.objectStore(store).put(change(old), key);
    await done(tx);
  } finally {
    db.close();
  }
}
// Creates a database as version 1 of the adapter did (stores `log` and `meta`, no `images`)
// holding the given log records (revision i + 1 = records[i]).
export async function createVersion1(name, records) {
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    open.result.createObjectStore('log');
    open.result.createObjectStore('meta');
  };
  const db = await req(open);
  try {
    const tx = db.transaction('log', 'readwrite');
    records.forEach((r, i) => tx.objectStore('log').put(r, i + 1));
    await done(tx);
  } finally {
    db.close();
  }
}
// The value stored under `key` in object store `store`.
export async function stored(name, store, key) {
  const db = await req(indexedDB.open(name));
  try {
    return await req(db.transaction(store, 'readonly').objectStore(store).get(key));
  } finally {
    db.close();
  }
}
export async function version(name) {
  const db = await req(indexedDB.open(name));
  const v = db.version;
  const stores = Array.from(db.objectStoreNames);
  db.close();
  return { version: v, stores };
}
"#)]
extern "C" {
    async fn tamper(name: &str, store: &str, key: JsValue, change: &js_sys::Function);
    #[wasm_bindgen(js_name = createVersion1)]
    async fn create_version_1(name: &str, records: js_sys::Array);
    async fn version(name: &str) -> JsValue;
    async fn stored(name: &str, store: &str, key: JsValue) -> JsValue;
}

fn sample_images(tag: u8) -> Vec<statemesh_core::IndexImage> {
    vec![
        statemesh_core::IndexImage {
            name: "text".into(),
            bytes: (0..5000u32).map(|i| (i % 251) as u8 ^ tag).collect(),
        },
        statemesh_core::IndexImage {
            name: "vector".into(),
            bytes: vec![tag; 40],
        },
    ]
}

/// A database with records 1..=4, a snapshot at 3 and images for it; returns its name.
async fn with_images() -> String {
    let name = unique("images");
    let mut s = IdbStorage::open(&name, IdbOptions::default())
        .await
        .expect("open");
    assert!(s.supports_index_images());
    s.load().await.expect("load");
    let records: Vec<LogBytes> = (1..=4)
        .map(|revision| LogBytes {
            revision,
            bytes: vec![revision as u8],
        })
        .collect();
    s.append(&records).await.expect("append");
    s.write_snapshot(3, b"snap").await.expect("snapshot");
    s.write_index_images(3, &sample_images(7))
        .await
        .expect("images");
    drop(s);
    name
}

async fn reload_images(name: &str) -> Result<Vec<statemesh_core::IndexImage>, StorageError> {
    let mut s = IdbStorage::open(name, IdbOptions::default())
        .await
        .expect("reopen");
    s.load().await.expect("load");
    s.load_index_images().await
}

#[wasm_bindgen_test]
async fn stored_images_come_back_and_tampered_ones_are_refused() {
    let name = with_images().await;
    assert_eq!(
        reload_images(&name).await.expect("images"),
        sample_images(7)
    );

    // One bit flipped anywhere in the stored bytes: refused as corrupt, never a wrong image.
    for at in [0u32, 9, 17, 30, 35, 40, 45, 300, 5100] {
        let name = with_images().await;
        let flip = Closure::<dyn Fn(js_sys::Uint8Array) -> js_sys::Uint8Array>::new(
            move |b: js_sys::Uint8Array| {
                let at = at.min(b.length() - 1);
                b.set_index(at, b.get_index(at) ^ 0x10);
                b
            },
        );
        tamper(&name, "images", 3.into(), flip.as_ref().unchecked_ref()).await;
        match reload_images(&name).await {
            Err(StorageError::Corrupt { .. } | StorageError::Unsupported { .. }) => {}
            other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
        }
    }
    // Truncated, replaced by something that is not bytes, moved to another revision.
    let cut = Closure::<dyn Fn(js_sys::Uint8Array) -> js_sys::Uint8Array>::new(
        |b: js_sys::Uint8Array| b.subarray(0, b.length() - 1),
    );
    let name = with_images().await;
    tamper(&name, "images", 3.into(), cut.as_ref().unchecked_ref()).await;
    assert!(matches!(
        reload_images(&name).await,
        Err(StorageError::Corrupt { .. })
    ));
    let text = Closure::<dyn Fn(JsValue) -> JsValue>::new(|_| JsValue::from_str("not bytes"));
    let name = with_images().await;
    tamper(&name, "images", 3.into(), text.as_ref().unchecked_ref()).await;
    assert!(matches!(
        reload_images(&name).await,
        Err(StorageError::Corrupt { .. })
    ));
}

#[wasm_bindgen_test]
async fn a_new_snapshot_drops_the_images_of_the_old_one() {
    let name = with_images().await;
    let mut s = IdbStorage::open(&name, IdbOptions::default())
        .await
        .expect("reopen");
    s.load().await.expect("load");
    // A crash between the snapshot and its images: the old images must not come back.
    s.write_snapshot(4, b"snap 4").await.expect("snapshot");
    drop(s);
    assert_eq!(reload_images(&name).await.expect("images"), Vec::new());
    // Images of a revision other than the snapshot's are refused, without poisoning.
    let mut s = IdbStorage::open(&name, IdbOptions::default())
        .await
        .expect("reopen");
    s.load().await.expect("load");
    assert!(matches!(
        s.write_index_images(3, &sample_images(1)).await,
        Err(StorageError::Invalid { .. })
    ));
    s.write_index_images(4, &sample_images(2))
        .await
        .expect("images at 4");
    s.append(&[LogBytes {
        revision: 5,
        bytes: vec![5],
    }])
    .await
    .expect("still writable");
    drop(s);
    assert_eq!(
        reload_images(&name).await.expect("images"),
        sample_images(2)
    );
}

#[wasm_bindgen_test]
async fn a_version_1_database_without_an_image_store_opens_and_gains_one() {
    let name = unique("v1");
    let records = js_sys::Array::new();
    for r in 1..=3u8 {
        records.push(&js_sys::Uint8Array::from(&[r, r][..]));
    }
    create_version_1(&name, records).await;
    let mut s = IdbStorage::open(&name, IdbOptions::default())
        .await
        .expect("open a version 1 database");
    let got = s.load().await.expect("load");
    assert_eq!(
        got.records.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(got.records[2].bytes, vec![3, 3]);
    assert_eq!(s.load_index_images().await.expect("no images"), Vec::new());
    s.write_snapshot(3, b"snap").await.expect("snapshot");
    s.write_index_images(3, &sample_images(3))
        .await
        .expect("images");
    drop(s);
    assert_eq!(
        reload_images(&name).await.expect("images"),
        sample_images(3)
    );
    let v = version(&name).await;
    assert_eq!(
        js_sys::Reflect::get(&v, &"version".into())
            .ok()
            .and_then(|v| v.as_f64()),
        Some(2.0)
    );
}

// ---- the stored bytes of an image set are pinned ----

/// The fixture also pinned by core's and the file adapter's tests: both adapters store the same bytes.
#[path = "../../../core/tests/fixtures/image_set_fixture.rs"]
mod fixture;

/// A database with records 1..=6, a snapshot at 5 and the fixture's images; returns its name.
async fn with_fixture_images() -> String {
    let name = unique("pinned");
    let mut s = IdbStorage::open(&name, IdbOptions::default())
        .await
        .expect("open");
    s.load().await.expect("load");
    let records: Vec<LogBytes> = (1..=6)
        .map(|revision| LogBytes {
            revision,
            bytes: vec![revision as u8],
        })
        .collect();
    s.append(&records).await.expect("append");
    s.write_snapshot(5, b"snap").await.expect("snapshot");
    s.write_index_images(5, &fixture::images())
        .await
        .expect("images");
    drop(s);
    name
}

#[wasm_bindgen_test]
async fn an_image_set_is_stored_with_the_pinned_bytes() {
    let name = with_fixture_images().await;
    let value = stored(&name, "images", 5.into()).await;
    let bytes = value
        .dyn_ref::<js_sys::Uint8Array>()
        .expect("stored as a Uint8Array")
        .to_vec();
    assert_eq!(bytes, fixture::bytes());
}

#[wasm_bindgen_test]
async fn an_image_set_with_the_pinned_bytes_loads() {
    let name = with_fixture_images().await;
    // Replace what this build wrote by the fixture, as a database of an earlier build holds it.
    let fixture = Closure::<dyn Fn(JsValue) -> JsValue>::new(|_| {
        js_sys::Uint8Array::from(fixture::bytes().as_slice()).into()
    });
    tamper(&name, "images", 5.into(), fixture.as_ref().unchecked_ref()).await;
    assert_eq!(
        reload_images(&name).await.expect("images"),
        fixture::images()
    );
}
