// The demo: notes kept in a statemesh store on IndexedDB, listed with a prefix scan and kept
// up to date through the change feed. `?selftest=write|check` drives it for web-demo/test.sh.
import init, { Store, StatemeshError } from 'statemesh';

const $ = (id) => document.getElementById(id);

function render(list, notes) {
  list.replaceChildren(...notes.map(({ key, value }) => {
    const li = document.createElement('li');
    li.dataset.key = key;
    li.textContent = value.text;
    return li;
  }));
}

async function main() {
  await init();
  let store;
  try {
    store = await Store.open({ indexedDb: 'statemesh-web-demo' });
  } catch (e) {
    if (e instanceof StatemeshError && e.code === 'STORE_LOCKED') {
      $('status').textContent = 'This store is open in another tab.';
      return { error: 'locked' };
    }
    throw e;
  }
  const notes = [];
  for await (const entry of store.iterate('memory:note.')) notes.push(entry);
  render($('notes'), notes);
  $('status').textContent = `${notes.length} notes, revision ${store.revision}`;

  // Live: every change to a note re-renders, whoever made it.
  (async () => {
    for await (const event of store.subscribe('memory:note.*')) {
      const i = notes.findIndex((n) => n.key === event.key);
      if (event.kind === 'delete' || event.kind === 'expire') {
        if (i >= 0) notes.splice(i, 1);
      } else if (i >= 0) {
        notes[i] = { key: event.key, value: event.value };
      } else {
        notes.push({ key: event.key, value: event.value });
      }
      render($('notes'), notes);
      $('status').textContent = `${notes.length} notes, revision ${event.revision}`;
    }
  })();

  $('add').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = $('text').value.trim();
    if (!text) return;
    const n = await store.increment('memory:counter');
    await store.put(`memory:note.${String(n).padStart(6, '0')}`, { text, at: Date.now() });
    $('text').value = '';
  });
  return { store, notes };
}

const until = async (cond, ms = 5000) => {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

const mode = new URLSearchParams(location.search).get('selftest');
main().then(async (app) => {
  if (!mode) return;
  if (app.error) { window.__results = { error: app.error }; return; }
  const items = () => [...document.querySelectorAll('#notes li')].map((li) => li.textContent);
  if (mode === 'write') {
    for (const text of ['likes tea', 'works on statemesh', 'lives in Berlin']) {
      $('text').value = text;
      $('add').requestSubmit();
      await until(() => items().includes(text));
    }
  }
  await until(() => items().length === 3);
  const want = ['likes tea', 'works on statemesh', 'lives in Berlin'];
  window.__results = JSON.stringify(items()) === JSON.stringify(want)
    ? { notes: items(), revision: app.store.revision }
    : { error: `notes ${JSON.stringify(items())}` };
}).catch((e) => { $('status').textContent = `failed: ${e}`; window.__results = { error: String(e) }; });
