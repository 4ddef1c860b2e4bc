// The JavaScript API of the built package (host-wasm/pkg), under Node's test runner.
// Run: host-wasm/build.sh && node --test host-wasm/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { Store, StatemeshError, init } from '../pkg/node.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof StatemeshError, `expected a StatemeshError, got ${e}`);
    assert.ok(e instanceof Error);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

test('init resolves and require() gives the same classes', async () => {
  await init();
  const require = createRequire(import.meta.url);
  const cjs = require('../pkg/node.cjs');
  assert.equal(cjs.Store, Store);
  assert.equal(cjs.StatemeshError, StatemeshError);
});

test('values round-trip with their JavaScript types', async () => {
  const s = await Store.open();
  const cases = [
    ['text', 'hello'],
    ['int', 42],
    ['neg', -7],
    ['float', 1.5],
    ['bool', false],
    ['big', 2n ** 60n],
    ['bytes', new Uint8Array([0, 1, 255])],
    ['json', { role: 'user', parts: ['hi', 2], nested: { ok: true } }],
    ['array', [1, 'two', null]],
    ['null', null],
  ];
  for (const [k, v] of cases) await s.put(`t:${k}`, v);
  for (const [k, v] of cases) assert.deepEqual(await s.get(`t:${k}`), v, k);
  assert.equal(await s.get('t:missing'), undefined);
  const doc = await s.putDocument('t:img', 'image/png', new Uint8Array([137, 80]));
  assert.equal(doc.op, 'create');
  assert.deepEqual(await s.get('t:img'), { contentType: 'image/png', data: new Uint8Array([137, 80]) });
  assert.equal((await s.getMetadata('t:img')).contentType, 'image/png');
  await s.close();
});

test('writes report what they did and move the revision by one', async () => {
  const s = await Store.open();
  const a = await s.put('app:config.theme', 'dark');
  assert.deepEqual(a, { op: 'create', affected: 1, version: 1, revision: 1 });
  const b = await s.put('app:config.theme', 'light');
  assert.deepEqual(b, { op: 'update', affected: 1, version: 2, revision: 2 });
  assert.equal(s.revision, 2);
  const d = await s.delete('app:config.theme');
  assert.equal(d.op, 'delete');
  assert.equal((await s.delete('app:config.theme')).affected, 0);
  assert.equal(await s.exists('app:config.theme'), false);
  await s.close();
});

test('errors are StatemeshErrors with stable codes', async () => {
  const s = await Store.open();
  await rejectsWith(s.put('bad ns:x', 1), 'INVALID_KEY');
  await rejectsWith(s.keys('app:[unclosed'), 'INVALID_PATTERN');
  await s.put('app:name', 'x');
  await rejectsWith(s.increment('app:name'), 'WRONG_TYPE');
  await rejectsWith(s.put('app:name', 'y', { ifVersion: 5 }), 'VERSION_CONFLICT');
  await rejectsWith(s.compareAndSwap('app:name', 'nope', 'z'), 'VALUE_CONFLICT');
  await rejectsWith(s.put('app:v', undefined), 'INVALID_ARGUMENT');
  await rejectsWith(s.put('app:v', 1, { ttlMs: 0 }), 'INVALID_TTL');
  await rejectsWith(s.put('app:v', 1, { bogus: true }), 'INVALID_ARGUMENT');
  // A failed write changes nothing.
  assert.equal(await s.get('app:name'), 'x');
  await s.close();
  await rejectsWith(s.get('app:name'), 'CLOSED');
  await s.close(); // twice is harmless
});

