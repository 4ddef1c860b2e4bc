// The IndexedDB calls of statemesh-indexeddb, one function per storage operation. Each opens
// its own transaction and issues every request before the first await, because an IndexedDB
// transaction commits by itself as soon as its requests are done and control returns to the
// event loop: awaiting anything unrelated in between would split one flush into several.
//
// Layout (database version 1): object store `log` maps revision (a number) to the record's
// bytes; object store `meta` holds `snapshot` = { revision, bytes }.

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
}

export function openDatabase(name) {
  return new Promise((resolve, reject) => {
    if (typeof indexedDB === 'undefined') {
      reject(new Error('IndexedDB is not available here'));
      return;
    }
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => {
      const db = r.result;
      if (!db.objectStoreNames.contains('log')) db.createObjectStore('log');
      if (!db.objectStoreNames.contains('meta')) db.createObjectStore('meta');
    };
    r.onsuccess = () => {
      const db = r.result;
      // A newer version elsewhere (a later release) asks us to step aside: close rather than
      // block it; the next write then fails and poisons this store.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    r.onerror = () => reject(r.error);
    r.onblocked = () => reject(new Error('blocked by another connection to the database'));
  });
}

export function closeDatabase(db) {
  db.close();
}

export async function load(db) {
  const tx = db.transaction(['log', 'meta'], 'readonly');
  const snapshot = request(tx.objectStore('meta').get('snapshot'));
  const keys = request(tx.objectStore('log').getAllKeys());
  const values = request(tx.objectStore('log').getAll());
  return { snapshot: (await snapshot) ?? null, keys: await keys, values: await values };
}

export function append(db, revisions, records, durability) {
  const tx = db.transaction('log', 'readwrite', { durability });
  const log = tx.objectStore('log');
  for (let i = 0; i < records.length; i++) log.put(records[i], revisions[i]);
  return finished(tx);
}

export function writeSnapshot(db, revision, bytes, durability) {
  const tx = db.transaction(['log', 'meta'], 'readwrite', { durability });
  tx.objectStore('meta').put({ revision, bytes }, 'snapshot');
  tx.objectStore('log').delete(IDBKeyRange.upperBound(revision));
  return finished(tx);
}

export function deleteDatabase(name) {
  return request(indexedDB.deleteDatabase(name));
}

// One opener per store across tabs and workers of an origin: a Web Lock held until release()
// is called (or the page goes away). Resolves to the release function, or null when another
// context holds the lock.
export function acquireLock(name) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return Promise.resolve(() => {});
  return new Promise((resolve, reject) => {
    locks.request(name, { ifAvailable: true }, (lock) => {
      if (!lock) {
        resolve(null);
        return undefined;
      }
      return new Promise((release) => resolve(release));
    }).catch(reject);
  });
}
