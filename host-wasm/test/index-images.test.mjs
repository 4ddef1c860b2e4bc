// Index images in directory stores (Node): indexes declared at open come back from the image
// written at the last checkpoint instead of being rebuilt; the log after the checkpoint is
// replayed into them; a damaged or mismatching image means a rebuild with the same results.
// Run: host-wasm/build.sh && node --test host-wasm/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Store } from '../pkg/node.mjs';

const tempDir = () => mkdtempSync(join(tmpdir(), 'statemesh-images-'));

const indexes = [
  { text: { name: 'notes', pattern: 'notes:*', fields: ['title', 'body'] } },
  { value: { name: 'by_tag', pattern: 'notes:*', fields: ['tag'] } },
  { vector: { name: 'emb', pattern: 'notes:*', dimension: 3, metric: 'l2', field: 'v' } },
];

const note = (i, extra = '') => ({
  title: `note ${i} ${extra}`,
  body: i % 2 ? 'storage engines' : 'cooking rice',
  tag: i % 3 === 0 ? 'three' : 'other',
  v: [i, i * 2, 1],
});

/** Writes 30 notes, checkpoints, then writes after the checkpoint (a new note, a changed one, a
 * deleted one) and closes. */
async function populate(dir) {
  const s = await Store.open({ path: dir, indexes });
  for (let i = 0; i < 30; i++) await s.put(`notes:n${i}`, note(i));
  await s.checkpoint();
  await s.put('notes:late', { title: 'zeppelin arrives late', body: 'storage', tag: 'three', v: [100, 200, 1] });
  await s.put('notes:n4', note(4, 'zeppelin'));
  await s.delete('notes:n3');
  await s.close();
}

async function expectSearches(s) {
  const text = (q) => s.searchText('notes', q, { limit: 100 }).then((h) => h.map((x) => x.key).sort());
  assert.deepEqual(await text('zeppelin'), ['notes:late', 'notes:n4']);
  const storage = await text('storage');
  assert.equal(storage.length, 15, storage.join());
  assert.ok(!storage.includes('notes:n3'), 'a deleted key is not returned');
  const three = await s.searchByValue('by_tag', 'three', { field: 'tag' });
  assert.deepEqual(three, ['notes:late', 'notes:n0', 'notes:n12', 'notes:n15', 'notes:n18', 'notes:n21', 'notes:n24', 'notes:n27', 'notes:n6', 'notes:n9']);
  const near = await s.vectorSearch('emb', [3.1, 6.2, 1], { topK: 3 });
  assert.deepEqual(near.map((h) => h.key), ['notes:n4', 'notes:n2', 'notes:n5']);
  const far = await s.vectorSearch('emb', [100, 200, 1], { topK: 1 });
  assert.deepEqual(far.map((h) => h.key), ['notes:late']);
  assert.equal((await s.indexStats('emb')).entries, 30);
}

test('indexes declared at open are restored from the checkpoint image, then follow the log', async () => {
  const dir = tempDir();
  try {
    await populate(dir);
    assert.ok(readdirSync(dir).some((n) => /^index-\d{20}\.img$/.test(n)), 'the checkpoint wrote images');
    const s = await Store.open({ path: dir, indexes });
    for (const name of ['notes', 'by_tag', 'emb']) {
      const stats = await s.indexStats(name);
      assert.equal(stats.restoredFromImage, true, `${name}: ${JSON.stringify(stats)}`);
      assert.equal(stats.backfilled, 0, name);
      assert.equal(stats.imageRejected, undefined, name);
    }
    await expectSearches(s);
    // Writes after the open are indexed as usual.
    await s.put('notes:new', { title: 'zeppelin again', body: '', tag: 'x', v: [0, 0, 0] });
    assert.ok((await s.searchText('notes', 'zeppelin')).some((h) => h.key === 'notes:new'));
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged image file means a rebuild with the same results', async () => {
  const dir = tempDir();
  try {
    await populate(dir);
    const file = readdirSync(dir).find((n) => n.endsWith('.img'));
    assert.ok(file, 'an image file');
    const bytes = readFileSync(join(dir, file));
    bytes[bytes.length - 5] ^= 0x40;
    writeFileSync(join(dir, file), bytes);
    const s = await Store.open({ path: dir, indexes });
    for (const name of ['notes', 'by_tag', 'emb']) {
      const stats = await s.indexStats(name);
      assert.equal(stats.restoredFromImage, false, name);
      assert.ok(stats.backfilled > 0, `${name}: ${JSON.stringify(stats)}`);
    }
    await expectSearches(s);
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an image whose declaration changed is refused, and the reason is reported', async () => {
  const dir = tempDir();
  try {
    await populate(dir);
    const changed = [indexes[0], { value: { name: 'by_tag', pattern: 'notes:*', fields: ['title'] } }, indexes[2]];
    const s = await Store.open({ path: dir, indexes: changed });
    const stats = await s.indexStats('by_tag');
    assert.equal(stats.restoredFromImage, false);
    assert.match(stats.imageRejected, /declaration changed/);
    assert.deepEqual(await s.searchByValue('by_tag', 'zeppelin arrives late', { field: 'title' }), ['notes:late']);
    assert.equal((await s.indexStats('notes')).restoredFromImage, true);
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an index declared after the open uses the image while nothing was written since the checkpoint', async () => {
  const dir = tempDir();
  try {
    const s0 = await Store.open({ path: dir, indexes });
    for (let i = 0; i < 10; i++) await s0.put(`notes:n${i}`, note(i));
    await s0.checkpoint();
    await s0.close();

    const s = await Store.open({ path: dir });
    await s.declareTextIndex(indexes[0].text);
    assert.equal((await s.indexStats('notes')).restoredFromImage, true);
    await s.put('notes:x', note(99, 'zeppelin'));
    // The state moved past the image's revision: a later declaration builds from the keys.
    await s.declareValueIndex(indexes[1].value);
    const stats = await s.indexStats('by_tag');
    assert.equal(stats.restoredFromImage, false);
    assert.equal(stats.backfilled, 11);
    assert.deepEqual((await s.searchText('notes', 'zeppelin')).map((h) => h.key), ['notes:x']);
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('indexes in open options work on memory stores too, and bad declarations are refused', async () => {
  const s = await Store.open({ indexes });
  await s.put('notes:a', note(1));
  assert.equal((await s.indexStats('notes')).entries, 1);
  assert.equal((await s.indexStats('notes')).restoredFromImage, false);
  await assert.rejects(Store.open({ indexes: [{ colour: {} }] }), (e) => e.code === 'INVALID_ARGUMENT');
  await s.close();
});
