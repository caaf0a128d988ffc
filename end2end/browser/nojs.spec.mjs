// With JavaScript turned off every form is a plain HTML form post: register,
// log in, upload and delete work, and a refused submission comes back to the
// page with the error shown next to the form.
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
