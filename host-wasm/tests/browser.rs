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

/// Opens again once the previous handle's Web Lock is released (that happens asynchronously).
async fn reopen(name: &str) -> Store {
    for _ in 0..200 {
        match Store::open_with(options(name)).await {
            Ok(store) => return store,
            Err(e) if e.code() == "STORE_LOCKED" => {
                let wait = js_sys::Promise::new(&mut |resolve, _| {
                    let _ = resolve.call0(&JsValue::UNDEFINED);
                });
                let _ = JsFuture::from(wait).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
    panic!("the lock was never released");
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

    let second = Store::open_with(options(&name)).await;
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
