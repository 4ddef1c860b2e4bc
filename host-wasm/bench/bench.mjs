// statemesh on IndexedDB next to raw IndexedDB and Dexie 4, on the same records, in one page.
// Run it with host-wasm/bench/run.sh (headless Chromium); results land in <pre id="out"> and in
// window.__results.
import init, { Store } from '../pkg/browser.js';
import Dexie from '../node_modules/dexie/dist/dexie.mjs';

// `?quick` runs the same code on little data: tests/run uses it as a smoke test of the package in
// Chromium (ESM without a bundler, init(), IndexedDB).
const quick = new URLSearchParams(location.search).has('quick');
const N = quick ? 500 : 10_000;        // bulk records
const SERIAL = quick ? 20 : 300;       // serial durable puts
const GETS = quick ? 500 : 10_000;     // point reads
const SCANS = quick ? 5 : 50;          // prefix scans (1,000 keys each at full size)
const out = document.getElementById('out');
const lines = [];
const log = (s) => { lines.push(s); out.textContent = lines.join('\n'); };

const key = (i) => `bench:item.${String(i).padStart(6, '0')}`;
// ~100-byte values, the same strings for every contender.
const value = (i) => `record ${i} `.padEnd(100, 'x');
const records = Array.from({ length: N }, (_, i) => [key(i), value(i)]);
const fresh = (tag) => `${tag}-${Date.now()}-${Math.random()}`;

function idbRequest(r) {
  return new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
}
function idbDone(tx) {
  return new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onerror = () => reject(tx.error); tx.onabort = () => reject(tx.error); });
}
async function rawOpen(name) {
  const r = indexedDB.open(name, 1);
  r.onupgradeneeded = () => r.result.createObjectStore('kv');
  return idbRequest(r);
}

