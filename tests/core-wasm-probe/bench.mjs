// The wasm32 side of the search benchmark: loads the probe module (no imports), times its
// bench_* exports exactly as the native `search-bench` binary does, runs that binary for the
// native figures, and prints both with the wasm/native ratios.
//   node bench.mjs PROBE.wasm NATIVE-SEARCH-BENCH-BINARY
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";

const ITEMS = 10_000, DIMENSION = 128, WARMUP = 100, QUERIES = 1_000;
const [wasmPath, nativeBin] = process.argv.slice(2);
const { exports: x } = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(wasmPath)), {});

function measure(index, query) {
  const start = performance.now();
  const indexed = index();
  const indexS = (performance.now() - start) / 1000;
  for (let q = 0; q < WARMUP; q++) query(q);
  let hits = 0;
  const micros = [];
  for (let q = 0; q < QUERIES; q++) {
    const t = performance.now();
    hits += query(q);
    micros.push((performance.now() - t) * 1000);
  }
  micros.sort((a, b) => a - b);
  const at = (p) => micros[Math.floor((micros.length - 1) * p)];
  return { indexed, per_s: indexed / indexS, p50_us: at(0.5), p99_us: at(0.99), hits };
}

x.bench_text_generate(ITEMS);
const text = measure(x.bench_text_index, x.bench_text_query);
x.bench_vector_generate(ITEMS, DIMENSION);
const vector = measure(x.bench_vector_index, x.bench_vector_query);
const native = JSON.parse(execFileSync(nativeBin, { encoding: "utf8" }));

const rows = [
  ["text: index 10k docs", "per_s", "docs/s"],
  ["text: query p50", "p50_us", "µs"],
  ["text: query p99", "p99_us", "µs"],
  [`vectors ${DIMENSION}-d: add 10k`, "per_s", "vec/s"],
  ["vectors: top-10 p50", "p50_us", "µs"],
  ["vectors: top-10 p99", "p99_us", "µs"],
];
const wasm = { text, vector };
console.log("| workload (10,000 items) | native | wasm32 in Node | wasm / native |");
console.log("|---|---|---|---|");
for (const [name, field, unit] of rows) {
  const kind = name.startsWith("text") ? "text" : "vector";
  const n = native[kind][field], w = wasm[kind][field];
  console.log(`| ${name} | ${n.toFixed(1)} ${unit} | ${w.toFixed(1)} ${unit} | ${(w / n).toFixed(2)}x |`);
}
for (const kind of ["text", "vector"]) {
  if (native[kind].hits !== wasm[kind].hits || native[kind].indexed !== wasm[kind].indexed) {
    console.error(`${kind}: the targets disagree: native ${JSON.stringify(native[kind])}, wasm ${JSON.stringify(wasm[kind])}`);
    process.exit(1);
  }
}
console.log(`(same data and hits on both: ${text.hits} text hits, ${vector.hits} vector hits over ${QUERIES} queries)`);
