//! Codec-plugin overhead under wasmtime (a plain table, no criterion).
//!
//! 1. Per-call cost of encode + decode of a 100-byte value: the WAT `echo` plugin (the bare ABI:
//!    alloc, copy in, call, copy out, dealloc — no work in the guest), the SDK-built `hostile`
//!    plugin on its echo path (the SDK's Vec handling on top), and the `geo.point` codec (real
//!    parsing and float formatting).
//! 2. Engine puts of a 100-byte `Value::Custom` to keys owned by no codec, by the built-in JSON
//!    codec, and by wasm plugins (their `validate` runs on every put).
//!
//! Run with `cargo bench -p statemesh-wasmtime --bench plugins` (`STATEMESH_BENCH_ITERS`
//! iterations per row, default 200,000). Each row reports the median of 5 rounds.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::type_complexity)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use statemesh_core::codec::{JsonCodec, ValueCodec};
use statemesh_core::{Engine, EngineConfig, Timestamp, Value};
use statemesh_wasmtime::{PluginHost, PluginLimits};

fn median_ns(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    for i in 0..iters / 10 {
        f(i);
    }
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..iters {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn main() {
    let iters: u64 = std::env::var("STATEMESH_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let host = PluginHost::new().unwrap();
    let limits = PluginLimits::default();
    let echo: Arc<dyn ValueCodec> =
        Arc::new(host.load(&common::corpus_module("echo"), limits).unwrap());
    let sdk_echo: Arc<dyn ValueCodec> = Arc::new(
        host.load_file(common::guest("hostile").unwrap(), limits)
            .unwrap(),
    );
    let geo: Arc<dyn ValueCodec> = Arc::new(
        host.load_file(common::guest("geo_point").unwrap(), limits)
            .unwrap(),
    );
    let value = [b'v'; 100];
    // A 100-byte geo.point input: coordinates and a label.
    let geo_input = format!("52.520008,13.404954,{}", "L".repeat(100 - 20));
    assert_eq!(geo_input.len(), 100);
    let geo_stored = geo.encode(geo_input.as_bytes()).unwrap();
    let json_value = format!(r#"{{"k":"{}"}}"#, "v".repeat(100 - 8)).into_bytes();
    assert_eq!(json_value.len(), 100);

    println!("codec-plugin bench, wasmtime 48, {iters} iterations per row, median of 5 rounds");
    println!(
        "\n{:<58} {:>12}",
        "encode + decode, 100-byte value", "ns / pair"
    );
    for (name, codec, input) in [
        ("WAT echo plugin (bare ABI round trip)", &echo, &value[..]),
        ("SDK plugin, echo path (Rust guest)", &sdk_echo, &value[..]),
        (
            "geo.point (SDK, parses and formats)",
            &geo,
            geo_input.as_bytes(),
        ),
    ] {
        let ns = median_ns(iters, |_| {
            let stored = codec.encode(black_box(input)).unwrap();
            black_box(codec.decode(&stored).unwrap());
        });
        println!("{name:<58} {ns:>12.0}");
    }
    raw_wasmtime_rows(iters, &value);
    let ns = median_ns(iters, |_| {
        black_box(JsonCodec.decode(black_box(&json_value)).unwrap());
    });
    println!(
        "{:<58} {ns:>12.0}",
        "built-in JsonCodec decode (validate + copy), native"
    );

    println!(
        "\n{:<58} {:>12}",
        "engine put of a 100-byte Value::Custom", "ns / put"
    );
    let rows: [(&str, Option<Arc<dyn ValueCodec>>, &str, &[u8]); 5] = [
        ("no codec registered", None, "blob", &value),
        (
            "built-in JsonCodec validates",
            Some(Arc::new(JsonCodec)),
            "json",
            &json_value,
        ),
        (
            "WAT echo plugin validates",
            Some(echo.clone()),
            "wat.echo",
            &value,
        ),
        (
            "SDK plugin validates",
            Some(sdk_echo.clone()),
            "hostile",
            &value,
        ),
        (
            "geo.point plugin validates",
            Some(geo.clone()),
            "geo.point",
            &geo_stored,
        ),
    ];
    let keys: Vec<String> = (0..10_000).map(|i| format!("bench:k{i:05}")).collect();
    for (name, codec, codec_name, data) in rows {
        let mut engine = Engine::new(EngineConfig::default()).unwrap();
        engine.set_capture_log(false);
        engine.set_capture_events(false);
        if let Some(codec) = codec {
            engine.register_codec("bench:**", codec).unwrap();
        }
        let v = Value::Custom {
            codec: codec_name.into(),
            data: data.to_vec(),
        };
        let now = Timestamp::from_millis(1);
        let ns = median_ns(iters, |i| {
            engine
                .put(now, &keys[(i % 10_000) as usize], black_box(&v))
                .unwrap();
        });
        println!("{name:<58} {ns:>12.0}");
    }
}

/// The floor under the host: the same echo module driven with plain wasmtime calls (fuel on, no
/// mutex, no checks, no error mapping).
fn raw_wasmtime_rows(iters: u64, value: &[u8]) {
    use wasmtime::{Config, Engine as WasmEngine, Instance, Module, Store};
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = WasmEngine::new(&config).unwrap();
    let module = Module::new(&engine, common::corpus_module("echo")).unwrap();
    let mut store = Store::new(&engine, ());
    store.set_fuel(u64::MAX).unwrap();
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let version = instance
        .get_typed_func::<(), i32>(&mut store, "statemesh_abi_version")
        .unwrap();
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut store, "statemesh_alloc")
        .unwrap();
    let dealloc = instance
        .get_typed_func::<(i32, i32), ()>(&mut store, "statemesh_dealloc")
        .unwrap();
    let encode = instance
        .get_typed_func::<(i32, i32), i64>(&mut store, "statemesh_encode")
        .unwrap();
    let ns = median_ns(iters, |_| {
        black_box(version.call(&mut store, ()).unwrap());
    });
    println!(
        "{:<58} {ns:>12.0}",
        "raw wasmtime: one typed call (no work)"
    );
    let ns = median_ns(iters, |_| {
        let mut data = value.to_vec();
        for _ in 0..2 {
            let ptr = alloc.call(&mut store, data.len() as i32).unwrap();
            memory.write(&mut store, ptr as usize, &data).unwrap();
            let packed = encode.call(&mut store, (ptr, data.len() as i32)).unwrap() as u64;
            let (p, l) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
            data = memory.data(&store)[p + 1..p + l].to_vec();
            dealloc.call(&mut store, (p as i32, l as i32)).unwrap();
        }
        black_box(data);
    });
    println!(
        "{:<58} {ns:>12.0}",
        "raw wasmtime: the same 6 calls + copies, no checks"
    );
}
