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

/// Opens `name`, waiting out the lock of a handle that was just dropped (a Web Lock is released
/// asynchronously).
async fn open_after_drop(name: &str, options: IdbOptions) -> Result<IdbStorage, StorageError> {
    for _ in 0..200 {
        match IdbStorage::open(name, options).await {
            Err(StorageError::Locked { .. }) => sleep(5).await,
            other => return other,
        }
    }
    IdbStorage::open(name, options).await
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
        open_after_drop(&format!("{}-{}", self.prefix, self.n), self.options).await
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
    match IdbStorage::open(&name, IdbOptions::default()).await {
        Err(StorageError::Locked { path }) => assert!(path.contains(&name), "{path}"),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    let mut second = open_after_drop(&name, IdbOptions::default())
        .await
        .expect("open after the first is dropped");
    let got = second.load().await.expect("load");
    assert_eq!(got.records.len(), 1);
    assert_eq!(got.records[0].bytes, b"one");
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
