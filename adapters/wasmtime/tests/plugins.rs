//! Plugins under wasmtime: a real codec built with the SDK, and every hostile plugin of the
//! corpus. After each failure the engine still serves reads and writes and has lost nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use statemesh_core::codec::{CodecError, CodecOp, ValueCodec};
use statemesh_core::{Engine, EngineConfig, EngineError, Timestamp, Value};
use statemesh_wasmtime::{LoadError, PluginHost, PluginLimits, WasmCodec};

fn host() -> PluginHost {
    PluginHost::new().unwrap()
}

fn load(name: &str, limits: PluginLimits) -> WasmCodec {
    host().load(&common::corpus_module(name), limits).unwrap()
}

fn custom(codec: &str, data: &[u8]) -> Value {
    Value::Custom {
        codec: codec.into(),
        data: data.to_vec(),
    }
}

/// What a failing call must return.
type Expect = fn(&CodecError) -> bool;

const NOW: Timestamp = Timestamp::from_millis(1_000);

/// An engine with a healthy key and the plugin owning `p:**`.
fn engine_with(codec: Arc<dyn ValueCodec>) -> Engine {
    let mut e = Engine::new(EngineConfig::default()).unwrap();
    e.put(NOW, "app:kept", &Value::from("safe")).unwrap();
    e.register_codec("p:**", codec).unwrap();
    e
}

/// The engine lost nothing and still takes writes.
fn assert_healthy(e: &mut Engine, revision: u64) {
    assert_eq!(
        e.revision(),
        revision,
        "a refused write changed the revision"
    );
    assert_eq!(e.get(NOW, "app:kept").unwrap(), Some(Value::from("safe")));
    e.put(NOW, "app:after", &Value::from("ok")).unwrap();
    assert_eq!(e.get(NOW, "app:after").unwrap(), Some(Value::from("ok")));
}

#[test]
fn geo_point_plugin_roundtrips_validates_and_exposes_text() {
    let Some(path) = common::guest("geo_point") else {
        return;
    };
    let codec = Arc::new(host().load_file(&path, PluginLimits::default()).unwrap());
    assert_eq!(codec.name(), "geo.point");
    assert_eq!(codec.descriptor()["abi"], 1);
    let stored = codec.encode(b"52.52, 13.405, Berlin Mitte").unwrap();
    assert_eq!(stored.len(), 16 + "Berlin Mitte".len());
    codec.validate(&stored).unwrap();
    assert_eq!(codec.decode(&stored).unwrap(), b"52.52,13.405,Berlin Mitte");
    assert_eq!(
        codec.to_text(&stored).unwrap().as_deref(),
        Some("Berlin Mitte 52.52 13.405")
    );
    assert_eq!(
        codec.to_json(&stored).unwrap(),
        Some(serde_json::json!({"lat": 52.52, "lon": 13.405, "label": "Berlin Mitte"}))
    );
    // The codec refuses bad input and bad stored bytes with its own message.
    let err = codec.encode(b"91,0,Nowhere").unwrap_err();
    assert!(
        matches!(&err, CodecError::Rejected { op: CodecOp::Encode, message, .. } if message.contains("latitude")),
        "{err}"
    );
    assert!(codec.validate(&[0; 15]).is_err());
    let mut nan = stored.clone();
    nan[..8].copy_from_slice(&f64::NAN.to_le_bytes());
    assert!(codec.validate(&nan).is_err());

    // Through the engine: a valid point is stored, an invalid one refused.
    let mut e = engine_with(codec.clone());
    let w = e
        .put(NOW, "p:berlin", &custom("geo.point", &stored))
        .unwrap();
    assert_eq!(w.version, 1);
    let rev = e.revision();
    let err = e.put(NOW, "p:bad", &custom("geo.point", &nan)).unwrap_err();
    assert!(matches!(err, EngineError::Codec { .. }), "{err}");
    assert!(err.to_string().contains("latitude"), "{err}");
    let err = e.put(NOW, "p:other", &custom("json", b"{}")).unwrap_err();
    assert!(matches!(err, EngineError::CodecMismatch { .. }), "{err}");
    assert_healthy(&mut e, rev);
    assert_eq!(
        e.get(NOW, "p:berlin").unwrap(),
        Some(custom("geo.point", &stored))
    );
    // Many calls reuse one instance without leaking: 10k round trips stay within the cap.
    for i in 0..10_000 {
        let input = format!("{}.5,{}.25,place {i}", i % 90, i % 180);
        let s = codec.encode(input.as_bytes()).unwrap();
        assert_eq!(codec.decode(&s).unwrap(), input.as_bytes());
    }
}

