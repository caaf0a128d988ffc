// With JavaScript turned off every form is a plain HTML form post: register,
// log in, upload (a file, or several as a folder), share and delete work, and
// a refused submission comes back to the page with the error shown next to
// the form.
import { test, expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { BIN, newUser, registerByApi, fillLogin, tempFile } from './helpers.mjs';

test.use({ javaScriptEnabled: false });

async function registerOnPage(page, user) {
  await page.goto('/register');
  await page.getByLabel('Username').fill(user.username);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Register' }).click();
}

test('register, then a taken username is refused on the page', async ({ page }) => {
  const user = newUser('njr');
  await registerOnPage(page, user);
  await expect(page).toHaveURL(/\/login\?registered=1$/);
  await expect(page.getByRole('status')).toContainText('Your account is ready');
  // The account exists: the JSON API logs it in.
  expect((await page.request.post('/login', { data: user })).status()).toBe(200);

  await registerOnPage(page, { ...newUser('njr'), username: user.username });
  await expect(page).toHaveURL(/\/register\?/);
  await expect(page.getByRole('alert')).toHaveText('That username or email is already registered.');
});

test('a wrong password is shown, the right one opens the dashboard', async ({ page }) => {
  const user = await registerByApi(page, newUser('njl'));
  await page.goto('/login');
  await fillLogin(page, user, 'not-the-password');
  await expect(page).toHaveURL(/\/login\?/);
  await expect(page.getByRole('alert')).toHaveText('Invalid username or password');
  await fillLogin(page, user);
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.locator('[data-figure="username"] dd')).toHaveText(user.username);
});

test('upload, list and delete a file; a too large file is refused on the page', async ({ page }) => {
  const user = await registerByApi(page, newUser('nju'));
  await page.goto('/login?next=/files');
  await fillLogin(page, user);
  await expect(page).toHaveURL(/\/files\??$/); // a plain post returns to the page it came from

  const file = tempFile('plain.txt', `uploaded without any script ${Date.now()}\n`);
  const expected = JSON.parse(execFileSync(BIN, ['cid', file], { encoding: 'utf8' }));
  await page.getByLabel('File').setInputFiles(file);
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page).toHaveURL(/\/files\??$/); // a plain post returns to the page it came from
  const row = page.locator(`tr[data-cid="${expected.cid}"]`);
  await expect(row.locator('td.name')).toHaveText('plain.txt');
  await expect(row).toContainText('text/plain');

  // The test server's size limit is 8 MiB (see playwright.config.mjs).
  await page.getByLabel('File').setInputFiles(tempFile('big.bin', randomBytes(9 * 1024 * 1024)));
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page).toHaveURL(/\/files\?/);
  await expect(page.getByRole('alert')).toHaveText('File too large');
  await expect(page.locator('tr[data-cid]')).toHaveCount(1);

  await row.getByRole('button', { name: 'Delete' }).click();
  await expect(page).toHaveURL(/\/files\??$/); // a plain post returns to the page it came from
  await expect(page.getByText('No files yet')).toBeVisible();
});

test('share and stop sharing a file, and upload a folder of several files, without any script', async ({ page, request }) => {
  const user = await registerByApi(page, newUser('njs'));
  await page.goto('/login?next=/files');
  await fillLogin(page, user);
  await expect(page).toHaveURL(/\/files\??$/);

  const bytes = randomBytes(5000);
  const file = tempFile('shared plain.bin', bytes);
  const expected = JSON.parse(execFileSync(BIN, ['cid', file], { encoding: 'utf8' }));
  await page.getByLabel('File').setInputFiles(file);
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page).toHaveURL(/\/files\??$/);
  const row = page.locator(`tr[data-cid="${expected.cid}"]`);
  await row.getByRole('button', { name: 'Share', exact: true }).click();
  await expect(page).toHaveURL(/\/files\??$/);
  const link = row.locator('.share-url');
  await expect(link).toHaveText(new RegExp(`/ipfs/${expected.cid}$`));
  const got = await request.get(await link.getAttribute('href'));
  expect(got.status()).toBe(200);
  expect(Buffer.from(await got.body()).equals(bytes)).toBe(true);
  await row.getByRole('button', { name: 'Stop sharing' }).click();
  await expect(row.locator('.share-url')).toHaveCount(0);
  expect((await request.get(`/ipfs/${expected.cid}`)).status()).toBe(404);

  // several files chosen at once: one folder of them (a plain multipart post)
  await page.getByLabel('File').setInputFiles([tempFile('first.txt', 'one'), tempFile('second.txt', 'two')]);
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page).toHaveURL(/\/files\??$/);
  const folder = page.locator('tr', { hasText: 'Folder, 2 files' });
  await expect(folder).toHaveCount(1);
  await expect(folder.locator('td.name')).toHaveText('2 files/');
});
