// The /files page in a real browser: upload with progress and by drag and
// drop, list, download, delete, and the errors shown next to the form.
import { test, expect } from '@playwright/test';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { BIN, hydrated, open, signedIn, tempFile } from './helpers.mjs';

const signUp = (page) => signedIn(page, 'f');
const cidOf = (file) => JSON.parse(execFileSync(BIN, ['cid', file], { encoding: 'utf8' }));

test('upload with progress, see it listed with its CID, download it, delete it', async ({ page }) => {
  await signUp(page);
  await page.getByRole('link', { name: 'Files' }).click();
  await expect(page).toHaveURL(/\/files$/);
  await expect(page.getByText('No files yet')).toBeVisible();

  const bytes = randomBytes(3 * 1024 * 1024 + 17);
  const file = tempFile('holiday photos.bin', bytes);
  const expected = cidOf(file);

  await page.getByLabel('File').setInputFiles(file);
  await expect(page.getByText('Selected: holiday photos.bin')).toBeVisible();
  await page.getByLabel('Name').fill('Holiday.bin');
  // The progress bar appears while the request is in flight. Over loopback
  // 3 MiB can go faster than a frame, so the browser's upload is throttled
  // to 1 MiB/s (Chromium's network emulation) for as long as it takes.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const throttle = (uploadThroughput) => cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput });
  await throttle(1024 * 1024);
  const progressSeen = page.getByLabel('Upload progress').waitFor({ timeout: 10_000 }).then(() => true, () => false);
  const started = Date.now();
  await page.getByRole('button', { name: 'Upload' }).click();
  const row = page.locator(`tr[data-cid="${expected.cid}"]`);
  await expect(row).toBeVisible({ timeout: 20_000 });
  expect(await progressSeen).toBe(true);
  expect(Date.now() - started, 'the upload was throttled').toBeGreaterThan(2000);
  await throttle(-1);
  await expect(row.locator('td.name')).toHaveText('Holiday.bin');
  await expect(row).toContainText('3.0 MB');
  await expect(row.locator('code')).toHaveText(expected.cid);
  await expect(row.getByRole('button', { name: 'Copy CID of Holiday.bin' })).toBeVisible();

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.getByRole('button', { name: 'Download' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('Holiday.bin');
  const saved = await download.path();
  expect(createHash('sha256').update(fs.readFileSync(saved)).digest('hex'))
    .toBe(createHash('sha256').update(bytes).digest('hex'));

  await page.goto('/dashboard');
  await expect(page.locator('[data-figure="space_used"] dd')).toHaveText('3.0 MB');
  await open(page, '/files');
  await page.locator(`tr[data-cid="${expected.cid}"]`).getByRole('button', { name: 'Delete' }).click();
  await expect(page.locator(`tr[data-cid="${expected.cid}"]`)).toHaveCount(0);
  await expect(page.getByText('No files yet')).toBeVisible();
});

test('an over-quota upload shows the contract message next to the form', async ({ page }) => {
  await signUp(page);
  await open(page, '/files');
  // The test server's size limit is 8 MiB (see playwright.config.mjs).
  await page.getByLabel('File').setInputFiles(tempFile('big.bin', randomBytes(9 * 1024 * 1024)));
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page.getByRole('alert')).toHaveText('File too large');
  await expect(page.getByText('No files yet')).toBeVisible();
});

test('a file dropped on the drop zone is uploaded', async ({ page }) => {
  await signUp(page);
  await open(page, '/files');
  const text = `dropped at ${Date.now()}\n`;
  const expected = cidOf(tempFile('dropped.txt', text));
  // What a drag from the desktop delivers: a drop event whose DataTransfer holds the file.
  const dropped = await page.evaluateHandle((t) => {
    const dt = new DataTransfer();
    dt.items.add(new File([t], 'dropped.txt', { type: 'text/plain' }));
    return dt;
  }, text);
  const zone = page.locator('.dropzone');
  await zone.dispatchEvent('dragover', { dataTransfer: dropped });
  await expect(zone).toHaveClass(/dragging/);
  await zone.dispatchEvent('drop', { dataTransfer: dropped });
  await expect(zone).not.toHaveClass(/dragging/);
  await expect(page.getByText('Selected: dropped.txt')).toBeVisible();
  await page.getByRole('button', { name: 'Upload' }).click();
  const row = page.locator(`tr[data-cid="${expected.cid}"]`);
  await expect(row.locator('td.name')).toHaveText('dropped.txt');
  await expect(row).toContainText('text/plain');
});

test('downloading or deleting a file that is already gone says so', async ({ page }) => {
  const user = await signUp(page);
  await open(page, '/files');
  await page.getByLabel('File').setInputFiles(tempFile('gone.txt', `soon gone ${Date.now()}`));
  await page.getByRole('button', { name: 'Upload' }).click();
  const row = page.locator('tr[data-cid]');
  await expect(row).toHaveCount(1);
  const cid = await row.getAttribute('data-cid');
  // Deleted elsewhere (the Android app) while this page was open.
  const token = (await (await page.request.post('/login', { data: user })).json()).token;
  const gone = await page.request.post('/delete_file', { headers: { Authorization: token }, data: { cid } });
  expect(gone.status()).toBe(200);
  await row.getByRole('button', { name: 'Download' }).click();
  const gonePage = 'This file is no longer in your account. Reload the page to see your files.';
  await expect(page.getByRole('alert')).toHaveText(gonePage);
  await row.getByRole('button', { name: 'Delete' }).click();
  await expect(page.getByRole('alert')).toHaveText([gonePage, gonePage]);
});
