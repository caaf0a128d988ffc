// Register, log in, see the dashboard, log out: the whole visit in a real browser.
import { test, expect } from '@playwright/test';
import { newUser, open, hydrated, fillLogin, signedIn } from './helpers.mjs';

async function register(page, user) {
  await open(page, '/register');
  await page.getByLabel('Username').fill(user.username);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Register' }).click();
  await expect(page).toHaveURL(/\/login\?registered=1$/);
}

test('register, log in, see the dashboard, log out', async ({ page }) => {
  const user = newUser('web');

  await register(page, user);
  await expect(page.getByRole('status')).toContainText('Your account is ready');

  await hydrated(page);
  await fillLogin(page, user);
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.getByRole('heading', { name: 'Dashboard' })).toBeVisible();

  const figure = (name) => page.locator(`[data-figure="${name}"] dd`);
  await expect(figure('username')).toHaveText(user.username);
  await expect(figure('storage_rented')).toHaveText('0 MB');
  await expect(figure('coins_earned')).toHaveText('0 coins');
  for (const name of ['bandwidth_used', 'data_uploaded', 'data_downloaded', 'space_used']) {
    await expect(figure(name)).toHaveText('0 B');
  }
  const peerId = (await page.locator('[data-figure="peerId"] code').textContent()).trim();
  expect(peerId).toMatch(/^[1-9A-HJ-NP-Za-km-z]{17,}$/);
  await expect(page.getByRole('button', { name: 'Copy peer ID' })).toBeVisible();

  // The peerId on the page is the device credential the JSON API accepts.
  const auth = await page.request.post('/android_auth', { data: { username: user.username, peerId } });
  expect(auth.status()).toBe(200);

  await expect(page.getByRole('navigation')).toContainText(user.username);
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Register' })).toBeVisible();
  await expect(nav.getByRole('button', { name: 'Log out' })).toHaveCount(0);

  // Signed out, the dashboard sends the visitor to the login page, and back after.
  await page.goto('/dashboard');
  await expect(page).toHaveURL(/\/login\?next=\/dashboard$/);
  await hydrated(page);
  await fillLogin(page, user);
  await expect(page).toHaveURL(/\/dashboard$/);
});

test('wrong password shows the contract message next to the form', async ({ page }) => {
  const user = newUser('wp');
  await register(page, user);
  await hydrated(page);
  await fillLogin(page, { ...user, password: 'not-the-password' });
  await expect(page.getByRole('alert')).toHaveText('Invalid username or password');
  await expect(page).toHaveURL(/\/login/);
});

test('a taken username is refused on the register page', async ({ page }) => {
  const user = newUser('dup');
  await register(page, user);
  await open(page, '/register');
  await page.getByLabel('Username').fill(user.username.toUpperCase());
  await page.getByLabel('Email').fill(`other_${user.email}`);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Register' }).click();
  await expect(page.getByRole('alert')).toHaveText('That username or email is already registered.');
});

test('the start page explains peervault and an unknown page says so', async ({ page }) => {
  await open(page, '/');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('peervault');
  await expect(page.getByRole('link', { name: 'Create an account' })).toBeVisible();
  const res = await page.goto('/no/such/page');
  expect(res.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
});

test('the navigation bar asks who is signed in once, not on every page it opens; a logout shows at once', async ({ page }) => {
  await signedIn(page, 'navonce');
  await expect(page.getByRole('navigation', { name: 'Main' })).toContainText('navonce_');
  const asked = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/whoami') asked.push(r.url()); });
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const [name, heading] of [['Files', 'Files'], ['Account', 'Account'], ['Onboarding', 'Rent out storage'], ['Dashboard', 'Dashboard']]) {
    await nav.getByRole('link', { name }).click();
    await expect(page.getByRole('heading', { level: 1, name: heading })).toBeVisible();
  }
  expect(asked, 'whoami asked while moving between pages').toEqual([]);
  await nav.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(nav.getByRole('link', { name: 'Log in' })).toBeVisible();
  await expect(nav.getByRole('button', { name: 'Log out' })).toHaveCount(0);
});
