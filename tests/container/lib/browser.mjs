// Playwright over the container's published CDP bridge, on made-up origins whose
// every request the test fulfils itself (page.route): no server, no network (the
// container has no route to the host anyway).

import { chromium } from 'playwright-core';

export const ORIGIN = 'http://corral-e2e.test';
export const PAGE = `<!doctype html><html><head><title>corral e2e</title></head>
<body style="margin:0;height:100vh;background:#ffd400;font:48px sans-serif">corral e2e</body></html>`;

/** Playwright over the bridge; the container's bridge always has a token. */
export async function connect(cdpUrl, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return chromium.connectOverCDP(cdpUrl, { timeout: 30_000, headers });
}

/**
 * A new page of the persistent profile's default context, showing ORIGIN (or
 * `url`) from a route-fulfilled response that may set cookies.
 */
export async function openPage(browser, { url = `${ORIGIN}/`, setCookies = [] } = {}) {
  const context = browser.contexts()[0];
  const page = await context.newPage();
  await page.route('**/*', (route) =>
    route.fulfill({
      status: 200,
      contentType: 'text/html; charset=utf-8',
      body: PAGE,
      headers: setCookies.length ? { 'set-cookie': setCookies.join('\n') } : {},
    }),
  );
  await page.goto(url);
  return { context, page };
}

/** What the profile holds for ORIGIN: cookies by name, and localStorage as an object. */
export async function readBack(browser) {
  const { context, page } = await openPage(browser);
  const cookies = Object.fromEntries((await context.cookies(`${ORIGIN}/`)).map((c) => [c.name, c]));
  const documentCookie = await page.evaluate(() => document.cookie);
  const localStorage = await page.evaluate(() => ({ ...window.localStorage }));
  await page.close();
  return { cookies, documentCookie, localStorage };
}

export { chromium };
