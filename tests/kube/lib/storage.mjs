// What a logged-in profile keeps, written and read back through Playwright on
// a made-up origin whose every request the test fulfils (page.route): a
// cookie (Set-Cookie on a response), a localStorage item and an IndexedDB
// record, all with the same value.
import { ORIGIN, openPage } from '../../container/lib/browser.mjs';

export { ORIGIN };


/** Writes VALUE as cookie `kube_session`, localStorage `kube_key` and IndexedDB kube/kv/key. */
export async function writeAll(browser, value) {
  const { page } = await openPage(browser, { setCookies: [`kube_session=${value}; Path=/; Max-Age=86400`] });
  await page.evaluate(async (v) => {
    localStorage.setItem('kube_key', v);
    await new Promise((resolve, reject) => {
      const open = indexedDB.open('kube', 1);
      open.onupgradeneeded = () => open.result.createObjectStore('kv');
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const tx = open.result.transaction('kv', 'readwrite');
        tx.objectStore('kv').put(v, 'key');
        tx.oncomplete = () => {
          open.result.close();
          resolve();
        };
        tx.onerror = () => reject(tx.error);
      };
    });
  }, value);
  await page.close();
}

/** { cookie, local, idb } as the profile has them for ORIGIN (null when missing). */
export async function readAll(browser) {
  const { context, page } = await openPage(browser);
  const cookie = (await context.cookies(`${ORIGIN}/`)).find((c) => c.name === 'kube_session')?.value ?? null;
  const { local, idb } = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const local = localStorage.getItem('kube_key');
        const open = indexedDB.open('kube', 1);
        // A profile without the database: creating it answers "nothing there".
        open.onupgradeneeded = () => open.result.createObjectStore('kv');
        open.onerror = () => resolve({ local, idb: null });
        open.onsuccess = () => {
          const req = open.result.transaction('kv').objectStore('kv').get('key');
          req.onsuccess = () => {
            open.result.close();
            resolve({ local, idb: req.result ?? null });
          };
          req.onerror = () => resolve({ local, idb: null });
        };
      }),
  );
  await page.close();
  return { cookie, local, idb };
}
