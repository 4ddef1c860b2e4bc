// Node persistence: a store in a directory, in the native file adapter's format.
// The interop cases run the native tool `statemesh-interop` (tests/interop): set
// STATEMESH_INTEROP_BIN to its binary, or they build it with cargo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Store } from '../pkg/node.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tempDir = () => mkdtempSync(join(tmpdir(), 'statemesh-node-'));

function native(...args) {
  const bin = process.env.STATEMESH_INTEROP_BIN;
  const out = bin
    ? execFileSync(bin, args, { encoding: 'utf8' })
    : execFileSync('cargo', ['run', '-q', '--locked', '-p', 'statemesh-interop', '--', ...args], {
      cwd: root, encoding: 'utf8',
    });
  return out.trim().split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

test('a directory store survives close and reopen, TTL and metadata included', async () => {
  const dir = tempDir();
  try {
    let s = await Store.open({ path: dir });
    await s.put('chat:c1.m1', { role: 'user', text: 'hi' });
    await s.put('sess:tok', 'abc', { ttlMs: 3_600_000, metadata: { device: 'phone' } });
    await s.increment('stats:n', 3);
    await s.put('tmp:x', 1);
    await s.delete('tmp:x');
    assert.equal(s.revision, 5);
    await s.close();
    assert.ok(readdirSync(dir).some((n) => /^wal-\d{20}\.log$/.test(n)), readdirSync(dir).join());

    s = await Store.open({ path: dir });
    assert.equal(s.revision, 5);
    assert.deepEqual(await s.get('chat:c1.m1'), { role: 'user', text: 'hi' });
    assert.ok((await s.getTtl('sess:tok')) > 3_500_000);
    assert.deepEqual((await s.getMetadata('sess:tok')).user, { device: 'phone' });
    assert.equal(await s.get('stats:n'), 3);
    assert.equal(await s.exists('tmp:x'), false);
    assert.deepEqual(s.recoveryRepairs, []);
    // A checkpoint writes a snapshot and drops the log it covers; reopening still sees it all.
    await s.checkpoint();
    assert.ok(readdirSync(dir).some((n) => /^snapshot-\d{20}\.snap$/.test(n)));
    await s.put('chat:c1.m2', 'after the snapshot');
    await s.close();

    s = await Store.open({ path: dir });
    assert.equal(await s.get('chat:c1.m2'), 'after the snapshot');
    assert.equal(await s.get('stats:n'), 3);
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a second opener of the same directory gets STORE_LOCKED, and can open after close', async () => {
  const dir = tempDir();
  try {
    const a = await Store.open({ path: dir });
    await assert.rejects(Store.open({ path: dir }), (e) => e.code === 'STORE_LOCKED');
    await a.close();
    const b = await Store.open({ path: dir });
    await b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a torn log tail is truncated and reported; damage before the tail is an error', async () => {
  const dir = tempDir();
  try {
    let s = await Store.open({ path: dir });
    await s.put('k:a', 'first');
    await s.put('k:b', 'second');
    await s.close();
    const wal = join(dir, readdirSync(dir).find((n) => n.startsWith('wal-')));
    const bytes = readFileSync(wal);
    writeFileSync(wal, bytes.subarray(0, bytes.length - 3)); // a crash mid-append
    s = await Store.open({ path: dir });
    assert.equal(await s.get('k:a'), 'first');
    assert.equal(await s.get('k:b'), undefined);
    assert.equal(s.recoveryRepairs.length, 1);
    await s.put('k:c', 'third');
    await s.close();

    const again = readFileSync(wal);
    again[16 + 20] ^= 0xff; // inside the first frame's payload, valid frames follow
    writeFileSync(wal, again);
    await assert.rejects(Store.open({ path: dir }), (e) => e.code === 'STORAGE_CORRUPT');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('AP stores acknowledge first and persist on flush', async () => {
  const dir = tempDir();
  try {
    const s = await Store.open({ path: dir, durability: 'ap' });
    const writes = [];
    for (let i = 0; i < 100; i++) writes.push(s.put(`ap:${i}`, i));
    await Promise.all(writes);
    await s.flush();
    await s.close();
    const t = await Store.open({ path: dir });
    assert.equal((await t.keys('ap:*')).length, 100);
    await t.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a store written by Node opens natively', async () => {
  const dir = tempDir();
  try {
    const s = await Store.open({ path: dir, checkpointEvery: 3 });
    await s.put('node:text', 'hello from node');
    await s.put('node:int', 7);
    await s.put('node:json', { list: [1, 'a'], nested: { x: true } });
    await s.put('node:bytes', new Uint8Array([9, 8, 7]));
    await s.put('node:meta', 'm', { metadata: { owner: 'node' }, ttlMs: 3_600_000 });
    await s.increment('node:int', 1);
    await s.close();
    assert.ok(readdirSync(dir).some((n) => n.startsWith('snapshot-')), 'a checkpoint ran');

    const dumped = native('dump', dir);
    assert.deepEqual(dumped.at(-1), { revision: 6 });
    const byKey = Object.fromEntries(dumped.slice(0, -1).map((l) => [l.key, l]));
    assert.equal(byKey['node:text'].value, 'hello from node');
    assert.equal(byKey['node:int'].value, 8);
    assert.equal(byKey['node:int'].version, 2);
    assert.deepEqual(byKey['node:json'].value, { list: [1, 'a'], nested: { x: true } });
    assert.deepEqual(byKey['node:bytes'].value, { bytes: [9, 8, 7] });
    assert.deepEqual(byKey['node:meta'].user, { owner: 'node' });
    assert.equal(byKey['node:meta'].ttl, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a store written natively opens in Node, and Node can go on writing it', async () => {
  const dir = tempDir();
  try {
    native('write', dir);
    const s = await Store.open({ path: dir });
    assert.equal(await s.get('native:greeting'), 'hello from rust');
    assert.equal(await s.get('native:count'), 42);
    assert.deepEqual(await s.get('native:doc'), { a: [1, 2], b: null });
    assert.deepEqual(await s.get('native:bytes'), new Uint8Array([0, 1, 2, 255]));
    assert.deepEqual((await s.getMetadata('native:meta')).user, { owner: 'rust' });
    assert.equal(await s.exists('native:gone'), false);
    const revision = s.revision;
    await s.put('native:from-node', 'appended by node');
    await s.close();

    const dumped = native('dump', dir);
    assert.deepEqual(dumped.at(-1), { revision: revision + 1 });
    assert.ok(dumped.some((l) => l.key === 'native:from-node' && l.value === 'appended by node'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writes issued while automatic checkpoints run all resolve and all persist', async () => {
  for (const durability of ['cp', 'ap']) {
    const dir = tempDir();
    try {
      const s = await Store.open({ path: dir, durability, checkpointEvery: 5 });
      const writes = [];
      for (let i = 0; i < 60; i++) writes.push(s.put(`many:${String(i).padStart(2, '0')}`, i));
      const results = await Promise.all(writes);
      assert.deepEqual(results.map((r) => r.revision), Array.from({ length: 60 }, (_, i) => i + 1));
      await s.close();
      assert.ok(readdirSync(dir).some((n) => n.startsWith('snapshot-')), durability);
      const t = await Store.open({ path: dir });
      assert.equal((await t.keys('many:*')).length, 60, durability);
      assert.equal(t.revision, 60);
      await t.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
