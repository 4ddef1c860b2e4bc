//! Metered modules run under wasmtime: loops trap with the global exhausted, results do not
//! change, fuel is counted like wasmtime's own, and every corpus module still validates.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;

use proptest::prelude::*;
use statemesh_core::codec::{CodecError, ValueCodec};
use statemesh_plugin_meter::{FUEL_EXPORT, MeterError, MeterOptions, START_EXPORT, meter};
use statemesh_wasmtime::{PluginHost, PluginLimits};
use wasmtime::{Config, Engine, Instance, Module, Store, Val};

/// Enough fuel that only a real loop runs out (the metered global is 64-bit).
const PLENTY: u64 = 1 << 60;

fn metered(wasm: &[u8], fuel: u64) -> Vec<u8> {
    meter(wasm, &MeterOptions::default().initial_fuel(fuel)).unwrap()
}

/// A wasmtime store and instance, with wasmtime's own fuel on so that its count can be compared.
struct Run {
    store: Store<()>,
    instance: Instance,
}

impl Run {
    fn new(wasm: &[u8]) -> Run {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wasm).unwrap();
        let mut store = Store::new(&engine, ());
        store.set_fuel(u64::MAX / 2).unwrap();
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        Run { store, instance }
    }

    fn fuel(&mut self) -> i64 {
        let g = self
            .instance
            .get_global(&mut self.store, FUEL_EXPORT)
            .unwrap();
        match g.get(&mut self.store) {
            Val::I64(v) => v,
            other => panic!("fuel global is {other:?}"),
        }
    }

    fn set_fuel(&mut self, fuel: i64) {
        let g = self
            .instance
            .get_global(&mut self.store, FUEL_EXPORT)
            .unwrap();
        g.set(&mut self.store, Val::I64(fuel)).unwrap();
    }

    fn call(&mut self, name: &str, args: &[Val], results: usize) -> wasmtime::Result<Vec<Val>> {
        let f = self.instance.get_func(&mut self.store, name).unwrap();
        let mut out = vec![Val::I32(0); results];
        f.call(&mut self.store, args, &mut out)?;
        Ok(out)
    }

    /// Runs `name` and returns (metered fuel used, wasmtime fuel used).
    fn used(&mut self, name: &str, args: &[Val], results: usize) -> (i64, u64) {
        self.set_fuel(PLENTY as i64);
        let before = self.store.get_fuel().unwrap();
        self.call(name, args, results).unwrap();
        let native = before - self.store.get_fuel().unwrap();
        (PLENTY as i64 - self.fuel(), native)
    }
}

#[test]
fn a_metered_loop_traps_and_the_global_shows_exhaustion() {
    let wasm = metered(&common::corpus_module("loop"), 0);
    let mut run = Run::new(&wasm);
    run.set_fuel(1_000_000);
    let e = run
        .call("statemesh_encode", &[Val::I32(0), Val::I32(0)], 1)
        .unwrap_err();
    assert_eq!(
        e.downcast_ref::<wasmtime::Trap>(),
        Some(&wasmtime::Trap::UnreachableCodeReached),
        "{e:?}"
    );
    assert!(run.fuel() < 0, "fuel left {}", run.fuel());
    // The instance still works once refuelled.
    run.set_fuel(1_000_000);
    let out = run
        .call("statemesh_decode", &[Val::I32(0), Val::I32(0)], 1)
        .unwrap();
    assert_eq!(out[0].unwrap_i64(), 4398046511105);
    assert!(run.fuel() > 0);
}

#[test]
fn an_ordinary_trap_leaves_the_fuel_positive() {
    let wasm = metered(&common::corpus_module("trap"), 0);
    let mut run = Run::new(&wasm);
    run.set_fuel(1_000_000);
    run.call("statemesh_encode", &[Val::I32(0), Val::I32(0)], 1)
        .unwrap_err();
    assert!(run.fuel() >= 0, "fuel left {}", run.fuel());
}

