// The same plugin files under Node's WebAssembly engine: node test.mjs GUEST_DIR CORPUS_DIR PKG_DIR
// GUEST_DIR holds geo_point.wasm and hostile.wasm (the guest workspace's release build);
// CORPUS_DIR the WAT corpus compiled by `cargo run -p statemesh-wasmtime --example plugin_corpus`;
// PKG_DIR the built npm package (host-wasm/build.sh), whose `meterPlugin` (the Rust crate
// statemesh-plugin-meter compiled to wasm) is the fuel metering: one implementation, so this
// loader is tested with the same instrumentation the package uses.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { CodecError, FUEL_EXPORT, PluginLoadError, capMemory, loadPlugin as loadUnmetered } from "./loader.mjs";
import { WorkerPlugin } from "./worker.mjs";

const [guestDir, corpusDir, pkgDir] = process.argv.slice(2);
if (!guestDir || !corpusDir || !pkgDir) {
  console.error("usage: node test.mjs GUEST_DIR CORPUS_DIR PKG_DIR");
  process.exit(2);
}
const { meterPlugin } = await import(pathToFileURL(resolve(pkgDir, "node.mjs")).href);
/** Loads the way `statemesh/plugins` does: metered. */
const loadPlugin = (bytes, limits = {}) => loadUnmetered(bytes, { ...limits, instrument: meterPlugin });
const guest = (name) => readFileSync(join(guestDir, `${name}.wasm`));
const corpus = (name) => readFileSync(join(corpusDir, `${name}.wasm`));
const enc = (s) => new TextEncoder().encode(s);
const dec = (b) => new TextDecoder().decode(b);

let passed = 0;
async function test(name, f) {
  try {
    await f();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    console.error(`FAIL ${name}\n${e.stack}`);
    process.exitCode = 1;
  }
}

function throwsKind(f, kind, Type = CodecError) {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof Type, `expected ${Type.name}, got ${e}`);
    assert.equal(e.kind, kind, e.message);
    return e;
  }
  assert.fail(`expected a ${kind} error`);
}

async function rejectsKind(p, kind, Type = CodecError) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof Type, `expected ${Type.name}, got ${e}`);
    assert.equal(e.kind, kind, e.message);
    return e;
  }
  assert.fail(`expected a ${kind} error`);
}

await test("geo.point gives the same answers as under wasmtime", async () => {
  const geo = await loadPlugin(guest("geo_point"));
  assert.equal(geo.name, "geo.point");
  assert.equal(geo.descriptor.abi, 1);
  const stored = geo.encode(enc("52.52, 13.405, Berlin Mitte"));
  assert.equal(stored.length, 16 + "Berlin Mitte".length);
  geo.validate(stored);
  assert.equal(dec(geo.decode(stored)), "52.52,13.405,Berlin Mitte");
  assert.equal(geo.toText(stored), "Berlin Mitte 52.52 13.405");
  assert.deepEqual(geo.toJson(stored), { lat: 52.52, lon: 13.405, label: "Berlin Mitte" });
  const e = throwsKind(() => geo.encode(enc("91,0,Nowhere")), "rejected");
  assert.match(e.message, /latitude/);
  throwsKind(() => geo.validate(new Uint8Array(15)), "rejected");
  assert.ok(geo.hasLiveInstance, "a refusal keeps the instance");
  for (let i = 0; i < 10000; i++) {
    const input = `${i % 90}.5,${i % 180}.25,place ${i}`;
    assert.equal(dec(geo.decode(geo.encode(enc(input)))), input);
  }
});

await test("capMemory sets the maximum the engine enforces", async () => {
  const capped = capMemory(corpus("grow"), 4 << 20);
  const m = await WebAssembly.compile(capped);
  const i = new WebAssembly.Instance(m, {});
  assert.equal(i.exports.memory.grow(62), 2); // 2 -> 64 pages = 4 MiB
  assert.throws(() => i.exports.memory.grow(1), RangeError);
  throwsKind(() => capMemory(corpus("bigmem"), 64 << 20), "instantiate", PluginLoadError);
});

const limits = { memoryBytes: 4 << 20, outputBytes: 64 << 10 };

await test("hostile WAT plugins fail clearly in-thread", async () => {
  const cases = { grow: "memory_limit", badptr: "bad_output", trap: "trap", huge: "output_too_large", badstatus: "bad_output" };
  for (const [name, kind] of Object.entries(cases)) {
    const p = await loadPlugin(corpus(name), limits);
    const e = throwsKind(() => p.encode(enc("input")), kind);
    assert.match(e.message, new RegExp(`wat\\.${name}`));
    assert.equal(p.hasLiveInstance, false, `${name}: instance kept`);
    assert.equal(dec(p.decode(enc("abc"))), "abc", `${name}: not usable afterwards`);
  }
  const echo = await loadPlugin(corpus("echo"), limits);
  assert.equal(dec(echo.encode(enc("hello"))), "hello");
  assert.equal(echo.encode(new Uint8Array(0)).length, 0);
  throwsKind(() => echo.toText(enc("x")), "unsupported");
  const small = await loadPlugin(corpus("echo"), { inputBytes: 8 });
  throwsKind(() => small.encode(new Uint8Array(9)), "input_too_large");
});

await test("plugins that cannot load get a clear error", async () => {
  const cases = {
    garbage: "invalid_module",
    abi2: "abi_version",
    noexport: "missing_export",
    imports: "has_imports",
    bigmem: "instantiate",
    wrongtype: "export_type",
    badname: "describe",
  };
  for (const [name, kind] of Object.entries(cases)) {
    await rejectsKind(loadPlugin(corpus(name)), kind, PluginLoadError);
  }
});

