// The IndexedDB calls of statemesh-indexeddb, one function per storage operation. Each opens
// its own transaction and issues every request before the first await, because an IndexedDB
// transaction commits by itself as soon as its requests are done and control returns to the
// event loop: awaiting anything unrelated in between would split one flush into several.
//
// Layout (database version 2): object store `log` maps revision (a number) to the record's
// bytes; object store `meta` holds `snapshot` = { revision, bytes }; object store `images` maps
// a snapshot's revision to the framed index images taken with it (bytes, framed and checked in
// Rust). Version 1 had no `images`: opening such a database upgrades it by adding the store.

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
    const r = indexedDB.open(name, 2);
    r.onupgradeneeded = () => {
      const db = r.result;
      if (!db.objectStoreNames.contains('log')) db.createObjectStore('log');
      if (!db.objectStoreNames.contains('meta')) db.createObjectStore('meta');
      if (!db.objectStoreNames.contains('images')) db.createObjectStore('images');
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

// The new snapshot, the log it covers dropped, and every stored image set dropped (they belong
// to the previous snapshot), all in one transaction: the images store never holds a set that
// does not describe the current snapshot, whatever happens between this and writeImages.
export function writeSnapshot(db, revision, bytes, durability) {
  const tx = db.transaction(['log', 'meta', 'images'], 'readwrite', { durability });
  tx.objectStore('meta').put({ revision, bytes }, 'snapshot');
  tx.objectStore('log').delete(IDBKeyRange.upperBound(revision));
  tx.objectStore('images').clear();
  return finished(tx);
}

// Replaces the stored image sets by `bytes` under key `revision`, in one transaction.
export function writeImages(db, revision, bytes, durability) {
  const tx = db.transaction('images', 'readwrite', { durability });
  const images = tx.objectStore('images');
  images.clear();
  images.put(bytes, revision);
  return finished(tx);
}

// Drops the image sets of other revisions than `revision` and resolves to the one stored under
// it (undefined when there is none), in one transaction.
export async function loadImages(db, revision) {
  const tx = db.transaction('images', 'readwrite');
  const images = tx.objectStore('images');
  images.delete(IDBKeyRange.upperBound(revision, true));
  images.delete(IDBKeyRange.lowerBound(revision, true));
  const [value] = await Promise.all([request(images.get(revision)), finished(tx)]);
  return value;
}

export function deleteDatabase(name) {
  return request(indexedDB.deleteDatabase(name));
}

// One opener per store across tabs and workers of an origin: a Web Lock held until release()
// is called (or the page goes away). Resolves to the release function, or null when another
// context still holds the lock after `waitMs`. Waiting at all matters: a page being reloaded
// releases its lock only as its old document is torn down, which can be after the new document
// asks, so an `ifAvailable` request alone would tell a reloading page it is open elsewhere.
export function acquireLock(name, waitMs) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return Promise.resolve(() => {});
  return new Promise((resolve, reject) => {
    const granted = (lock) => {
      if (!lock) {
        resolve(null);
        return undefined;
      }
      return new Promise((release) => resolve(release));
    };
    if (!(waitMs > 0)) {
      locks.request(name, { ifAvailable: true }, granted).catch(reject);
      return;
    }
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), waitMs);
    locks.request(name, { signal: timeout.signal }, (lock) => {
      clearTimeout(timer);
      return granted(lock);
    }).catch((e) => (timeout.signal.aborted ? resolve(null) : reject(e)));
  });
}
