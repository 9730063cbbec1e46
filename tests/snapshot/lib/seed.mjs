// What the tests write through real pages, and how they read it back.
//
// `writeStorage` and `describeStorage` run in a page (Playwright's
// page.evaluate), so the data goes in and comes out the way a site's own
// scripts see it. `describeStorage` turns IndexedDB values into comparable JSON
// that keeps their types ({$date}, {$map}, {$set}…), so a Date that came back
// as a string, or a Map that came back as {}, fails the comparison.

/** In-page: writes localStorage, document.cookie and IndexedDB for tag `t`. */
export async function writeStorage({ t, extraLocal = {} }) {
  document.cookie = `js_${t}=hello-${t}; max-age=86400; path=/`;
  localStorage.setItem('greeting', `hello ${t}`);
  localStorage.setItem('json', JSON.stringify({ a: 1, t }));
  localStorage.setItem('unicode', 'héllo wörld 日本語 😀');
  localStorage.setItem('empty', '');
  for (const [k, v] of Object.entries(extraLocal)) localStorage.setItem(k, v);

  const req = (r) =>
    new Promise((resolve, reject) => {
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  const open = (name, version, upgrade) => {
    const r = indexedDB.open(name, version);
    r.onupgradeneeded = () => upgrade(r.result);
    return req(r);
  };
  const done = (tx) =>
    new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });

  const app = await open('app', 3, (db) => {
    const users = db.createObjectStore('users', { keyPath: 'id' });
    users.createIndex('by_email', 'email', { unique: true });
    users.createIndex('by_tags', 'tags', { multiEntry: true });
    db.createObjectStore('kv');
    db.createObjectStore('auto', { autoIncrement: true });
  });
  let tx = app.transaction(['users', 'kv', 'auto'], 'readwrite');
  const users = tx.objectStore('users');
  users.put({ id: 1, email: `ann@${t}.test`, tags: ['admin', 'x'], name: 'Ann' });
  users.put({ id: 2, email: `bob@${t}.test`, tags: ['x'], name: 'Bob', nested: { deep: [1, 2, { three: 3 }] } });
  users.put({ id: 3, email: `cy@${t}.test`, tags: [], name: `Cy ${t}` });
  const kv = tx.objectStore('kv');
  kv.put(new Date(Date.UTC(2024, 0, 2, 3, 4, 5)), 'date');
  kv.put(new Map([['k', 1], ['j', { n: 2 }]]), 'map');
  kv.put(new Set(['a', 'b']), 'set');
  kv.put({ plain: true, n: [1, 2, 3], s: t }, 'plain');
  kv.put(`number key ${t}`, 42);
  kv.put('date key', new Date(Date.UTC(2020, 5, 6)));
  const auto = tx.objectStore('auto');
  auto.add('first');
  auto.add({ second: t });
  await done(tx);
  app.close();

  const cache = await open('cache', 1, (db) => {
    const s = db.createObjectStore('compound', { keyPath: ['a', 'b'] });
    s.createIndex('ba', ['b', 'a']);
  });
  tx = cache.transaction('compound', 'readwrite');
  tx.objectStore('compound').put({ a: 'x', b: 1, v: `one ${t}` });
  tx.objectStore('compound').put({ a: 'y', b: 2, v: `two ${t}` });
  await done(tx);
  cache.close();
  return true;
}