await test("fuel: a loop ends in out_of_fuel in-thread, deterministically, and the plugin keeps working", async () => {
  const p = await loadPlugin(corpus("loop"), { ...limits, fuel: 2_000_000 });
  assert.equal(p.metered, true);
  for (let i = 0; i < 2; i++) {
    const started = Date.now();
    const e = throwsKind(() => p.encode(enc("input")), "out_of_fuel");
    assert.equal(e.fuel, 2_000_000);
    assert.match(e.message, /wat\.loop.*fuel budget of 2000000/);
    assert.ok(Date.now() - started < 5000, "took too long");
    assert.equal(p.hasLiveInstance, false, "instance kept");
    assert.equal(dec(p.decode(enc("abc"))), "abc", "not usable afterwards");
  }
  // An ordinary trap is not mistaken for running out of fuel.
  const trap = await loadPlugin(corpus("trap"), limits);
  throwsKind(() => trap.encode(enc("input")), "trap");
});

await test("fuel: the start function and describe run under the budget too", async () => {
  const e = await rejectsKind(loadPlugin(corpus("startloop"), limits), "instantiate", PluginLoadError);
  assert.match(e.message, /start function exceeded the fuel budget/);
  const geo = await loadPlugin(guest("geo_point"));
  const used = () => 10_000_000 - Number(geo._fuel.value);
  const stored = geo.encode(enc("52.52, 13.405, Berlin Mitte"));
  const first = used();
  geo.encode(enc("52.52, 13.405, Berlin Mitte"));
  assert.equal(used(), first, "the same call costs the same fuel");
  assert.ok(first > 100 && first < 1_000_000, `geo.point encode used ${first}`);
  // Too little fuel for describe: the load fails clearly.
  const d = await rejectsKind(loadPlugin(guest("geo_point"), { fuel: 50 }), "describe", PluginLoadError);
  assert.match(d.message, /fuel/);
  assert.equal(dec(geo.decode(stored)), "52.52,13.405,Berlin Mitte");
});

await test("fuel: metering refuses modules it cannot meter, the unmetered loader says so", async () => {
  // (module (global (export "statemesh_fuel") (mut i64) (i64.const 0)))
  const reserved = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 6, 6, 1, 126, 1, 66, 0, 11, 7, 18, 1, 14,
    ...enc(FUEL_EXPORT), 3, 0]);
  const e = await rejectsKind(loadPlugin(reserved), "invalid_module", PluginLoadError);
  assert.match(e.message, /reserved/);
  // (module (func (drop (v128.const i32x4 0 0 0 0)))): SIMD is refused by name.
  const simd = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 23, 1, 21, 0,
    0xfd, 0x0c, ...new Array(16).fill(0), 0x1a, 0x0b]);
  await WebAssembly.compile(simd); // valid wasm: V8 itself takes it
  const s = await rejectsKind(loadPlugin(simd), "invalid_module", PluginLoadError);
  assert.match(s.message, /SIMD/);
  const plain = await loadUnmetered(corpus("echo"));
  assert.equal(plain.metered, false);
  assert.equal(dec(plain.encode(enc("hi"))), "hi");
  await assert.rejects(loadPlugin(corpus("echo"), { fuel: 0 }), TypeError);
});

await test("a worker bounds time: loops are terminated, the plugin keeps working", async () => {
  const p = await WorkerPlugin.load(corpus("loop"), limits, { timeoutMs: 300 });
  const started = Date.now();
  await rejectsKind(p.encode(enc("input")), "timeout");
  assert.ok(Date.now() - started < 5000);
  assert.equal(dec(await p.decode(enc("abc"))), "abc");
  assert.equal(p.restarts, 1);
  p.close();
  await rejectsKind(WorkerPlugin.load(corpus("startloop"), limits, { timeoutMs: 300 }), "instantiate", PluginLoadError);
  await rejectsKind(WorkerPlugin.load(corpus("abi2"), limits, { timeoutMs: 1000 }), "abi_version", PluginLoadError);
});

await test("the Rust hostile plugin is contained", async () => {
  const rlimits = { memoryBytes: 8 << 20, outputBytes: 1 << 20 };
  const p = await loadPlugin(guest("hostile"), rlimits);
  throwsKind(() => p.encode(enc("grow")), "memory_limit");
  throwsKind(() => p.encode(enc("panic")), "trap");
  throwsKind(() => p.encode(enc("recurse")), "trap");
  throwsKind(() => p.encode(enc("huge:2000000")), "output_too_large");
  throwsKind(() => p.encode(enc("reject")), "rejected");
  throwsKind(() => p.validate(enc("bad")), "rejected");
  assert.equal(p.encode(enc("huge:1000")).length, 1000);
  throwsKind(() => p.encode(enc("loop")), "out_of_fuel");
  assert.equal(dec(p.encode(enc("fine"))), "fine");
  const w = await WorkerPlugin.load(guest("hostile"), rlimits, { timeoutMs: 300 });
  await rejectsKind(w.encode(enc("loop")), "timeout");
  await rejectsKind(w.encode(enc("grow")), "memory_limit");
  assert.equal(dec(await w.encode(enc("fine"))), "fine");
  w.close();
});

console.log(`\n${passed} passed${process.exitCode ? ", some FAILED" : ""}`);
