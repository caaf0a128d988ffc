// The dashboard as an operator view: device status, storage bar, and the
// 30-day charts drawn from what the device and uploads actually reported.
import { test, expect } from '@playwright/test';
import { newUser, registerByApi, open, fillLogin } from './helpers.mjs';

const today = () => new Date().toISOString().slice(0, 10);

test('a device that reported shows online, with its coins, uptime and traffic charted', async ({ page }) => {
  const user = await registerByApi(page, newUser('op'));
  const api = page.request;
  const token = (await (await api.post('/login', { data: user })).json()).token;
  const auth = { Authorization: token };
  expect((await api.post('/onboarding', { headers: auth, data: { storageRented: 2048 } })).status()).toBe(200);
  // Signed-out or fresh: offline, nothing charted yet.
  await open(page, '/login');
  await fillLogin(page, user);
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.locator('.device .badge')).toHaveText('Offline');
  await expect(page.locator('.device')).toContainText('No report from your device yet');
  await expect(page.locator('[data-chart="coins-earned-per-day"] rect')).toHaveCount(0);

  // The device reports: two heartbeats a second apart, a bandwidth report, an upload.
  expect((await api.post('/active_time', { headers: auth, data: { active_time: '1' } })).status()).toBe(200);
  await new Promise((r) => setTimeout(r, 1100));
  expect((await api.post('/active_time', { headers: auth, data: { active_time: '1' } })).status()).toBe(200);
  expect((await api.post('/rateinout', { headers: auth, data: { TotalIn: 1000, TotalOut: 2500, RateIn: 1, RateOut: 2 } })).status()).toBe(200);
  const up = await api.post('/upload_file', {
    headers: auth,
    multipart: { file: { name: 'a.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(4096, 1) } },
  });
  expect(up.status()).toBe(200);

  await page.reload();
  await expect(page.locator('.device .badge')).toHaveText('Online');
  await expect(page.locator('.device')).toContainText('Last report');
  await expect(page.locator('.usage')).toContainText('4.0 KB used of 2 GB pledged');
  const coins = page.locator('[data-chart="coins-earned-per-day"] rect');
  await expect(coins).toHaveCount(1);
  await expect(coins.locator('title')).toContainText(`${today()} · Coins:`);
  await expect(page.locator('[data-chart="uptime-per-day"] rect')).toHaveCount(1);
  const traffic = page.locator('[data-chart="traffic-per-day"] rect title');
  await expect(traffic).toHaveText([
    `${today()} · Files uploaded: 4.0 KB`,
    `${today()} · Peer node in: 1000 B`,
    `${today()} · Peer node out: 2.4 KB`,
  ]);
  // A lower total after a restart adds all of it to the day.
  expect((await api.post('/rateinout', { headers: auth, data: { TotalIn: 10, TotalOut: 2600, RateIn: 0, RateOut: 0 } })).status()).toBe(200);
  await page.reload();
  await expect(page.locator('[data-chart="traffic-per-day"] rect title')).toHaveText([
    `${today()} · Files uploaded: 4.0 KB`,
    `${today()} · Peer node in: 1010 B`,
    `${today()} · Peer node out: 2.5 KB`,
  ]);
});
