// Security hardening seen from a real browser: a crafted `next` on /login
// never leads off the site (with JavaScript and without), and the Content
// Security Policy blocks nothing the app itself needs: no violation while
// signing in and visiting the pages, the pages hydrate, the storage bar's
// width (an inline style) applies.
import { test, expect } from '@playwright/test';
import { newUser, registerByApi, open, hydrated, fillLogin } from './helpers.mjs';

const CRAFTED = '/login?next=%2F%09%2Fevil.example%2Fx'; // next = "/\t/evil.example/x"

/** Aborts (and records) every request the page makes to another host than the test server. */
async function recordOffsite(page, baseURL) {
  const home = new URL(baseURL).host;
  const offsite = [];
  await page.route((url) => url.host !== home, (route) => {
    offsite.push(route.request().url());
    return route.abort();
  });
  return offsite;
}

test('a crafted next on /login lands on the dashboard, with JavaScript', async ({ page, baseURL }) => {
  const offsite = await recordOffsite(page, baseURL);
  const user = await registerByApi(page, newUser('sec'));
  await open(page, CRAFTED);
  await fillLogin(page, user);
  await expect(page).toHaveURL(`${baseURL}/dashboard`);
  await hydrated(page);
  await expect(page.locator('[data-figure="username"] dd')).toHaveText(user.username);
  expect(page.url()).not.toContain('evil');
  expect(offsite).toEqual([]);
});

test('a crafted next on /login lands on the dashboard, without JavaScript', async ({ browser, baseURL }) => {
  const context = await browser.newContext({ javaScriptEnabled: false, baseURL });
  try {
    const page = await context.newPage();
    const offsite = await recordOffsite(page, baseURL);
    const user = await registerByApi(page, newUser('secnj'));
    await page.goto(CRAFTED);
    await fillLogin(page, user);
    await expect(page).toHaveURL(`${baseURL}/dashboard`);
    await expect(page.locator('[data-figure="username"] dd')).toHaveText(user.username);
    expect(page.url()).not.toContain('evil');
    expect(offsite).toEqual([]);
  } finally {
    await context.close();
  }
});

test('no Content Security Policy violation while signing in and visiting the pages; they hydrate and the storage bar renders', async ({ page }) => {
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber} ${e.sample || ''}`);
    });
  });
  const consoleErrors = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) consoleErrors.push(`${m.type()}: ${m.text()}`); });
  const violations = [];
  const collect = async (where) => {
    for (const v of await page.evaluate(() => window.__cspViolations ?? [])) violations.push(`${where}: ${v}`);
  };

  // A pledge of 1 MB, half of it used: the storage bar's fill is half its track.
  const user = await registerByApi(page, newUser('csp'));
  const token = (await (await page.request.post('/login', { data: user })).json()).token;
  const auth = { Authorization: token };
  expect((await page.request.post('/onboarding', { headers: auth, data: { storageRented: 1 } })).status()).toBe(200);
  const up = await page.request.post('/upload_file', {
    headers: auth,
    multipart: { file: { name: 'half.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(512 * 1024, 7) } },
  });
  expect(up.status()).toBe(200);

  await open(page, '/login');
  await collect('/login');
  await fillLogin(page, user);
  await expect(page).toHaveURL(/\/dashboard$/);
  await hydrated(page);
  await expect(page.locator('[data-figure="username"] dd')).toHaveText(user.username);
  const track = page.locator('.usage-track');
  const fill = page.locator('.usage-fill rect'); // the filled share: an SVG rect (no inline style under the CSP)
  await expect(track).toBeVisible();
  const trackBox = await track.boundingBox();
  const fillBox = await fill.boundingBox();
  expect(trackBox && trackBox.width).toBeGreaterThan(0);
  const share = (fillBox?.width ?? 0) / trackBox.width;
  expect(share, `storage bar fill is ${share} of its track`).toBeGreaterThan(0.4);
  expect(share, `storage bar fill is ${share} of its track`).toBeLessThan(0.6);
  await collect('/dashboard');

  for (const path of ['/files', '/account', '/onboarding']) {
    await open(page, path);
    await expect(page).toHaveURL(new RegExp(`${path}$`));
    await collect(path);
  }
  await open(page, '/dashboard');
  await collect('/dashboard (again)');

  expect(violations).toEqual([]);
  expect(consoleErrors).toEqual([]);
});