async function timed(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

// Median of `runs` timings of a fresh run each (setup excluded).
async function median(runs, setup, fn) {
  const times = [];
  for (let r = 0; r < runs; r++) {
    const ctx = await setup();
    times.push(await timed(() => fn(ctx)));
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const rate = (n, ms) => n / (ms / 1000);
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toPrecision(3));

async function main() {
  await init();
  const results = {};
  const row = (name, sm, raw, dexie, n) => {
    const r = { statemesh: rate(n, sm), raw: rate(n, raw), dexie: rate(n, dexie) };
    results[name] = { ...r, vsRaw: r.statemesh / r.raw, vsDexie: r.statemesh / r.dexie };
    log(`${name.padEnd(34)} statemesh ${fmt(r.statemesh).padStart(8)}/s  raw IDB ${fmt(r.raw).padStart(8)}/s  Dexie ${fmt(r.dexie).padStart(8)}/s  ` +
      `x raw ${results[name].vsRaw.toFixed(2)}  x Dexie ${results[name].vsDexie.toFixed(2)}`);
  };

  for (const durability of ['strict', 'relaxed']) {
    const relaxed = durability === 'relaxed';
    log(`\n== durability: ${durability} (statemesh relaxedDurability: ${relaxed}; raw IDB and Dexie the same)`);
    // Bulk insert: statemesh multiPut (one revision, one IDB transaction), raw IDB one readwrite
    // transaction, Dexie bulkPut.
    const smBulk = await median(3, async () => Store.open({ indexedDb: fresh('sm'), relaxedDurability: relaxed }),
      async (s) => { await s.multiPut(records); await s.close(); });
    const rawBulk = await median(3, async () => rawOpen(fresh('raw')), async (db) => {
      const tx = db.transaction('kv', 'readwrite', { durability });
      const kv = tx.objectStore('kv');
      for (const [k, v] of records) kv.put(v, k);
      await idbDone(tx);
      db.close();
    });
    const dexieBulk = await median(3, async () => {
      const db = new Dexie(fresh('dexie'), { chromeTransactionDurability: durability });
      db.version(1).stores({ kv: '' });
      await db.open();
      return db;
    }, async (db) => { await db.table('kv').bulkPut(records.map(([, v]) => v), records.map(([k]) => k)); db.close(); });
    row(`bulk insert ${N} x 100 B`, smBulk, rawBulk, dexieBulk, N);

    // Serial durable puts: each awaited before the next.
    const smSerial = await median(1, async () => Store.open({ indexedDb: fresh('sm'), relaxedDurability: relaxed }),
      async (s) => { for (let i = 0; i < SERIAL; i++) await s.put(key(i), value(i)); await s.close(); });
    const rawSerial = await median(1, async () => rawOpen(fresh('raw')), async (db) => {
      for (let i = 0; i < SERIAL; i++) {
        const tx = db.transaction('kv', 'readwrite', { durability });
        tx.objectStore('kv').put(value(i), key(i));
        await idbDone(tx);
      }
      db.close();
    });
    const dexieSerial = await median(1, async () => {
      const db = new Dexie(fresh('dexie'), { chromeTransactionDurability: durability });
      db.version(1).stores({ kv: '' });
      await db.open();
      return db;
    }, async (db) => { for (let i = 0; i < SERIAL; i++) await db.table('kv').put(value(i), key(i)); db.close(); });
    row(`serial durable puts (${SERIAL})`, smSerial, rawSerial, dexieSerial, SERIAL);
  }

  // Reads on a loaded store of N records (statemesh serves them from memory; IDB from disk).
  log('\n== reads of the same 10,000 records');
  const sm = await Store.open({ indexedDb: fresh('sm') });
  await sm.multiPut(records);
  const raw = await rawOpen(fresh('raw'));
  { const tx = raw.transaction('kv', 'readwrite'); for (const [k, v] of records) tx.objectStore('kv').put(v, k); await idbDone(tx); }
  const dexie = new Dexie(fresh('dexie'));
  dexie.version(1).stores({ kv: '' });
  await dexie.table('kv').bulkPut(records.map(([, v]) => v), records.map(([k]) => k));
  const order = Array.from({ length: GETS }, (_, i) => key((i * 7919) % N));

  const smGet = await timed(async () => { for (const k of order) if ((await sm.get(k)) === undefined) throw new Error(k); });
  const rawGet = await timed(async () => {
    for (const k of order) {
      const v = await idbRequest(raw.transaction('kv').objectStore('kv').get(k));
      if (v === undefined) throw new Error(k);
    }
  });
  const dexieGet = await timed(async () => { for (const k of order) if ((await dexie.table('kv').get(k)) === undefined) throw new Error(k); });
  row(`get by key (${GETS}, awaited one by one)`, smGet, rawGet, dexieGet, GETS);

  const prefixes = Array.from({ length: SCANS }, (_, i) => `bench:item.00${i % 10}`);
  const expected = (p) => records.filter(([k]) => k.startsWith(p)).length;
  const smScan = await timed(async () => {
    for (const p of prefixes) { const page = await sm.scan(p, { limit: 2000 }); if (page.items.length !== expected(p)) throw new Error(p); }
  });
  const rawScan = await timed(async () => {
    for (const p of prefixes) {
      const range = IDBKeyRange.bound(p, `${p}\uffff`);
      const tx = raw.transaction('kv');
      const [keys, values] = await Promise.all([idbRequest(tx.objectStore('kv').getAllKeys(range)), idbRequest(tx.objectStore('kv').getAll(range))]);
      if (keys.length !== expected(p) || values.length !== expected(p)) throw new Error(p);
    }
  });
  const dexieScan = await timed(async () => {
    for (const p of prefixes) { const n = (await dexie.table('kv').where(':id').startsWith(p).toArray()).length; if (n !== expected(p)) throw new Error(p); }
  });
  row(`prefix scan, ${expected(prefixes[0])} keys (${SCANS} scans)`, smScan, rawScan, dexieScan, SCANS);
  await sm.close();
  raw.close();
  dexie.close();

  window.__results = results;
  log('\nDONE');
}

main().catch((e) => { log(`FAILED: ${e?.stack ?? e}`); window.__results = { error: String(e) }; });
