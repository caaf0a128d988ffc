// Every page, signed out and signed in, at a desktop width and at 360 px:
// a full-page screenshot of each into end2end/screenshots/ for reviewers, and
// the layout rules checked on every one of them: nothing wider than the
// screen, a label for every input, a visible keyboard focus ring.
import { test, expect } from '@playwright/test';
import { open, screenshot, signedIn } from './helpers.mjs';

const WIDTHS = { desktop: { width: 1280, height: 800 }, phone: { width: 360, height: 740 } };
const PUBLIC = { home: '/', register: '/register', login: '/login', 'reset-password': '/reset-password' };
const PRIVATE = { dashboard: '/dashboard', files: '/files', onboarding: '/onboarding', account: '/account' };

async function checkLayout(page, name) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, `${name} is wider than the screen`).toBeLessThanOrEqual(0);
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
      .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label'))
      .map((el) => el.name || el.id || el.outerHTML));
  expect(unlabelled, `${name} has inputs without a label`).toEqual([]);
  await page.evaluate(() => document.activeElement?.blur());
  await page.keyboard.press('Tab');
  const outline = await page.evaluate(() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    return { tag: el.tagName, style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
  });
  expect(outline.tag, `${name}: Tab reaches a control`).not.toBe('BODY');
  expect(outline.style, `${name}: focus is visible`).not.toBe('none');
  expect(outline.width).toBeGreaterThanOrEqual(2);
}

for (const [size, viewport] of Object.entries(WIDTHS)) {
  test.describe(`at ${viewport.width} px`, () => {
    test.use({ viewport });

    test('signed-out pages and the 404 page', async ({ page }) => {
      for (const [name, url] of Object.entries(PUBLIC)) {
        await open(page, url);
        await screenshot(page, `${name}-${size}`);
        await checkLayout(page, name);
      }
      const res = await page.goto('/no/such/page');
      expect(res.status()).toBe(404);
      await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
      await screenshot(page, `not-found-${size}`);
    });

    test('signed-in pages with something on them', async ({ page }) => {
      const user = await signedIn(page, `tour${size.slice(0, 1)}`);
      const token = (await (await page.request.post('/login', { data: user })).json()).token;
      const auth = { Authorization: token };
      expect((await page.request.post('/onboarding', { headers: auth, data: { storageRented: 4096 } })).status()).toBe(200);
      expect((await page.request.post('/active_time', { headers: auth, data: { active_time: '1' } })).status()).toBe(200);
      expect((await page.request.post('/rateinout', { headers: auth, data: { TotalIn: 52_000_000, TotalOut: 81_000_000, RateIn: 3, RateOut: 5 } })).status()).toBe(200);
      for (const [file, bytes] of [['a rather long holiday video file name.mp4', 3_500_000], ['notes.txt', 2_000]]) {
        const up = await page.request.post('/upload_file', {
          headers: auth,
          multipart: { file: { name: file, mimeType: 'application/octet-stream', buffer: Buffer.alloc(bytes, file.length) } },
        });
        expect(up.status()).toBe(200);
      }
      for (const [name, url] of Object.entries(PRIVATE)) {
        await open(page, url);
        await expect(page).toHaveURL(new RegExp(`${url}$`));
        await screenshot(page, `${name}-${size}`);
        await checkLayout(page, name);
      }
      await open(page, '/files');
      await expect(page.locator('tr[data-cid]')).toHaveCount(2);
    });
  });
}