/** In-page: localStorage, the cookies the page can see, and every IndexedDB database, typed. */
export async function describeStorage() {
  const desc = (v) => {
    if (v instanceof Date) return { $date: v.toISOString() };
    if (v instanceof Map) return { $map: [...v.entries()].map(([k, x]) => [desc(k), desc(x)]) };
    if (v instanceof Set) return { $set: [...v.values()].map(desc) };
    if (Array.isArray(v)) return v.map(desc);
    if (v && typeof v === 'object') {
      if (Object.getPrototypeOf(v) !== Object.prototype) return { $other: Object.prototype.toString.call(v) };
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, desc(x)]));
    }
    if (typeof v === 'string' && v.length > 1000) return { $long: v.length, head: v.slice(0, 20), tail: v.slice(-20) };
    return v;
  };
  const req = (r) =>
    new Promise((resolve, reject) => {
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  const local = {};
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    local[k] = desc(localStorage.getItem(k));
  }
  const dbs = [];
  const infos = (await indexedDB.databases()).sort((a, b) => a.name.localeCompare(b.name));
  for (const info of infos) {
    const db = await req(indexedDB.open(info.name));
    const stores = [];
    for (const name of [...db.objectStoreNames]) {
      const tx = db.transaction(name, 'readonly');
      const s = tx.objectStore(name);
      const keys = await req(s.getAllKeys());
      const values = await req(s.getAll());
      stores.push({
        name,
        keyPath: s.keyPath,
        autoIncrement: s.autoIncrement,
        indexes: [...s.indexNames].map((n) => {
          const i = s.index(n);
          return { name: n, keyPath: i.keyPath, unique: i.unique, multiEntry: i.multiEntry };
        }),
        records: keys.map((k, i) => ({ key: desc(k), value: desc(values[i]) })),
      });
    }
    dbs.push({ name: db.name, version: db.version, stores });
    db.close();
  }
  return { local, cookie: document.cookie.split('; ').filter(Boolean).sort(), indexedDB: dbs };
}

/** In-page: whether the page has anything stored at all. */
export async function storageIsEmpty() {
  return localStorage.length === 0 && (await indexedDB.databases()).length === 0;
}

/** The Set-Cookie headers an origin server with tag `t` sends on /setcookie. */
export function setCookiesFor(t) {
  return [
    `srv_${t}=v_${t}; Max-Age=86400; Path=/; HttpOnly; SameSite=Strict`,
    `lax_${t}=l_${t}; Max-Age=86400; Path=/setcookie; SameSite=Lax`,
  ];
}

/** Sorted {name, value} pairs of an origin's localStorage in a storageState file. */
export function localOf(state, origin) {
  const o = state.origins.find((x) => x.origin === origin);
  if (!o) return undefined;
  return Object.fromEntries(o.localStorage.map(({ name, value }) => [name, value]));
}

/** In-page: a 5 MB localStorage value and a 5 MB IndexedDB record (plus a hash of each). */
export async function writeHuge({ lsChars, idbChars }) {
  const chunk = 'abcdefghijklmnopqrstuvwxyz0123456789ÀÉÎÕÜ-'; // Latin-1, 42 chars
  const make = (n) => chunk.repeat(Math.ceil(n / chunk.length)).slice(0, n - 3) + 'END';
  localStorage.setItem('huge', make(lsChars));
  const big = make(idbChars + 1);
  const db = await new Promise((resolve, reject) => {
    const r = indexedDB.open('big', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('blobs');
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const tx = db.transaction('blobs', 'readwrite');
  tx.objectStore('blobs').put({ text: `${big.slice(2)}!`, at: new Date(0) }, 'five-mb');
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
  db.close();
}

/** In-page: FNV-1a of every long string, so 5 MB values compare exactly but print short. */
export async function hashLong() {
  const fnv = (s) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
    return h;
  };
  const ls = localStorage.getItem('huge');
  const rec = await new Promise((resolve, reject) => {
    const r = indexedDB.open('big');
    r.onsuccess = () => {
      const g = r.result.transaction('blobs').objectStore('blobs').get('five-mb');
      g.onsuccess = () => {
        r.result.close();
        resolve(g.result);
      };
      g.onerror = () => reject(g.error);
    };
    r.onerror = () => reject(r.error);
  });
  return {
    ls: ls && { length: ls.length, fnv: fnv(ls) },
    idb: rec && { length: rec.text.length, fnv: fnv(rec.text), at: rec.at instanceof Date ? rec.at.toISOString() : typeof rec.at },
  };
}

