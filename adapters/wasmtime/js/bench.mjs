// Codec-plugin overhead under Node's WebAssembly engine, same rows as the wasmtime bench
// (adapters/wasmtime/benches/plugins.rs): node bench.mjs GUEST_DIR CORPUS_DIR [ITERS]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadPlugin } from "./loader.mjs";
import { WorkerPlugin } from "./worker.mjs";

const [guestDir, corpusDir, itersArg] = process.argv.slice(2);
const iters = Number(itersArg ?? 200000);
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
const rows = [
  ["WAT echo plugin (bare ABI round trip)", await loadPlugin(readFileSync(join(corpusDir, "echo.wasm"))), value],
  ["SDK plugin, echo path (Rust guest)", await loadPlugin(readFileSync(join(guestDir, "hostile.wasm"))), value],
  ["geo.point (SDK, parses and formats)", await loadPlugin(readFileSync(join(guestDir, "geo_point.wasm"))), geoInput],
];
console.log(`codec-plugin bench, Node ${process.version}, ${iters} iterations per row, median of 5 rounds`);
console.log(`\n${"encode + decode, 100-byte value".padEnd(58)} ${"ns / pair".padStart(12)}`);
let sink = 0;
for (const [name, plugin, input] of rows) {
  const ns = medianNs(iters, () => {
    sink += plugin.decode(plugin.encode(input)).length;
  });
  console.log(`${name.padEnd(58)} ${ns.toFixed(0).padStart(12)}`);
}
const worker = await WorkerPlugin.load(readFileSync(join(corpusDir, "echo.wasm")), {}, { timeoutMs: 5000 });
const n = Math.max(1000, Math.floor(iters / 100));
const t = process.hrtime.bigint();
for (let i = 0; i < n; i++) sink += (await worker.decode(await worker.encode(value))).length;
const ns = Number(process.hrtime.bigint() - t) / n;
console.log(`${"WAT echo plugin in a Worker (time-bounded), " + n + " pairs"}`.padEnd(58) + ` ${ns.toFixed(0).padStart(12)}`);
worker.close();
if (sink === 0) console.log("unreachable");
