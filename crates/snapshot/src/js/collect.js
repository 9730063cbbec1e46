// Runs in a hidden page navigated to one origin (every request fulfilled
// locally, so the origin's server is never contacted). Returns, as a JSON
// string, { localStorage: [{name, value}], indexedDB: [database…] } in
// Playwright's storageState shape. IndexedDB values that are not plain JSON
// (Dates, Maps, typed arrays, cycles…) are written in Playwright's tagged
// "encoded" form, so browser.newContext({ storageState }) restores them.
async () => {
  // JSON cannot carry lone UTF-16 surrogates; replace them (U+FFFD) rather
  // than fail the whole snapshot on one odd key.
  const wf = (s) => (typeof s.toWellFormed === 'function' ? s.toWellFormed() : s);

  const typed = {
    i8: Int8Array, ui8: Uint8Array, ui8c: Uint8ClampedArray, i16: Int16Array,
    ui16: Uint16Array, i32: Int32Array, ui32: Uint32Array, f32: Float32Array,
    f64: Float64Array, bi64: BigInt64Array, bui64: BigUint64Array,
  };
  const base64 = (view) => {
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000)
      bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  };
  const isPlain = (v) => {
    const proto = Object.getPrototypeOf(v);
    return proto === Object.prototype || proto === null;
  };
  // Plain JSON all the way down?
  const trivial = (v, depth = 0) => {
    if (depth > 1000) return false;
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
    if (typeof v === 'number') return Number.isFinite(v) && !Object.is(v, -0);
    if (Array.isArray(v)) return v.every((x) => trivial(x, depth + 1));
    if (typeof v === 'object' && isPlain(v)) return Object.values(v).every((x) => trivial(x, depth + 1));
    return false;
  };
  const clean = (v) => {
    if (typeof v === 'string') return wf(v);
    if (Array.isArray(v)) return v.map(clean);
    if (v && typeof v === 'object') {
      const out = {};
      for (const [k, x] of Object.entries(v)) out[wf(k)] = clean(x);
      return out;
    }
    return v;
  };
  const encode = (v, seen, ids) => {
    if (v === undefined || typeof v === 'symbol' || typeof v === 'function') return { v: 'undefined' };
    if (v === null) return { v: 'null' };
    if (typeof v === 'number') {
      if (Number.isNaN(v)) return { v: 'NaN' };
      if (v === Infinity) return { v: 'Infinity' };
      if (v === -Infinity) return { v: '-Infinity' };
      if (Object.is(v, -0)) return { v: '-0' };
      return v;
    }
    if (typeof v === 'string') return wf(v);
    if (typeof v === 'boolean') return v;
    if (typeof v === 'bigint') return { bi: v.toString() };
    if (v instanceof Date) return { d: v.toJSON() };
    if (v instanceof RegExp) return { r: { p: v.source, f: v.flags } };
    if (v instanceof Error) return { e: { n: v.name, m: v.message, s: String(v.stack) } };
    for (const [k, ctor] of Object.entries(typed))
      if (v instanceof ctor) return { ta: { b: base64(v), k } };
    if (v instanceof ArrayBuffer) return { ab: { b: base64(new Uint8Array(v)) } };
    if (seen.has(v)) return { ref: seen.get(v) };
    const id = ++ids.n;
    seen.set(v, id);
    if (v instanceof Map)
      return { m: [...v.entries()].map(([k, x]) => ({ k: encode(k, seen, ids), v: encode(x, seen, ids) })), id };
    if (v instanceof Set) return { s: [...v.values()].map((x) => encode(x, seen, ids)), id };
    if (Array.isArray(v)) return { a: v.map((x) => encode(x, seen, ids)), id };
    return { o: Object.keys(v).map((k) => ({ k: wf(k), v: encode(v[k], seen, ids) })), id };
  };
  const put = (record, field, v) => {
    if (trivial(v)) record[field] = clean(v);
    else record[field + 'Encoded'] = encode(v, new Map(), { n: 0 });
  };
  const request = (req) => new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

  const localStorageItems = [];
  for (let i = 0; i < localStorage.length; i++) {
    const name = localStorage.key(i);
    localStorageItems.push({ name: wf(name), value: wf(localStorage.getItem(name)) });
  }

  const databases = [];
  for (const info of await indexedDB.databases()) {
    if (!info.name || !info.version) continue;
    const db = await request(indexedDB.open(info.name));
    try {
      const names = [...db.objectStoreNames];
      const stores = [];
      if (names.length) {
        const tx = db.transaction(names, 'readonly');
        for (const storeName of names) {
          const store = tx.objectStore(storeName);
          const [keys, values] = await Promise.all([request(store.getAllKeys()), request(store.getAll())]);
          const records = keys.map((key, i) => {
            const record = {};
            if (store.keyPath === null) put(record, 'key', key);
            put(record, 'value', values[i]);
            return record;
          });
          const indexes = [...store.indexNames].map((n) => {
            const index = store.index(n);
            return {
              name: index.name,
              keyPath: typeof index.keyPath === 'string' ? index.keyPath : undefined,
              keyPathArray: Array.isArray(index.keyPath) ? index.keyPath : undefined,
              multiEntry: index.multiEntry,
              unique: index.unique,
            };
          });
          stores.push({
            name: storeName,
            autoIncrement: store.autoIncrement,
            keyPath: typeof store.keyPath === 'string' ? store.keyPath : undefined,
            keyPathArray: Array.isArray(store.keyPath) ? store.keyPath : undefined,
            records,
            indexes,
          });
        }
      }
      databases.push({ name: info.name, version: info.version, stores });
    } finally {
      db.close();
    }
  }
  return JSON.stringify({ localStorage: localStorageItems, indexedDB: databases });
}
