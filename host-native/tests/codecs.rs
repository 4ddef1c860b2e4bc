//! Value codecs on the native store: built-in codecs, the geo.point wasm plugin and hostile
//! plugins. A refused write changes nothing, and the store keeps serving reads and writes and
//! loses nothing across a reopen.
#![allow(clippy::unwrap_used)]

#[path = "../../adapters/wasmtime/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use statemesh::core::codec::{JsonCodec, MessagePackCodec, PostcardCodec, RawCodec};
use statemesh::{CodecError, EngineError, Error, MemoryStorage, Store, Value};
use statemesh_wasmtime::{PluginHost, PluginLimits};

fn custom(codec: &str, data: &[u8]) -> Value {
    Value::Custom {
        codec: codec.into(),
        data: data.to_vec(),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Turn {
    role: String,
    text: String,
}

#[tokio::test]
async fn built_in_codecs_encode_validate_and_render() {
    let store = Store::builder()
        .codec("docs:**", Arc::new(JsonCodec))
        .codec("mp:**", Arc::new(MessagePackCodec))
        .codec("chat:**", Arc::new(PostcardCodec::<Turn>::new("turn")))
        .codec("raw:**", Arc::new(RawCodec))
        .open_in_memory()
        .await
        .unwrap();
    store
        .put_custom("docs:a", br#"{"title": "Hello", "n": 1}"#)
        .await
        .unwrap();
    store
        .put_custom("mp:a", br#"{"title": "packed"}"#)
        .await
        .unwrap();
    store
        .put_custom(
            "chat:c1.t1",
            br#"{"role": "user", "text": "find the cafe"}"#,
        )
        .await
        .unwrap();
    store.put_custom("raw:a", b"plain words").await.unwrap();
    assert_eq!(
        store.get_decoded("docs:a").await.unwrap().unwrap(),
        br#"{"n":1,"title":"Hello"}"#
    );
    let turn = store.get("chat:c1.t1").await.unwrap().unwrap();
    assert_eq!(
        store.to_text(&turn).unwrap().as_deref(),
        Some("user find the cafe")
    );
    assert_eq!(
        store
            .to_json(&store.get("mp:a").await.unwrap().unwrap())
            .unwrap(),
        Some(serde_json::json!({"title": "packed"}))
    );
    assert_eq!(
        store
            .to_text(&store.get("raw:a").await.unwrap().unwrap())
            .unwrap()
            .as_deref(),
        Some("plain words")
    );
    // Invalid stored bytes and invalid input are refused.
    let rev = store.revision();
    assert!(matches!(
        store.put("mp:b", custom("msgpack", &[0xc1])).await,
        Err(Error::Engine(EngineError::Codec { .. }))
    ));
    assert!(matches!(
        store.put_custom("chat:c1.t2", br#"{"role": 3}"#).await,
        Err(Error::Engine(EngineError::Codec {
            error: CodecError::Rejected { .. },
            ..
        }))
    ));
    assert!(matches!(
        store.put("docs:b", custom("msgpack", &[0x90])).await,
        Err(Error::Engine(EngineError::CodecMismatch { .. }))
    ));
    assert!(matches!(
        store.put_custom("nocodec:a", b"{}").await,
        Err(Error::NoCodec { key }) if key == "nocodec:a"
    ));
    assert_eq!(store.revision(), rev);
    assert!(store.codec("turn").unwrap().is_some());
    assert!(store.codec_for_key("docs:x.y").unwrap().is_some());
    // A bad pattern fails the open.
    assert!(
        Store::builder()
            .codec("docs:[", Arc::new(JsonCodec))
            .open_in_memory()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn strict_stores_refuse_unknown_codecs() {
    let store = Store::builder()
        .strict_codecs(true)
        .open_in_memory()
        .await
        .unwrap();
    assert!(matches!(
        store.put("a:b", custom("geo.point", b"x")).await,
        Err(Error::Engine(EngineError::UnknownCodec { .. }))
    ));
    let lax = Store::in_memory().await.unwrap();
    lax.put("a:b", custom("geo.point", b"x")).await.unwrap();
}

#[tokio::test]
async fn geo_point_plugin_on_a_durable_store() {
    let Some(path) = common::guest("geo_point") else {
        return;
    };
    let host = PluginHost::new().unwrap();
    let geo = Arc::new(host.load_file(&path, PluginLimits::default()).unwrap());
    let disk = MemoryStorage::new();
    let store = Store::builder()
        .codec("places:**", geo.clone())
        .open_with_storage(disk.clone())
        .await
        .unwrap();
    store
        .put_custom("places:berlin", b"52.52,13.405,Berlin Mitte")
        .await
        .unwrap();
    store
        .put_custom("places:paris", b"48.8566,2.3522,Paris")
        .await
        .unwrap();
    let err = store
        .put_custom("places:bad", b"123,0,Nowhere")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("latitude"), "{err}");
    let value = store.get("places:berlin").await.unwrap().unwrap();
    assert_eq!(
        store.to_text(&value).unwrap().as_deref(),
        Some("Berlin Mitte 52.52 13.405")
    );
    assert_eq!(
        store.to_json(&value).unwrap().unwrap()["label"],
        "Berlin Mitte"
    );
    let snapshot = store.snapshot().await.unwrap();
    store.close().await;
    // Reopening replays stored bytes; it needs no codec (and calls none).
    let reopened = Store::builder()
        .open_with_storage(disk.clone())
        .await
        .unwrap();
    assert_eq!(reopened.snapshot().await.unwrap(), snapshot);
    assert_eq!(
        reopened.get("places:paris").await.unwrap(),
        store_value(&geo, b"48.8566,2.3522,Paris")
    );
    // Without the codec the helpers say so clearly.
    assert!(matches!(
        reopened.decode_custom(&value),
        Err(Error::Engine(EngineError::UnknownCodec { .. }))
    ));
}

fn store_value(geo: &statemesh_wasmtime::WasmCodec, input: &[u8]) -> Option<Value> {
    use statemesh::ValueCodec;
    Some(custom("geo.point", &geo.encode(input).unwrap()))
}

#[tokio::test]
async fn hostile_plugins_cannot_hurt_a_durable_store() {
    let host = PluginHost::new().unwrap();
    let limits = PluginLimits::default()
        .fuel(1_000_000)
        .memory_bytes(4 << 20)
        .output_bytes(64 << 10);
    let disk = MemoryStorage::new();
    let mut builder = Store::builder();
    let names = ["loop", "grow", "badptr", "trap", "huge", "badstatus"];
    for name in names {
        let codec = Arc::new(host.load(&common::corpus_module(name), limits).unwrap());
        builder = builder.codec(&format!("{name}:**"), codec);
    }
    let store = builder.open_with_storage(disk.clone()).await.unwrap();
    store.put("app:kept", "safe").await.unwrap();
    for name in names {
        // Validation behaves in the corpus, so values can be stored; encode is hostile.
        store
            .put(&format!("{name}:k"), custom(&format!("wat.{name}"), b"v"))
            .await
            .unwrap();
        let rev = store.revision();
        let err = store
            .put_custom(&format!("{name}:x"), b"input")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Engine(EngineError::Codec { .. })),
            "{name}: {err}"
        );
        assert_eq!(store.revision(), rev);
        assert_eq!(
            store.get("app:kept").await.unwrap(),
            Some(Value::from("safe"))
        );
        store.put("app:after", name).await.unwrap();
    }
    let snapshot = store.snapshot().await.unwrap();
    store.close().await;
    let reopened = Store::builder().open_with_storage(disk).await.unwrap();
    assert_eq!(reopened.snapshot().await.unwrap(), snapshot);
    assert_eq!(
        reopened.get("app:after").await.unwrap(),
        Some(Value::from("badstatus"))
    );
    assert_eq!(
        reopened.get("trap:k").await.unwrap(),
        Some(custom("wat.trap", b"v"))
    );
}
