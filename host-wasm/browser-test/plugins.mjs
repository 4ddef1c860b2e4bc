// Codec plugins in Chromium through the built package: the geo.point plugin, the hostile Rust
// plugin and the hostile WAT corpus (host-wasm/browser-test/run.sh copies them to
// pkg/test-plugins/). The same checks as test/codecs.test.mjs and adapters/wasmtime/js/test.mjs
// under Node, here on the browser's WebAssembly engine and IndexedDB, through
// `statemesh/plugins` (pkg/plugins/browser.mjs), which meters every plugin.
import init, { Store } from '../pkg/browser.js';
import { loadPlugin, PluginLoadError } from '../pkg/plugins/browser.mjs';

const out = document.getElementById('out');
const lines = [];
const log = (s) => { lines.push(s); out.textContent = lines.join('\n'); };
const enc = (s) => new TextEncoder().encode(s);
const dec = (b) => new TextDecoder().decode(b);
const fetchBytes = async (name) => new Uint8Array(await (await fetch(`../pkg/test-plugins/${name}.wasm`)).arrayBuffer());
const check = (ok, what) => { if (!ok) throw new Error(`check failed: ${what}`); };
async function rejects(promise, test, what) {
  try { await promise; } catch (e) { check(test(e), `${what}: ${e.code} ${e.message}`); return; }
  throw new Error(`expected a rejection: ${what}`);
}

let passed = 0;
let failed = 0;
async function test(name, f) {
  try { await f(); passed++; log(`ok   ${name}`); } catch (e) { failed++; log(`FAIL ${name}: ${e.stack ?? e}`); }
}

await init();

await test('geo.point owns its keys on an IndexedDB store', async () => {
  const geo = await loadPlugin(await fetchBytes('geo_point'));
  const name = `plugins-${Date.now()}`;
  let s = await Store.open({ indexedDb: name, codecs: [{ pattern: 'places:**', plugin: geo }] });
  await s.putCustom('places:berlin', enc('52.52, 13.405, Berlin Mitte'));
  check(dec(await s.getDecoded('places:berlin')) === '52.52,13.405,Berlin Mitte', 'decode');
  check((await s.toJson('places:berlin')).label === 'Berlin Mitte', 'toJson');
  await rejects(s.putCustom('places:x', enc('91,0,Nowhere')), (e) => e.code === 'CODEC' && /latitude/.test(e.message), 'refused');
  await s.close();
  for (let i = 0; i < 100; i++) {
    try { s = await Store.open({ indexedDb: name, codecs: [{ pattern: 'places:**', plugin: geo }] }); break; } catch (e) {
      if (e.code !== 'STORE_LOCKED') throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  check((await s.toText('places:berlin')) === 'Berlin Mitte 52.52 13.405', 'after reopen');
  await s.close();
});

await test('the hostile plugin is contained and the store keeps working', async () => {
  const hostile = await loadPlugin(await fetchBytes('hostile'), { memoryBytes: 8 << 20, outputBytes: 1 << 20 });
  const s = await Store.open({ codecs: [{ pattern: 'evil:**', plugin: hostile }] });
  for (const [input, pattern] of [
    ['grow', /memory/], ['panic', /trap|unreachable/i], ['recurse', /stack|trap|recursion/i],
    ['huge:2000000', /output/], ['reject', /rejected on purpose/],
  ]) {
    await rejects(s.putCustom(`evil:${input.replace(':', '-')}`, enc(input)), (e) => e.code === 'CODEC' && pattern.test(e.message), input);
  }
  await s.putCustom('evil:fine', enc('fine'));
  check(dec(await s.getDecoded('evil:fine')) === 'fine', 'fine round trip');
  await s.put('plain:key', 'still works');
  check((await s.get('plain:key')) === 'still works', 'store works');
  await s.close();
});

await test('a looping plugin runs out of fuel in-thread; the store keeps working and loses nothing', async () => {
  const hostile = await loadPlugin(await fetchBytes('hostile'), { fuel: 1_000_000 });
  check(hostile.metered === true, 'metered by default');
  const name = `fuel-${Date.now()}`;
  const s = await Store.open({ indexedDb: name, codecs: [{ pattern: 'evil:**', plugin: hostile }] });
  await s.putCustom('evil:before', enc('before'));
  for (let i = 0; i < 2; i++) {
    const started = performance.now();
    await rejects(s.putCustom('evil:loop', enc('loop')), (e) => e.code === 'CODEC' && /exceeded its fuel budget of 1000000 in encode/.test(e.message), 'loop');
    check(performance.now() - started < 5000, 'out of fuel quickly');
  }
  check(!(await s.exists('evil:loop')), 'the failed put wrote nothing');
  check(dec(await s.getDecoded('evil:before')) === 'before', 'earlier value intact');
  await s.putCustom('evil:after', enc('after'));
  check(dec(await s.getDecoded('evil:after')) === 'after', 'a later put works');
  check(JSON.stringify(await s.keys('evil:*')) === '["evil:after","evil:before"]', 'keys');
  await s.close();
});

await test('the WAT corpus: a looping start function fails the load, every misbehaviour is contained', async () => {
  await rejects(loadPlugin(await fetchBytes('startloop')), (e) => e instanceof PluginLoadError && e.kind === 'instantiate' && /start function exceeded the fuel budget/.test(e.message), 'startloop');
  const loadFailures = { garbage: 'invalid_module', abi2: 'abi_version', noexport: 'missing_export', imports: 'has_imports', bigmem: 'instantiate', wrongtype: 'export_type', badname: 'describe' };
  for (const [name, kind] of Object.entries(loadFailures)) {
    await rejects(loadPlugin(await fetchBytes(name)), (e) => e instanceof PluginLoadError && e.kind === kind, name);
  }
  const callFailures = { loop: /exceeded its fuel budget of 10000000/, grow: /memory/i, badptr: /outside/, trap: /trapped in encode: .*unreachable/i, huge: /output/i, badstatus: /status/ };
  for (const [name, pattern] of Object.entries(callFailures)) {
    const p = await loadPlugin(await fetchBytes(name), { memoryBytes: 4 << 20, outputBytes: 64 << 10 });
    const s = await Store.open({ codecs: [{ pattern: 'k:**', plugin: p }] });
    await s.put('plain:before', 'hello');
    await rejects(s.putCustom('k:x', enc('input')), (e) => e.code === 'CODEC' && pattern.test(e.message), name);
    check((await s.get('plain:before')) === 'hello', `${name}: earlier value`);
    check(!(await s.exists('k:x')), `${name}: nothing written`);
    await s.put('plain:after', 'later');
    check((await s.get('plain:after')) === 'later', `${name}: later put`);
    // decode echoes in every corpus module: the replaced instance works.
    check(dec(p.decode(enc('abc'))) === 'abc', `${name}: usable afterwards`);
    await s.close();
  }
  const echo = await loadPlugin(await fetchBytes('echo'));
  check(dec(echo.encode(enc('hello'))) === 'hello', 'echo');
});

await test('a module that imports something is refused at load', async () => {
  // (module (import "env" "f" (func)))
  const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 2, 9, 1, 3, 101, 110, 118, 1, 102, 0, 0]);
  try { await loadPlugin(bytes); } catch (e) { check(e instanceof PluginLoadError && e.kind === 'has_imports', e.message); return; }
  throw new Error('expected has_imports');
});

log(`\n${passed} passed, ${failed} failed`);
window.__results = failed ? { error: `${failed} failed` } : { passed };
