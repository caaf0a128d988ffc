// Onboarding and account pages: pledge storage, rotate the peer ID (the old
// device token stops working), change the password, delete the account;
// a signed-out visit comes back to the page after logging in.
import { test, expect } from '@playwright/test';
import { newUser, registerByApi, hydrated, fillLogin } from './helpers.mjs';

async function logIn(page, user) {
  await hydrated(page);
  await fillLogin(page, user);
}

test('a signed-out visit to /onboarding logs in and comes back; pledging in GB and MB', async ({ page }) => {
  const user = await registerByApi(page, newUser('ac'));
  await page.goto('/onboarding');
  await expect(page).toHaveURL(/\/login\?next=\/onboarding$/);
  await logIn(page, user);
  await expect(page).toHaveURL(/\/onboarding$/);
  await expect(page.getByTestId('current-pledge')).toHaveText('Current pledge: none yet');

  await page.getByLabel('Storage to rent').fill('2');
  await page.getByLabel('Unit').selectOption('GB');
  await page.getByRole('button', { name: 'Onboard' }).click();
  await expect(page.getByRole('status')).toHaveText(`${user.username} has been onboarded! with 2048 MB of storage`);
  await expect(page.getByTestId('current-pledge')).toHaveText('Current pledge: 2 GB');

  await page.getByLabel('Storage to rent').fill('512');
  await page.getByLabel('Unit').selectOption('MB');
  await page.getByRole('button', { name: 'Onboard' }).click();
  await expect(page.getByTestId('current-pledge')).toHaveText('Current pledge: 512 MB');

  await page.getByLabel('Storage to rent').fill('0');
  await page.getByRole('button', { name: 'Onboard' }).click();
  await expect(page.getByRole('alert')).toHaveText('storageRented must be a positive number');
  await expect(page.getByTestId('current-pledge')).toHaveText('Current pledge: 512 MB');
});

test('rotate the peer ID, change the password, delete the account', async ({ page }) => {
  const user = await registerByApi(page, newUser('ac'));
  const oldPeer = await (async () => {
    const login = await page.request.post('/login', { data: { username: user.username, password: user.password } });
    const dash = await page.request.post('/dashboard', { headers: { Authorization: (await login.json()).token } });
    return (await dash.json()).peerId;
  })();
  const device = (await (await page.request.post('/android_auth', { data: { username: user.username, peerId: oldPeer } })).json()).token;
  expect((await page.request.post('/dashboard', { headers: { Authorization: device } })).status()).toBe(200);

  await page.goto('/login?next=/account');
  await logIn(page, user);
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.locator('[data-figure="peerId"] code')).toHaveText(oldPeer);

  await page.getByRole('button', { name: 'Rotate peer ID' }).click();
  await expect(page.locator('[data-figure="peerId"] code')).not.toHaveText(oldPeer);
  const newPeer = (await page.locator('[data-figure="peerId"] code').textContent()).trim();
  // The device signed in with the old peer ID is out; the new one works.
  expect((await page.request.post('/dashboard', { headers: { Authorization: device } })).status()).toBe(401);
  expect((await page.request.post('/android_auth', { data: { username: user.username, peerId: oldPeer } })).status()).toBe(401);
  expect((await page.request.post('/android_auth', { data: { username: user.username, peerId: newPeer } })).status()).toBe(200);

  await page.getByLabel('Current password').fill('not-it-at-all');
  await page.getByLabel('New password').fill('brand-new-password');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toHaveText('The current password is not right');
  await page.getByLabel('Current password').fill(user.password);
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('status')).toHaveText('Password changed.');
  // This session stays signed in; the old password no longer logs in.
  await page.goto('/dashboard');
  await expect(page).toHaveURL(/\/dashboard$/);
  expect((await page.request.post('/login', { data: { username: user.username, password: user.password } })).status()).toBe(401);

  await page.goto('/account');
  await hydrated(page);
  await page.getByLabel('Type your username to confirm').fill('someone-else');
  await page.getByRole('button', { name: 'Delete account' }).click();
  await expect(page.getByRole('alert')).toHaveText('Type your username to confirm');
  await page.getByLabel('Type your username to confirm').fill(user.username);
  await page.getByRole('button', { name: 'Delete account' }).click();
  await expect(page).toHaveURL(/\/\?deleted=1$/);
  await expect(page.getByRole('status')).toHaveText('Your account and its files were deleted.');
  expect((await page.request.post('/login', { data: { username: user.username, password: 'brand-new-password' } })).status()).toBe(401);
});
