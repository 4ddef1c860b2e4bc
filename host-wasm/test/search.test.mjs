// Search from JavaScript: declarations, text / value / vector searches, and their errors.
// Run: host-wasm/build.sh && node --test host-wasm/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Store, StatemeshError } from '../pkg/node.mjs';

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof StatemeshError, `expected a StatemeshError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

test('text search ranks, filters, follows deletes and rejects bad queries', async () => {
  const s = await Store.open();
  await s.put('notes:a', { title: 'Rust storage engines', body: 'write-ahead logs and snapshots' });
  await s.put('notes:b', { title: 'Cooking', body: 'a storage jar for rice' });
  await s.put('notes:c', { title: 'Storage, storage, storage', body: 'engines' });
  await s.put('other:x', { title: 'storage elsewhere', body: '' });
  await s.declareTextIndex({ name: 'notes', pattern: 'notes:*', fields: ['title', 'body'] });

  const hits = await s.searchText('notes', 'storage');
  assert.deepEqual(hits.map((h) => h.key).sort(), ['notes:a', 'notes:b', 'notes:c']);
  assert.deepEqual((await s.searchText('notes', 'rice')).map((h) => h.key), ['notes:b']);
  assert.deepEqual((await s.searchText('notes', '"storage jar"')).map((h) => h.key), ['notes:b']);
  assert.deepEqual((await s.searchText('notes', 'storage AND engines')).map((h) => h.key).sort(), ['notes:a', 'notes:c']);
  assert.ok(hits.every((h, i) => i === 0 || hits[i - 1].score >= h.score));

  // Stemming (english by default): "engine" finds "engines".
  assert.deepEqual((await s.searchText('notes', 'title:engine')).map((h) => h.key), ['notes:a']);
  assert.deepEqual((await s.searchText('notes', 'storage', { limit: 1 })).length, 1);
  assert.deepEqual(
    (await s.searchText('notes', 'storage', { filter: 'notes:{a,b}' })).map((h) => h.key).sort(),
    ['notes:a', 'notes:b'],
  );

  await s.delete('notes:c');
  assert.ok(!(await s.searchText('notes', 'storage')).some((h) => h.key === 'notes:c'));
  assert.equal((await s.indexStats('notes')).entries, 2);

  await rejectsWith(s.searchText('notes', 'title:(unclosed'), 'MALFORMED_QUERY');
  await rejectsWith(s.searchText('nope', 'x'), 'UNKNOWN_INDEX');
  await rejectsWith(s.searchText('notes', 'storage', { limit: 0 }), 'INVALID_ARGUMENT');
  await rejectsWith(s.declareTextIndex({ name: 'notes', pattern: 'notes:*' }), 'DUPLICATE_INDEX');
  await rejectsWith(s.declareTextIndex({ name: 'n2', pattern: 'notes:*', language: 'klingon' }), 'INVALID_ARGUMENT');
  await rejectsWith(s.declareTextIndex({ name: 'n3', pattern: 'notes:*', colour: 'red' }), 'INVALID_ARGUMENT');
  assert.equal(await s.dropIndex('notes'), true);
  assert.equal(await s.dropIndex('notes'), false);
  assert.equal(await s.indexStats('notes'), undefined);
  await s.close();
});

test('value search finds exact matches by field', async () => {
  const s = await Store.open();
  await s.declareValueIndex({ name: 'by_user', pattern: 'sessions:*', fields: ['user'] });
  await s.put('sessions:1', { user: 'ann', n: 1 });
  await s.put('sessions:2', { user: 'bob', n: 2 });
  await s.put('sessions:3', { user: 'ann', n: 3 });
  assert.deepEqual(await s.searchByValue('by_user', 'ann', { field: 'user' }), ['sessions:1', 'sessions:3']);
  await s.put('sessions:1', { user: 'cy' });
  assert.deepEqual(await s.searchByValue('by_user', 'ann', { field: 'user' }), ['sessions:3']);
  assert.deepEqual(await s.searchByValue('by_user', 'cy', { field: 'user' }), ['sessions:1']);
  await rejectsWith(s.searchByValue('by_user', new Uint8Array([1])), 'INVALID_ARGUMENT');
  await s.close();
});

test('vector search: nearest first, addVector, dimension errors, expiry', async () => {
  const s = await Store.open();
  await s.declareVectorIndex({ name: 'emb', pattern: 'mem:*', dimension: 3, metric: 'l2' });
  await s.addVector('emb', 'mem:a', [0, 0, 0]);
  await s.addVector('emb', 'mem:b', new Float32Array([1, 0, 0]));
  await s.put('mem:c', [5, 5, 5]);
  await s.put('mem:gone', [0.1, 0, 0], { ttlMs: 1 });
  await new Promise((r) => setTimeout(r, 5));

  const hits = await s.vectorSearch('emb', [0.2, 0, 0], { topK: 3 });
  assert.deepEqual(hits.map((h) => h.key), ['mem:a', 'mem:b', 'mem:c']);
  assert.ok(Math.abs(hits[0].distance - 0.2) < 1e-6, `${hits[0].distance}`);
  assert.deepEqual((await s.vectorSearch('emb', [5, 5, 5], { topK: 1 })).map((h) => h.key), ['mem:c']);

  await rejectsWith(s.vectorSearch('emb', [1, 2]), 'DIMENSION_MISMATCH');
  await rejectsWith(s.addVector('emb', 'mem:d', [1, 2, 3, 4]), 'DIMENSION_MISMATCH');
  await rejectsWith(s.addVector('emb', 'other:d', [1, 2, 3]), 'KEY_OUTSIDE_INDEX');
  await rejectsWith(s.vectorSearch('emb', 'not a vector'), 'INVALID_ARGUMENT');
  await rejectsWith(s.declareVectorIndex({ name: 'v2', pattern: 'mem:*', dimension: 3, metric: 'manhattan' }), 'INVALID_ARGUMENT');
  await s.close();
  await rejectsWith(s.declareValueIndex({ name: 'late', pattern: 'mem:*' }), 'CLOSED');
});