test('versions and compare-and-set', async () => {
  const s = await Store.open();
  const w = await s.put('sessions:u7.cart', '1 item', { ifVersion: 0 });
  await rejectsWith(s.put('sessions:u7.cart', 'again', { ifVersion: 0 }), 'VERSION_CONFLICT');
  const got = await s.getWithVersion('sessions:u7.cart');
  assert.deepEqual(got, { value: '1 item', version: w.version });
  await s.put('sessions:u7.cart', '2 items', { ifVersion: got.version });
  await s.compareAndSwap('sessions:u7.cart', '2 items', '3 items');
  assert.equal(await s.get('sessions:u7.cart'), '3 items');
  await s.compareAndSwap('sessions:u7.new', undefined, 'first');
  assert.equal(await s.get('sessions:u7.new'), 'first');
  assert.equal(await s.increment('stats:hits'), 1);
  assert.equal(await s.increment('stats:hits', 41), 42);
  assert.equal(await s.append('log:line', 'ab'), 2);
  assert.equal(await s.append('log:line', 'cd'), 4);
  assert.equal(await s.get('log:line'), 'abcd');
  await s.close();
});

test('metadata: system fields and user metadata', async () => {
  const s = await Store.open();
  await s.put('doc:a', 'v1', { metadata: { owner: 'ann' } });
  await s.put('doc:a', 'v2', { keepTtl: true });
  let meta = await s.getMetadata('doc:a');
  assert.equal(meta.version, 2);
  assert.equal(meta.createRevision, 1);
  assert.equal(meta.modRevision, 2);
  assert.equal(meta.kind, 'string');
  assert.deepEqual(meta.user, { owner: 'ann' }, 'a put keeps user metadata');
  assert.match(meta.checksum, /^[0-9a-f]{16}$/);
  assert.ok(meta.createdAt <= meta.updatedAt);
  await s.setMetadata('doc:a', { owner: 'bob', tags: ['x'] });
  const rec = await s.getRecord('doc:a');
  assert.equal(rec.key, 'doc:a');
  assert.equal(rec.value, 'v2');
  assert.deepEqual(rec.meta.user, { owner: 'bob', tags: ['x'] });
  meta = await s.getMetadata('doc:missing');
  assert.equal(meta, undefined);
  await s.close();
});

test('TTL: expiry hides keys and the timer emits expire events', async () => {
  const s = await Store.open();
  const sub = s.subscribe('sess:**');
  // Long enough that the checks below run before it expires, even on a loaded machine.
  await s.put('sess:tok', 'abc', { ttlMs: 1000 });
  await s.put('sess:keep', 'x');
  const ttl = await s.getTtl('sess:tok');
  assert.ok(ttl > 0 && ttl <= 1000, `ttl ${ttl}`);
  assert.equal(await s.getTtl('sess:keep'), null);
  assert.equal(await s.getTtl('sess:nothing'), undefined);
  await s.setTtl('sess:keep', 10_000);
  assert.ok((await s.getTtl('sess:keep')) > 9_000);
  await s.removeTtl('sess:keep');
  assert.equal(await s.getTtl('sess:keep'), null);
  const kinds = [];
  for await (const e of sub) {
    kinds.push(`${e.kind} ${e.key}`);
    if (e.kind === 'expire') break;
  }
  assert.deepEqual(kinds, [
    'create sess:tok', 'create sess:keep', 'metadata sess:keep', 'metadata sess:keep',
    'expire sess:tok',
  ]);
  assert.equal(await s.get('sess:tok'), undefined);
  await s.close();
});