#[test]
fn the_start_function_becomes_an_export_run_under_the_budget() {
    let wasm = metered(&common::corpus_module("startloop"), 0);
    // Instantiating no longer runs it...
    let mut run = Run::new(&wasm);
    run.set_fuel(10_000);
    // ...calling the export does, and it runs out.
    run.call(START_EXPORT, &[], 0).unwrap_err();
    assert!(run.fuel() < 0);
    // A module without a start function gets no such export.
    let plain = Run::new(&metered(&common::corpus_module("echo"), 0));
    let mut plain = plain;
    assert!(
        plain
            .instance
            .get_func(&mut plain.store, START_EXPORT)
            .is_none()
    );
}

/// `count(n)`: a loop of n iterations, with a block, an if/else and a call inside.
const COUNTER: &str = r#"(module
  (func $inc (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "count") (param $n i32) (result i32) (local $acc i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (if (i32.and (local.get $n) (i32.const 1))
          (then (local.set $acc (call $inc (local.get $acc))))
          (else (local.set $acc (i32.add (local.get $acc) (i32.const 2)))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $acc)))"#;

#[test]
fn fuel_is_proportional_to_iterations_and_matches_wasmtime() {
    let wasm = metered(&wat::parse_str(COUNTER).unwrap(), 0);
    let mut run = Run::new(&wasm);
    let mut used = Vec::new();
    for n in [0, 1000, 2000, 4000] {
        let (mine, native) = run.used("count", &[Val::I32(n)], 1);
        used.push((n, mine, native));
    }
    // Iterations alternate between two paths: cost is linear in pairs of iterations.
    let (_, base, _) = used[0];
    assert_eq!((used[1].1 - base) % 500, 0, "{used:?}");
    let per_pair = (used[1].1 - base) / 500;
    assert!(per_pair > 10, "{used:?}");
    for &(n, mine, _) in &used {
        assert_eq!(mine, base + per_pair * i64::from(n / 2), "{used:?}");
    }
    // The metered module also runs under wasmtime's fuel, which counts the inserted charges
    // too; compare against the unmetered module's count instead.
    let mut plain_run = Run::new(&with_fuel_global(COUNTER));
    for &(n, mine, _) in &used[1..] {
        let (_, native) = plain_run.used("count", &[Val::I32(n)], 1);
        let ratio = mine as f64 / native as f64;
        assert!(
            (0.9..=1.1).contains(&ratio),
            "n={n}: metered {mine}, wasmtime {native}"
        );
    }
}

/// The WAT with an (unused) fuel global exported, so `Run::used` works on the unmetered module.
fn with_fuel_global(wat: &str) -> Vec<u8> {
    let wat = wat.replacen(
        "(module",
        &format!("(module (global (export \"{FUEL_EXPORT}\") (mut i64) (i64.const {PLENTY}))"),
        1,
    );
    wat::parse_str(wat).unwrap()
}

#[test]
fn every_corpus_module_meters_to_a_valid_module() {
    for (name, wasm) in common::corpus() {
        match meter(&wasm, &MeterOptions::default()) {
            Ok(out) => {
                wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::WASM2)
                    .validate_all(&out)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(out.len() > wasm.len(), "{name}");
            }
            Err(e) => assert!(
                name == "garbage" && matches!(e, MeterError::Invalid(_)),
                "{name}: {e}"
            ),
        }
    }
}

#[test]
fn refuses_reserved_exports_and_unsupported_features() {
    let reserved = wat::parse_str(format!(
        "(module (global (export \"{FUEL_EXPORT}\") (mut i64) (i64.const 0)))"
    ))
    .unwrap();
    assert_eq!(
        meter(&reserved, &MeterOptions::default()),
        Err(MeterError::ReservedExport(FUEL_EXPORT.into()))
    );
    let twice = metered(&common::corpus_module("echo"), 0);
    assert!(matches!(
        meter(&twice, &MeterOptions::default()),
        Err(MeterError::ReservedExport(_))
    ));
    let tail_call = wat::parse_str(
        "(module (func $f (result i32) (i32.const 1)) (func (result i32) (return_call $f)))",
    )
    .unwrap();
    let e = meter(&tail_call, &MeterOptions::default()).unwrap_err();
    assert!(matches!(e, MeterError::Unsupported(_)), "{e}");
    let simd = wat::parse_str("(module (func (drop (v128.const i32x4 0 0 0 0))))").unwrap();
    let e = meter(&simd, &MeterOptions::default()).unwrap_err();
    assert!(matches!(e, MeterError::Unsupported(_)), "{e}");
    let threads = wat::parse_str("(module (memory 1 1 shared))").unwrap();
    assert!(matches!(
        meter(&threads, &MeterOptions::default()),
        Err(MeterError::Unsupported(_))
    ));
    assert!(matches!(
        meter(b"\0asm\x01\0\0\0garbage!", &MeterOptions::default()),
        Err(MeterError::Invalid(_))
    ));
    // Soundness: code naming the global index the fuel global will take is invalid before
    // metering and must not become a way to refuel once the global exists.
    let sneaky = wat::parse_str(
        "(module (func (export \"f\") (global.set 0 (i64.const 9223372036854775807))))",
    )
    .unwrap();
    assert!(matches!(
        meter(&sneaky, &MeterOptions::default()),
        Err(MeterError::Invalid(_))
    ));
    // A module with no sections at all still gets its global and export.
    let empty = metered(&wat::parse_str("(module)").unwrap(), 7);
    let mut run = Run::new(&empty);
    assert_eq!(run.fuel(), 7);
}

