// Runs in a hidden page navigated to one origin; writes that origin's part
// of a storageState into the profile: localStorage items are set (others
// are kept), and each IndexedDB database in the file is replaced by the
// file's version (deleted, recreated with its stores and indexes, filled).
// Values in Playwright's tagged "encoded" form are decoded first.
async (originState) => {
  const typed = {
    i8: Int8Array, ui8: Uint8Array, ui8c: Uint8ClampedArray, i16: Int16Array,
    ui16: Uint16Array, i32: Int32Array, ui32: Uint32Array, f32: Float32Array,
    f64: Float64Array, bi64: BigInt64Array, bui64: BigUint64Array,
  };
  const bytes = (b64) => {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  };
  const decode = (v, refs = new Map()) => {
    if (v === null || typeof v !== 'object') return v;
    if ('ref' in v) return refs.get(v.ref);
    if ('v' in v) return { undefined: undefined, null: null, NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity, '-0': -0 }[v.v];
    if ('d' in v) return new Date(v.d);
    if ('u' in v) return new URL(v.u);
    if ('bi' in v) return BigInt(v.bi);
    if ('e' in v) { const e = new Error(v.e.m); e.name = v.e.n; e.stack = v.e.s; return e; }
    if ('r' in v) return new RegExp(v.r.p, v.r.f);
    if ('ta' in v) return new typed[v.ta.k](bytes(v.ta.b).buffer);
    if ('ab' in v) return bytes(v.ab.b).buffer;
    if ('a' in v) { const a = []; refs.set(v.id, a); for (const x of v.a) a.push(decode(x, refs)); return a; }
    if ('m' in v) { const m = new Map(); refs.set(v.id, m); for (const { k, v: x } of v.m) m.set(decode(k, refs), decode(x, refs)); return m; }
    if ('s' in v) { const s = new Set(); refs.set(v.id, s); for (const x of v.s) s.add(decode(x, refs)); return s; }
    if ('o' in v) {
      const o = {};
      refs.set(v.id, o);
      for (const { k, v: x } of v.o) if (k !== '__proto__') o[k] = decode(x, refs);
      return o;
    }
    return v;
  };
  const request = (req) => new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('blocked: another tab holds the database open'));
  });

  for (const { name, value } of originState.localStorage || []) localStorage.setItem(name, value);

  for (const dbState of originState.indexedDB || []) {
    await request(indexedDB.deleteDatabase(dbState.name));
    const open = indexedDB.open(dbState.name, dbState.version);
    open.onupgradeneeded = () => {
      const db = open.result;
      for (const store of dbState.stores) {
        const keyPath = store.keyPathArray ?? store.keyPath ?? undefined;
        const s = db.createObjectStore(store.name, { autoIncrement: store.autoIncrement, keyPath });
        for (const index of store.indexes || [])
          s.createIndex(index.name, index.keyPathArray ?? index.keyPath, { unique: index.unique, multiEntry: index.multiEntry });
      }
    };
    const db = await request(open);
    try {
      const names = dbState.stores.map((s) => s.name);
      if (names.length) {
        const tx = db.transaction(names, 'readwrite');
        const done = new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onerror = () => reject(tx.error); tx.onabort = () => reject(tx.error); });
        for (const store of dbState.stores) {
          const s = tx.objectStore(store.name);
          for (const record of store.records || []) {
            const value = 'value' in record ? record.value : decode(record.valueEncoded);
            if ('key' in record || 'keyEncoded' in record) s.put(value, 'key' in record ? record.key : decode(record.keyEncoded));
            else s.put(value);
          }
        }
        await done;
      }
    } finally {
      db.close();
    }
  }
  return 'ok';
}
