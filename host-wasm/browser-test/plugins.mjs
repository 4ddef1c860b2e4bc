// Codec plugins in Chromium through the built package: the geo.point plugin and the hostile
// Rust plugin (host-wasm/browser-test/run.sh copies them to pkg/test-plugins/). The same checks
// as test/codecs.test.mjs under Node, here on the browser's WebAssembly engine and IndexedDB.
import init, { Store } from '../pkg/browser.js';
import { loadPlugin, PluginLoadError } from '../pkg/plugins/loader.mjs';

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

await test('a module that imports something is refused at load', async () => {
  // (module (import "env" "f" (func)))
  const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 2, 9, 1, 3, 101, 110, 118, 1, 102, 0, 0]);
  try { await loadPlugin(bytes); } catch (e) { check(e instanceof PluginLoadError && e.kind === 'has_imports', e.message); return; }
  throw new Error('expected has_imports');
});

log(`\n${passed} passed, ${failed} failed`);
window.__results = failed ? { error: `${failed} failed` } : { passed };