fn geo_inputs() -> Vec<Vec<u8>> {
    vec![
        b"52.52, 13.405, Berlin Mitte".to_vec(),
        b"-33.8688,151.2093".to_vec(),
        b"91,0,Nowhere".to_vec(),
        b"not a point".to_vec(),
        b"".to_vec(),
        format!("1,2,{}", "x".repeat(2000)).into_bytes(),
    ]
}

/// Both results, errors as their kind and message.
fn outcome<T: std::fmt::Debug>(r: Result<T, CodecError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("err {e}"),
    }
}

#[test]
fn metered_guest_plugins_give_byte_identical_results() {
    let host = PluginHost::new().unwrap();
    for name in ["geo_point", "hostile"] {
        let Some(path) = common::guest(name) else {
            return;
        };
        let wasm = std::fs::read(path).unwrap();
        let plain = host.load(&wasm, PluginLimits::default()).unwrap();
        let meter_fuel = host
            .load(
                &metered(&wasm, PLENTY),
                PluginLimits::default().fuel(u64::MAX / 4),
            )
            .unwrap();
        assert_eq!(plain.descriptor(), meter_fuel.descriptor());
        let mut inputs = geo_inputs();
        inputs.extend([b"reject".to_vec(), b"huge:10".to_vec(), b"fine".to_vec()]);
        for input in inputs {
            let a = plain.encode(&input);
            let b = meter_fuel.encode(&input);
            assert_eq!(outcome(a.clone()), outcome(b), "{name} encode {input:?}");
            if let Ok(stored) = a {
                for (x, y) in [
                    (
                        outcome(plain.decode(&stored)),
                        outcome(meter_fuel.decode(&stored)),
                    ),
                    (
                        outcome(plain.validate(&stored)),
                        outcome(meter_fuel.validate(&stored)),
                    ),
                    (
                        outcome(plain.to_text(&stored)),
                        outcome(meter_fuel.to_text(&stored)),
                    ),
                    (
                        outcome(plain.to_json(&stored)),
                        outcome(meter_fuel.to_json(&stored)),
                    ),
                ] {
                    assert_eq!(x, y, "{name} {input:?}");
                }
            }
        }
    }
}

#[test]
fn geo_point_costs_about_what_wasmtime_counts() {
    let Some(path) = common::guest("geo_point") else {
        return;
    };
    let wasm = std::fs::read(path).unwrap();
    // Fuel of `describe` (which formats JSON) under wasmtime unmetered vs the metered global.
    let mut run = Run::new(&metered(&wasm, 0));
    let (mine, _) = run.used("statemesh_describe", &[], 1);
    let host = {
        let mut config = Config::new();
        config.consume_fuel(true);
        Engine::new(&config).unwrap()
    };
    let module = Module::new(&host, &wasm).unwrap();
    let mut store = Store::new(&host, ());
    store.set_fuel(u64::MAX / 2).unwrap();
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let describe = instance
        .get_typed_func::<(), i64>(&mut store, "statemesh_describe")
        .unwrap();
    let before = store.get_fuel().unwrap();
    describe.call(&mut store, ()).unwrap();
    let native = before - store.get_fuel().unwrap();
    let ratio = mine as f64 / native as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "metered {mine}, wasmtime {native}"
    );
}