#[test]
fn rust_hostile_plugin_is_contained() {
    let Some(path) = common::guest("hostile") else {
        return;
    };
    let limits = PluginLimits::default()
        .fuel(50_000_000)
        .memory_bytes(8 << 20)
        .output_bytes(1 << 20);
    let codec = Arc::new(host().load_file(&path, limits).unwrap());
    let mut e = engine_with(codec.clone());
    e.put(NOW, "p:good", &custom("hostile", b"fine")).unwrap();
    let cases: [(&[u8], Expect); 6] = [
        (b"loop", |e| {
            matches!(
                e,
                CodecError::OutOfFuel {
                    fuel: 50_000_000,
                    ..
                }
            )
        }),
        (
            b"grow",
            |e| matches!(e, CodecError::MemoryLimit { limit, .. } if *limit == 8 << 20),
        ),
        (b"panic", |e| matches!(e, CodecError::Trap { .. })),
        (
            b"recurse",
            |e| matches!(e, CodecError::Trap { message, .. } if message.contains("stack") || message.contains("out of bounds")),
        ),
        (b"huge:2000000", |e| {
            matches!(
                e,
                CodecError::OutputTooLarge {
                    size: 2_000_000,
                    ..
                }
            )
        }),
        (
            b"reject",
            |e| matches!(e, CodecError::Rejected { message, .. } if message == "rejected on purpose"),
        ),
    ];
    for (input, expected) in cases {
        let rev = e.revision();
        let err = codec.encode(input).unwrap_err();
        assert!(expected(&err), "{}: {err}", String::from_utf8_lossy(input));
        // The next calls work (on a fresh instance where the failure was a sandbox one).
        assert_eq!(codec.encode(b"again").unwrap(), b"again");
        assert_eq!(codec.encode(b"huge:1000").unwrap().len(), 1000);
        // A value the codec refuses is refused through the engine, changing nothing.
        let err = e.put(NOW, "p:x", &custom("hostile", b"bad")).unwrap_err();
        assert!(matches!(err, EngineError::Codec { .. }), "{err}");
        assert_healthy(&mut e, rev);
        assert_eq!(
            e.get(NOW, "p:good").unwrap(),
            Some(custom("hostile", b"fine"))
        );
        e.put(NOW, "p:good", &custom("hostile", b"fine")).unwrap();
    }
}