test('patterns, multi operations and paged scans', async () => {
  const s = await Store.open();
  const items = [];
  for (let i = 0; i < 25; i++) items.push([`chat:conv.1.msg.${String(i).padStart(3, '0')}`, { i }]);
  items.push({ key: 'chat:conv.2.msg.000', value: 'other' });
  const r = await s.multiPut(items);
  assert.equal(r.op, 'batch');
  assert.equal(r.revision, 1, 'one revision for the whole batch');
  assert.deepEqual(await s.multiGet(['chat:conv.1.msg.003', 'chat:nope']), [{ i: 3 }, undefined]);
  assert.equal((await s.keys('chat:conv.*.msg.000')).length, 2);
  assert.deepEqual(await s.getPattern('chat:conv.2.**'), [{ key: 'chat:conv.2.msg.000', value: 'other' }]);

  const seen = [];
  let cursor;
  do {
    const page = await s.scan('chat:conv.1.', { limit: 10, cursor });
    seen.push(...page.items.map((e) => e.key));
    cursor = page.next;
  } while (cursor);
  assert.equal(seen.length, 25);
  assert.deepEqual(seen, [...seen].sort());

  const streamed = [];
  for await (const { key, value } of s.iterate('chat:conv.1.', { batch: 7 })) {
    streamed.push(key);
    assert.equal(typeof value.i, 'number');
  }
  assert.deepEqual(streamed, seen);
  for await (const _ of s.iterate('chat:')) break; // early exit is fine

  assert.equal((await s.deletePattern('chat:conv.1.**')).affected, 25);
  assert.equal((await s.multiDelete(['chat:conv.2.msg.000', 'chat:gone'])).affected, 1);
  assert.equal(s.size, 0);
  await s.close();
});

test('compare-then-else transactions', async () => {
  const s = await Store.open();
  await s.put('acct:a', 100);
  const ok = await s.txn({
    compare: [{ key: 'acct:a', value: 100 }, { key: 'acct:b', exists: false }],
    success: [{ op: 'put', key: 'acct:a', value: 70 }, { op: 'put', key: 'acct:b', value: 30 }, { op: 'get', key: 'acct:a' }],
    failure: [{ op: 'get', key: 'acct:a' }],
  });
  assert.equal(ok.succeeded, true);
  assert.deepEqual(ok.results[0], { version: 2 });
  assert.equal(ok.results[2].value, 70);
  const no = await s.txn({
    compare: [{ key: 'acct:a', op: '>', value: 100 }],
    success: [{ op: 'delete', key: 'acct:a' }],
    failure: [{ op: 'get', key: 'acct:b' }],
  });
  assert.equal(no.succeeded, false);
  assert.equal(no.results[0].value, 30);
  assert.equal(await s.get('acct:a'), 70);
  await rejectsWith(s.txn({ compare: [{ key: 'acct:a' }] }), 'INVALID_ARGUMENT');
  await s.close();
});

test('interactive transactions: snapshot reads, conflicts, rollback', async () => {
  const s = await Store.open();
  await s.put('inv:widgets', 5);
  const t = await s.begin();
  assert.equal(await t.get('inv:widgets'), 5);
  await t.put('inv:widgets', 4);
  assert.equal(await t.get('inv:widgets'), 4, 'sees its own write');
  assert.equal(await s.get('inv:widgets'), 5, 'others do not');
  await s.put('inv:widgets', 9); // a concurrent writer
  await rejectsWith(t.commit(), 'TXN_CONFLICT');

  const t2 = await s.begin({ isolation: 'snapshot' });
  await t2.put('inv:gadgets', 1);
  const w = await t2.commit();
  assert.equal(w.affected, 1);
  assert.equal(await s.get('inv:gadgets'), 1);

  const t3 = await s.begin();
  await t3.delete('inv:gadgets');
  await t3.rollback();
  assert.equal(await s.get('inv:gadgets'), 1);
  await rejectsWith(t3.commit(), 'TXN_NOT_FOUND');
  await s.close();
});