#[test]
fn a_looping_metered_plugin_is_out_of_fuel_under_the_wasmtime_host_too() {
    // The metered global trips before wasmtime's much larger budget does.
    let host = PluginHost::new().unwrap();
    let codec = host
        .load(
            &metered(&common::corpus_module("loop"), 1_000_000),
            PluginLimits::default().fuel(u64::MAX / 4),
        )
        .unwrap();
    let e = codec.encode(b"x").unwrap_err();
    assert!(matches!(e, CodecError::Trap { .. }), "{e}");
}

/// One step of a generated computation on an i32 accumulator.
#[derive(Debug, Clone)]
enum Step {
    Add(i32),
    Mul(i32),
    Xor(i32),
    Rotl(i32),
    /// if acc is odd then add else sub
    Branch(i32, i32),
    /// block, leaving early when acc & mask == 0
    Early(i32, i32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<i32>().prop_map(Step::Add),
        any::<i32>().prop_map(Step::Mul),
        any::<i32>().prop_map(Step::Xor),
        (0..32i32).prop_map(Step::Rotl),
        (any::<i32>(), any::<i32>()).prop_map(|(a, b)| Step::Branch(a, b)),
        (1..16i32, any::<i32>()).prop_map(|(m, a)| Step::Early(m, a)),
    ]
}

fn program(steps: &[Step]) -> String {
    let mut body = String::new();
    for s in steps {
        body.push_str(&match s {
            Step::Add(c) => format!("(local.set $a (i32.add (local.get $a) (i32.const {c})))"),
            Step::Mul(c) => format!("(local.set $a (i32.mul (local.get $a) (i32.const {c})))"),
            Step::Xor(c) => format!("(local.set $a (i32.xor (local.get $a) (i32.const {c})))"),
            Step::Rotl(c) => format!("(local.set $a (i32.rotl (local.get $a) (i32.const {c})))"),
            Step::Branch(x, y) => format!(
                "(if (i32.and (local.get $a) (i32.const 1)) \
                   (then (local.set $a (i32.add (local.get $a) (i32.const {x})))) \
                   (else (local.set $a (i32.sub (local.get $a) (i32.const {y})))))"
            ),
            Step::Early(m, c) => format!(
                "(block $b (br_if $b (i32.eqz (i32.and (local.get $a) (i32.const {m})))) \
                   (local.set $a (call $f (local.get $a) (i32.const {c}))))"
            ),
        });
    }
    format!(
        r#"(module
  (func $f (param i32 i32) (result i32) (i32.add (i32.mul (local.get 0) (i32.const 3)) (local.get 1)))
  (func (export "run") (param $a i32) (param $n i32) (result i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      {body}
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $a)))"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn metering_preserves_results(steps in prop::collection::vec(step(), 0..12), a in any::<i32>(), n in 0..200i32) {
        let wasm = wat::parse_str(program(&steps)).unwrap();
        let mut plain = Run::new(&with_fuel_global(&program(&steps)));
        let mut fueled = Run::new(&metered(&wasm, 0));
        let want = plain.call("run", &[Val::I32(a), Val::I32(n)], 1).unwrap()[0].unwrap_i32();
        let (used, _) = fueled.used("run", &[Val::I32(a), Val::I32(n)], 1);
        let (_, native) = plain.used("run", &[Val::I32(a), Val::I32(n)], 1);
        fueled.set_fuel(PLENTY as i64);
        let got = fueled.call("run", &[Val::I32(a), Val::I32(n)], 1).unwrap()[0].unwrap_i32();
        prop_assert_eq!(got, want);
        // Each executed segment pays its instructions, about as wasmtime counts them (wasmtime
        // differs by a unit or two per call, in where a taken branch's exit is counted).
        let diff = (used - native as i64).unsigned_abs();
        prop_assert!(diff <= native / 10 + 3, "metered {} vs wasmtime {}", used, native);
        // With too little fuel, it traps and says so.
        if used > 10 {
            fueled.set_fuel(used / 2);
            prop_assert!(fueled.call("run", &[Val::I32(a), Val::I32(n)], 1).is_err());
            prop_assert!(fueled.fuel() < 0);
        }
    }
}
