// The /files page in a real browser: upload with progress, list, download,
// delete; and the upload form and the list with JavaScript turned off.
import { test, expect } from '@playwright/test';
import { randomBytes, createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const unique = () => randomBytes(4).toString('hex');
const BIN = path.resolve('target/release/peervault');

async function signUp(page) {
  const id = unique();
  const user = { username: `f_${id}`, email: `f_${id}@example.org`, password: `pw-${id}-secret` };
  const res = await page.request.post('/register', { data: user });
  expect(res.status()).toBe(200);
  await page.goto('/login');
  await page.locator('html[data-hydrated="true"]').waitFor();
  await page.getByLabel('Username').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/dashboard$/);
  return user;
}

function tempFile(name, bytes) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-e2e-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

test('upload with progress, see it listed with its CID, download it, delete it', async ({ page }) => {
  await signUp(page);
  await page.getByRole('link', { name: 'Files' }).click();
  await expect(page).toHaveURL(/\/files$/);
  await expect(page.getByText('No files yet')).toBeVisible();

  const bytes = randomBytes(3 * 1024 * 1024 + 17);
  const file = tempFile('holiday photos.bin', bytes);
  const expected = JSON.parse(execFileSync(BIN, ['cid', file], { encoding: 'utf8' }));

  await page.getByLabel('File').setInputFiles(file);
  await expect(page.getByText('Selected: holiday photos.bin')).toBeVisible();
  await page.getByLabel('Name').fill('Holiday.bin');
  // The progress bar appears while the request is in flight.
  const progressSeen = page.getByLabel('Upload progress').waitFor({ timeout: 10_000 }).then(() => true, () => false);
  await page.getByRole('button', { name: 'Upload' }).click();
  const row = page.locator(`tr[data-cid="${expected.cid}"]`);
  await expect(row).toBeVisible();
  expect(await progressSeen).toBe(true);
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
  await page.goto('/files');
  await page.locator('html[data-hydrated="true"]').waitFor();
  await page.locator(`tr[data-cid="${expected.cid}"]`).getByRole('button', { name: 'Delete' }).click();
  await expect(page.locator(`tr[data-cid="${expected.cid}"]`)).toHaveCount(0);
  await expect(page.getByText('No files yet')).toBeVisible();
});

test('an over-quota upload shows the contract message next to the form', async ({ page }) => {
  await signUp(page);
  await page.goto('/files');
  await page.locator('html[data-hydrated="true"]').waitFor();
  // The test server's size limit is 8 MiB (see playwright.config.mjs).
  await page.getByLabel('File').setInputFiles(tempFile('big.bin', randomBytes(9 * 1024 * 1024)));
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page.getByRole('alert')).toHaveText('File too large');
  await expect(page.getByText('No files yet')).toBeVisible();
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the upload form and the list work', async ({ page }) => {
    const id = unique();
    const user = { username: `nj_${id}`, email: `nj_${id}@example.org`, password: `pw-${id}-secret` };
    expect((await page.request.post('/register', { data: user })).status()).toBe(200);
    // Log in through the plain form post.
    await page.goto('/login');
    await page.getByLabel('Username').fill(user.username);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page).toHaveURL(/\/dashboard$/);

    await page.goto('/files');
    const file = tempFile('plain.txt', 'uploaded without any script\n');
    const expected = JSON.parse(execFileSync(BIN, ['cid', file], { encoding: 'utf8' }));
    await page.getByLabel('File').setInputFiles(file);
    await page.getByRole('button', { name: 'Upload' }).click();
    await expect(page).toHaveURL(/\/files/);
    const row = page.locator(`tr[data-cid="${expected.cid}"]`);
    await expect(row.locator('td.name')).toHaveText('plain.txt');
    await expect(row).toContainText('text/plain');
  });
});