test('change feed: pattern subscriptions and replay from a revision', async () => {
  const s = await Store.open();
  await s.put('chat:c1.m1', 'one');
  await s.put('other:x', 1);
  const live = s.subscribe('chat:**');
  const replay = s.changes({ since: 0, pattern: 'chat:*.*' });
  await s.put('chat:c1.m2', 'two');
  await s.put('other:y', 2);
  await s.put('chat:c1.m1', 'uno');

  const first = await live.next();
  assert.equal(first.done, false);
  assert.deepEqual(
    { ...first.value, at: 0 },
    { revision: 3, at: 0, key: 'chat:c1.m2', kind: 'create', version: 1, oldVersion: 0, value: 'two', oldValue: undefined },
  );
  const second = (await live.next()).value;
  assert.equal(second.kind, 'update');
  assert.equal(second.oldValue, 'one');
  assert.equal(second.value, 'uno');

  const replayed = [];
  for await (const e of replay) {
    replayed.push(`${e.revision}:${e.key}`);
    if (replayed.length === 3) break;
  }
  assert.deepEqual(replayed, ['1:chat:c1.m1', '3:chat:c1.m2', '5:chat:c1.m1']);
  live.close();
  assert.deepEqual(await live.next(), { value: undefined, done: true });

  const history = await s.keyHistory('chat:c1.m1');
  assert.deepEqual(history.map((v) => [v.revision, v.value]), [[1, 'one'], [5, 'uno']]);
  assert.deepEqual(await s.getAt('chat:c1.m1', 4), { value: 'one', version: 1, modRevision: 1 });
  assert.equal((await s.changesSince(3)).length, 2);
  await s.compact(3);
  await rejectsWith(s.getAt('chat:c1.m1', 1), 'COMPACTED');
  await s.close();
});

test('a slow subscriber gets LAGGED with the count, then goes on', async () => {
  const s = await Store.open({ eventCapacity: 2 });
  const sub = s.subscribe();
  for (let i = 0; i < 5; i++) await s.put(`k:${i}`, i);
  await assert.rejects(sub.next(), (e) => e.code === 'LAGGED' && e.missed === 3);
  assert.equal((await sub.next()).value.key, 'k:0');
  await s.close();
  assert.equal((await sub.next()).value.key, 'k:1');
  assert.equal((await sub.next()).done, true, 'closing the store ends the feed');
});

test('JSON patches', async () => {
  const s = await Store.open();
  await s.put('cfg:a', { theme: 'dark', size: 1 });
  await s.mergePatch('cfg:a', { size: null, lang: 'en' });
  assert.deepEqual(await s.get('cfg:a'), { theme: 'dark', lang: 'en' });
  await s.jsonPatch('cfg:a', [{ op: 'replace', path: '/theme', value: 'light' }]);
  assert.equal((await s.get('cfg:a')).theme, 'light');
  await rejectsWith(s.jsonPatch('cfg:a', [{ op: 'remove', path: '/nope' }]), 'PATCH_FAILED');
  await s.close();
});

test('snapshots restore into a new store', async () => {
  const s = await Store.open({ separator: '/' });
  await s.put('app:a/b', 1);
  const bytes = await s.snapshot();
  assert.ok(bytes instanceof Uint8Array);
  const t = await Store.fromSnapshot(bytes, { separator: '/' });
  assert.equal(await t.get('app:a/b'), 1);
  assert.equal(t.revision, 1);
  await assert.rejects(Store.fromSnapshot(new Uint8Array([9, 9, 9])), (e) => e.code === 'FORMAT');
  await s.close();
  await t.close();
});

test('an absolute expiry is kept exactly; namespaces lists the ones holding keys', async () => {
  const s = await Store.open();
  const at = Date.now() + 60_000;
  await s.put('sessions:a', 'x', { expiresAt: at });
  assert.equal((await s.getRecord('sessions:a')).meta.expiresAt, at);
  // It wins over a relative TTL, and a time already past is refused.
  await s.put('sessions:b', 'y', { expiresAt: at, ttlMs: 5 });
  assert.equal((await s.getRecord('sessions:b')).meta.expiresAt, at);
  await rejectsWith(s.put('sessions:c', 'z', { expiresAt: Date.now() - 1 }), 'INVALID_TTL');
  assert.equal(await s.get('sessions:c'), undefined);
  await s.put('chat:m', 1);
  await s.put('plain', 2);
  assert.deepEqual(await s.namespaces(), ['chat', 'default', 'sessions']);
  await s.close();
});
