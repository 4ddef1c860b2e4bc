// Codec plugins through the npm package: the loader (statemesh/plugins) and the store's codec
// registry, with the guest SDK's geo.point and the hostile Rust plugin. STATEMESH_GUEST_DIR is
// the guest workspace's release output (tests/run builds it); STATEMESH_PLUGIN_CORPUS the WAT
// corpus as .wasm (`cargo run -p statemesh-wasmtime --example plugin_corpus -- DIR`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Store } from '../pkg/node.mjs';
import { loadPlugin, PluginLoadError } from '../pkg/plugins/node.mjs';

const guestDir = process.env.STATEMESH_GUEST_DIR;
const skip = !guestDir && 'set STATEMESH_GUEST_DIR to the built guest plugins (tests/run does)';
const corpusDir = process.env.STATEMESH_PLUGIN_CORPUS;
const skipCorpus = !corpusDir && 'set STATEMESH_PLUGIN_CORPUS to the WAT corpus as .wasm (tests/run does)';
const plugin = (name, limits) => loadPlugin(readFileSync(join(guestDir, `${name}.wasm`)), limits);
const enc = (s) => new TextEncoder().encode(s);
const dec = (b) => new TextDecoder().decode(b);

test('a plugin codec owns its keys: encode on put, validate, decode, text and JSON views', { skip }, async () => {
  const geo = await plugin('geo_point');
  const s = await Store.open({ codecs: [{ pattern: 'places:**', plugin: geo }] });
  const w = await s.putCustom('places:berlin', enc('52.52, 13.405, Berlin Mitte'));
  assert.equal(w.op, 'create');
  assert.equal(dec(await s.getDecoded('places:berlin')), '52.52,13.405,Berlin Mitte');
  assert.deepEqual(await s.toJson('places:berlin'), { lat: 52.52, lon: 13.405, label: 'Berlin Mitte' });
  assert.equal(await s.toText('places:berlin'), 'Berlin Mitte 52.52 13.405');
  assert.deepEqual(await s.get('places:berlin'), { codec: 'geo.point', data: (await s.get('places:berlin')).data });
  await assert.rejects(s.putCustom('places:nowhere', enc('91,0,Nowhere')), (e) => e.code === 'CODEC' && /latitude/.test(e.message));
  await assert.rejects(s.putCustom('other:x', enc('1,2,x')), (e) => e.code === 'INVALID_ARGUMENT');
  assert.equal(await s.exists('places:nowhere'), false, 'a refused put changes nothing');
  await s.close();
});

test('a hostile plugin gets clear errors and the store keeps working', { skip }, async () => {
  const hostile = await plugin('hostile', { memoryBytes: 8 << 20, outputBytes: 1 << 20 });
  const s = await Store.open({ codecs: [{ pattern: 'evil:**', plugin: hostile }] });
  for (const [input, pattern] of [
    ['grow', /memory/], ['panic', /trap|unreachable/i], ['recurse', /stack|trap/i],
    ['huge:2000000', /output/], ['reject', /rejected on purpose/],
  ]) {
    await assert.rejects(s.putCustom(`evil:${input.replace(':', '-')}`, enc(input)),
      (e) => e.code === 'CODEC' && pattern.test(e.message), input);
  }
  await s.putCustom('evil:fine', enc('fine'));
  assert.equal(dec(await s.getDecoded('evil:fine')), 'fine');
  await s.put('plain:key', 'still works');
  assert.equal(await s.get('plain:key'), 'still works');
  assert.deepEqual(await s.keys('evil:*'), ['evil:fine']);
  await s.close();
});

test('a looping plugin runs out of fuel through the store, which loses nothing', { skip }, async () => {
  const hostile = await plugin('hostile', { fuel: 1_000_000 });
  assert.equal(hostile.metered, true, 'statemesh/plugins meters every plugin');
  const s = await Store.open({ codecs: [{ pattern: 'evil:**', plugin: hostile }] });
  await s.putCustom('evil:before', enc('before'));
  const rev = (await s.getMetadata('evil:before'))?.modRevision;
  for (let i = 0; i < 2; i++) {
    await assert.rejects(s.putCustom('evil:loop', enc('loop')), (e) => e.code === 'CODEC' && /exceeded its fuel budget of 1000000 in encode/.test(e.message), 'loop');
  }
  assert.equal(await s.exists('evil:loop'), false, 'the failed put wrote nothing');
  assert.equal(dec(await s.getDecoded('evil:before')), 'before');
  assert.equal((await s.getMetadata('evil:before'))?.modRevision, rev);
  await s.putCustom('evil:after', enc('after'));
  assert.equal(dec(await s.getDecoded('evil:after')), 'after');
  assert.deepEqual(await s.keys('evil:*'), ['evil:after', 'evil:before']);
  await s.close();
});

test('the hostile WAT corpus through the metered loader and the store', { skip: skipCorpus }, async () => {
  const wasm = (name) => readFileSync(join(corpusDir, `${name}.wasm`));
  await assert.rejects(loadPlugin(wasm('startloop')), (e) => e instanceof PluginLoadError && e.kind === 'instantiate' && /fuel/.test(e.message));
  for (const [name, kind] of Object.entries({ garbage: 'invalid_module', abi2: 'abi_version', noexport: 'missing_export', imports: 'has_imports', bigmem: 'instantiate', wrongtype: 'export_type', badname: 'describe' })) {
    await assert.rejects(loadPlugin(wasm(name)), (e) => e instanceof PluginLoadError && e.kind === kind, name);
  }
  const cases = { loop: /exceeded its fuel budget of 10000000/, grow: /memory/i, badptr: /outside/, trap: /trapped in encode: .*unreachable/i, huge: /output/i, badstatus: /status/ };
  for (const [name, pattern] of Object.entries(cases)) {
    const p = await loadPlugin(wasm(name), { memoryBytes: 4 << 20, outputBytes: 64 << 10 });
    const st = await Store.open({ codecs: [{ pattern: 'k:**', plugin: p }] });
    // Each of these misbehaves in encode (decode echoes): plain keys show that nothing is lost.
    await st.put('plain:before', 'hello');
    await assert.rejects(st.putCustom('k:x', enc('input')), (e) => e.code === 'CODEC' && pattern.test(e.message), name);
    assert.equal(await st.get('plain:before'), 'hello', name);
    assert.equal(await st.exists('k:x'), false, name);
    await st.put('plain:after', 'later');
    assert.deepEqual(await st.keys('plain:*'), ['plain:after', 'plain:before'], name);
    await st.close();
  }
});

test('a non-plugin in codecs is refused at open', async () => {
  await assert.rejects(Store.open({ codecs: [{ pattern: 'a:**', plugin: {} }] }), (e) => e.code === 'INVALID_ARGUMENT');
});
