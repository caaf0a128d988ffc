// What the browser specs share: fresh users, logging in through the page,
// temporary files, and full-page screenshots for reviewers.
import { expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const unique = () => randomBytes(4).toString('hex');

/** The release binary the tests run (also used as the CID reference). */
export const BIN = path.resolve('target/release/peervault');

/** A user that does not exist yet; `prefix` shows in the username. */
export function newUser(prefix) {
  const id = unique();
  return { username: `${prefix}_${id}`, email: `${prefix}_${id}@example.org`, password: `pw-${id}-secret` };
}

/** Registers `user` through the JSON API (for specs about something else). */
export async function registerByApi(page, user) {
  expect((await page.request.post('/register', { data: user })).status()).toBe(200);
  return user;
}

/** Waits until the WASM has hydrated the page (a no-op check without JavaScript). */
export async function hydrated(page) {
  await page.locator('html[data-hydrated="true"]').waitFor();
}

/** Opens a page and waits until it is hydrated. */
export async function open(page, url) {
  await page.goto(url);
  await hydrated(page);
}

/** Fills and submits the login form on the current page. */
export async function fillLogin(page, user, password = user.password) {
  await page.getByLabel('Username').fill(user.username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

/** A registered user, logged in through /login and on the dashboard. */
export async function signedIn(page, prefix) {
  const user = await registerByApi(page, newUser(prefix));
  await open(page, '/login');
  await fillLogin(page, user);
  await expect(page).toHaveURL(/\/dashboard$/);
  return user;
}

/** A file with these bytes, in a fresh temporary directory. */
export function tempFile(name, bytes) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-e2e-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** Saves a full-page screenshot to end2end/screenshots/NAME.png (ignored by git). */
export async function screenshot(page, name) {
  await page.screenshot({ path: path.resolve('end2end/screenshots', `${name}.png`), fullPage: true });
}
