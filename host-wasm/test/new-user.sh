#!/usr/bin/env bash
# Does what a new user does: packs the built package (host-wasm/pkg) with `npm pack`, installs
# the tarball into a fresh project, and runs scripts through the public API only — ESM and
# require() under Node — and type-checks a TypeScript file against the shipped types.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

tarball=$(cd "$here/pkg" && npm pack --silent --pack-destination "$work")
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --silent "./$tarball"

cat > esm.mjs <<'JS'
import init, { Store, StatemeshError } from 'statemesh';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

await init();
const dir = mkdtempSync(join(tmpdir(), 'statemesh-user-'));
try {
  let store = await Store.open({ path: dir });
  await store.put('chat:conv.42.msg.0001', { role: 'user', text: 'hi' });
  await store.put('sessions:user.7.token', 'opaque', { ttlMs: 30_000 });
  const w = await store.put('sessions:user.7.cart', '1 item', { ifVersion: 0 });
  try {
    await store.put('sessions:user.7.cart', 'x', { ifVersion: w.version + 1 });
    throw new Error('expected a version conflict');
  } catch (e) {
    if (!(e instanceof StatemeshError) || e.code !== 'VERSION_CONFLICT') throw e;
  }
  const feed = store.subscribe('chat:**');
  await store.put('chat:conv.42.msg.0002', { role: 'assistant', text: 'hello' });
  const { value: event } = await feed.next();
  if (event.key !== 'chat:conv.42.msg.0002' || event.kind !== 'create') throw new Error('feed');
  const keys = [];
  for await (const { key } of store.iterate('chat:conv.42.')) keys.push(key);
  if (keys.length !== 2) throw new Error(`scan gave ${keys}`);
  await store.close();
  store = await Store.open({ path: dir });
  const msg = await store.get('chat:conv.42.msg.0001');
  if (msg.text !== 'hi') throw new Error('reopen lost data');
  await store.close();
  console.log('esm ok');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
JS

cat > cjs.cjs <<'JS'
const { Store, StatemeshError } = require('statemesh');
(async () => {
  const store = await Store.open();
  await store.put('app:config.theme', 'dark');
  if ((await store.get('app:config.theme')) !== 'dark') throw new Error('get');
  await store.close();
  await store.get('app:config.theme').then(
    () => { throw new Error('expected CLOSED'); },
    (e) => { if (!(e instanceof StatemeshError) || e.code !== 'CLOSED') throw e; },
  );
  console.log('cjs ok');
})().catch((e) => { console.error(e); process.exit(1); });
JS

cat > check.ts <<'TS'
import init, { Store, StatemeshError, type ChangeEvent, type WriteResult } from 'statemesh';

export async function main(): Promise<void> {
  await init();
  const store: Store = await Store.open({ durability: 'ap', historyLimit: 100 });
  const w: WriteResult = await store.put('a:b', { x: 1 }, { ttlMs: 10, metadata: { k: 'v' } });
  const version: number = w.version;
  const meta = await store.getMetadata('a:b');
  const when: number | undefined = meta?.expiresAt;
  for await (const e of store.subscribe('a:*')) {
    const ev: ChangeEvent = e;
    if (ev.kind === 'expire') break;
  }
  for await (const { key } of store.iterate('a:')) console.log(key, version, when);
  const r = await store.txn({ compare: [{ key: 'a:b', version: 1 }], success: [{ op: 'delete', key: 'a:b' }] });
  console.log(r.succeeded);
  try { await store.get('bad key'); } catch (e) {
    if (e instanceof StatemeshError && e.code === 'INVALID_KEY') console.log(e.message);
  }
  await store.close();
}
TS

node esm.mjs
node cjs.cjs
if [ -x "$here/node_modules/.bin/tsc" ]; then
  "$here/node_modules/.bin/tsc" --noEmit --strict --target es2022 --module nodenext \
    --moduleResolution nodenext --lib es2022,dom,esnext.disposable --skipLibCheck false check.ts
  echo "types ok"
else
  echo "types: skipped (run npm install in host-wasm for the TypeScript check)"; exit 1
fi