#[test]
fn every_hostile_wat_plugin_fails_clearly_and_the_engine_keeps_working() {
    let limits = PluginLimits::default()
        .fuel(1_000_000)
        .memory_bytes(4 << 20)
        .output_bytes(64 << 10);
    let cases: [(&str, Expect); 6] = [
        ("loop", |e| {
            matches!(
                e,
                CodecError::OutOfFuel {
                    op: CodecOp::Encode,
                    ..
                }
            )
        }),
        (
            "grow",
            |e| matches!(e, CodecError::MemoryLimit { limit, requested, .. } if *limit == 4 << 20 && *requested > *limit),
        ),
        (
            "badptr",
            |e| matches!(e, CodecError::BadOutput { message, .. } if message.contains("outside")),
        ),
        (
            "trap",
            |e| matches!(e, CodecError::Trap { message, .. } if message.contains("unreachable")),
        ),
        (
            "huge",
            |e| matches!(e, CodecError::OutputTooLarge { limit, .. } if *limit == 64 << 10),
        ),
        (
            "badstatus",
            |e| matches!(e, CodecError::BadOutput { message, .. } if message.contains("status")),
        ),
    ];
    for (name, expected) in cases {
        let codec = Arc::new(load(name, limits));
        // The hostile part is encode; validate and decode behave, so the key can be written.
        let mut e = engine_with(codec.clone());
        e.put(NOW, "p:k", &custom(codec.name(), b"v1")).unwrap();
        let rev = e.revision();
        let err = codec.encode(b"input").unwrap_err();
        assert!(expected(&err), "{name}: unexpected error {err:?}");
        let text = err.to_string();
        assert!(text.contains(codec.name()), "{name}: {text}");
        assert!(
            !codec.has_live_instance(),
            "{name}: instance kept after a sandbox failure"
        );
        // Still usable: decode works on a fresh instance, the engine lost nothing.
        assert_eq!(codec.decode(b"abc").unwrap(), b"abc");
        assert_healthy(&mut e, rev);
        assert_eq!(
            e.get(NOW, "p:k").unwrap(),
            Some(custom(codec.name(), b"v1"))
        );
        e.put(NOW, "p:k", &custom(codec.name(), b"v2")).unwrap();
        assert_eq!(
            e.get(NOW, "p:k").unwrap(),
            Some(custom(codec.name(), b"v2"))
        );
    }
    // The well-behaved template round-trips.
    let echo = load("echo", limits);
    assert_eq!(echo.encode(b"hello").unwrap(), b"hello");
    assert_eq!(echo.encode(b"").unwrap(), b"");
    assert!(matches!(
        echo.to_text(b"x"),
        Err(CodecError::Unsupported {
            op: CodecOp::ToText,
            ..
        })
    ));
    assert!(echo.has_live_instance());
}

#[test]
fn plugins_that_cannot_load_get_a_clear_error() {
    let h = host();
    let limits = PluginLimits::default().fuel(1_000_000);
    let load = |name: &str| h.load(&common::corpus_module(name), limits).unwrap_err();
    assert!(matches!(load("garbage"), LoadError::InvalidModule(_)));
    assert!(matches!(
        load("abi2"),
        LoadError::AbiVersion {
            found: 2,
            supported: 1
        }
    ));
    assert!(matches!(
        load("noexport"),
        LoadError::MissingExport("statemesh_decode")
    ));
    assert!(matches!(load("imports"), LoadError::HasImports(s) if s == "env::log"));
    assert!(matches!(load("bigmem"), LoadError::Instantiate(m) if m.contains("cap")));
    assert!(matches!(load("startloop"), LoadError::Instantiate(m) if m.contains("fuel")));
    assert!(matches!(
        load("wrongtype"),
        LoadError::ExportType {
            name: "statemesh_encode",
            ..
        }
    ));
    assert!(matches!(load("badname"), LoadError::Describe(m) if m.contains("invalid codec name")));
    assert!(matches!(
        h.load_file("/nonexistent/plugin.wasm", limits),
        Err(LoadError::Io { .. })
    ));
    for name in [
        "garbage",
        "abi2",
        "noexport",
        "imports",
        "bigmem",
        "startloop",
    ] {
        let msg = load(name).to_string();
        assert!(msg.len() > 20, "{name}: {msg}");
    }
}

#[test]
fn inputs_over_the_cap_are_refused_before_the_call() {
    let codec = load("echo", PluginLimits::default().input_bytes(8));
    assert!(matches!(
        codec.encode(&[0; 9]),
        Err(CodecError::InputTooLarge {
            size: 9,
            limit: 8,
            ..
        })
    ));
    assert_eq!(codec.encode(&[1; 8]).unwrap(), [1; 8]);
}

#[test]
fn one_codec_is_shared_between_threads() {
    let codec = Arc::new(load("echo", PluginLimits::default()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let codec = codec.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let input = format!("{t}-{i}");
                    assert_eq!(codec.encode(input.as_bytes()).unwrap(), input.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn default_fuel_ends_a_loop_quickly() {
    let codec = load("loop", PluginLimits::default());
    let started = std::time::Instant::now();
    assert!(matches!(
        codec.encode(b"x"),
        Err(CodecError::OutOfFuel {
            fuel: 10_000_000,
            ..
        })
    ));
    let took = started.elapsed();
    eprintln!("a loop at the default fuel ran for {took:?}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}
