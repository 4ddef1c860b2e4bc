// Codec-plugin overhead under Node's WebAssembly engine, same rows as the wasmtime bench
// (adapters/wasmtime/benches/plugins.rs), each plugin unmetered and fuel-metered (as
// `statemesh/plugins` loads it): node bench.mjs GUEST_DIR CORPUS_DIR PKG_DIR [ITERS]
// PKG_DIR is the built npm package (host-wasm/build.sh), for its meterPlugin.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { CodecError, loadPlugin } from "./loader.mjs";
import { WorkerPlugin } from "./worker.mjs";

const [guestDir, corpusDir, pkgDir, itersArg] = process.argv.slice(2);
const iters = Number(itersArg ?? 200000);
const { meterPlugin } = await import(pathToFileURL(resolve(pkgDir, "node.mjs")).href);
const enc = (s) => new TextEncoder().encode(s);

function medianNs(n, f) {
  for (let i = 0; i < n / 10; i++) f();
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    rounds.push(Number(process.hrtime.bigint() - t) / n);
  }
  rounds.sort((a, b) => a - b);
  return rounds[2];
}

const value = new Uint8Array(100).fill(118);
const geoInput = enc(`52.520008,13.404954,${"L".repeat(80)}`);
const files = [
  ["WAT echo plugin (bare ABI round trip)", join(corpusDir, "echo.wasm"), value],
  ["SDK plugin, echo path (Rust guest)", join(guestDir, "hostile.wasm"), value],
  ["geo.point (SDK, parses and formats)", join(guestDir, "geo_point.wasm"), geoInput],
];
console.log(`codec-plugin bench, Node ${process.version}, ${iters} iterations per row (plain/metered: median of 9 interleaved rounds of a quarter)`);
console.log(`\n${"encode + decode, 100-byte value".padEnd(58)} ${"unmetered".padStart(10)} ${"metered".padStart(10)} ${"fuel/pair".padStart(10)}`);
let sink = 0;
for (const [name, file, input] of files) {
  const bytes = readFileSync(file);
  const plain = await loadPlugin(bytes);
  const metered = await loadPlugin(bytes, { instrument: meterPlugin });
  // Interleaved rounds (plain, metered, plain, ...), so that load from elsewhere on the machine
  // hits both alike; the median of each.
  const fns = [plain, metered].map((plugin) => () => {
    sink += plugin.decode(plugin.encode(input)).length;
  });
  const rounds = [[], []];
  for (const f of fns) for (let i = 0; i < iters / 10; i++) f();
  for (let r = 0; r < 9; r++) {
    fns.forEach((f, k) => {
      const t = process.hrtime.bigint();
      for (let i = 0; i < iters / 4; i++) f();
      rounds[k].push(Number(process.hrtime.bigint() - t) / (iters / 4));
    });
  }
  const [a, b] = rounds.map((xs) => xs.sort((x, y) => x - y)[4]);
  metered.encode(input);
  let fuel = metered.limits.fuel - Number(metered._fuel.value);
  metered.decode(input);
  fuel += metered.limits.fuel - Number(metered._fuel.value);
  console.log(`${name.padEnd(58)} ${a.toFixed(0).padStart(10)} ${b.toFixed(0).padStart(10)} ${String(fuel).padStart(10)}`);
}

console.log(`\n${"metering at load (meterPlugin, this package's build)".padEnd(58)} ${"bytes in".padStart(10)} ${"bytes out".padStart(10)} ${"ms".padStart(10)}`);
for (const [name, file] of files) {
  const bytes = readFileSync(file);
  const t = process.hrtime.bigint();
  const out = meterPlugin(bytes, 0);
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  console.log(`${name.padEnd(58)} ${String(bytes.length).padStart(10)} ${String(out.length).padStart(10)} ${ms.toFixed(1).padStart(10)}`);
}

const spin = await loadPlugin(readFileSync(join(corpusDir, "loop.wasm")), { instrument: meterPlugin });
const times = [];
for (let r = 0; r < 5; r++) {
  const t = process.hrtime.bigint();
  try {
    spin.encode(value);
  } catch (e) {
    if (!(e instanceof CodecError) || e.kind !== "out_of_fuel") throw e;
  }
  times.push(Number(process.hrtime.bigint() - t) / 1e6);
}
times.sort((x, y) => x - y);
console.log(`\nWAT loop plugin: out_of_fuel after ${spin.limits.fuel} fuel in ${times[2].toFixed(1)} ms (median of 5, incl. re-instantiation)`);
const worker = await WorkerPlugin.load(readFileSync(join(corpusDir, "echo.wasm")), {}, { timeoutMs: 5000 });
const n = Math.max(1000, Math.floor(iters / 100));
const t = process.hrtime.bigint();
for (let i = 0; i < n; i++) sink += (await worker.decode(await worker.encode(value))).length;
const ns = Number(process.hrtime.bigint() - t) / n;
console.log(`${"WAT echo plugin in a Worker (time-bounded), " + n + " pairs"}`.padEnd(58) + ` ${ns.toFixed(0).padStart(12)}`);
worker.close();
if (sink === 0) console.log("unreachable");
