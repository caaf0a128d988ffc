// The whole password reset in the browser, the code read from the outbox
// (the test server has no SMTP server: mails are written as .eml files).
import { test, expect } from '@playwright/test';
import { newUser, registerByApi, open, fillLogin, unique } from './helpers.mjs';
import fs from 'node:fs';
import path from 'node:path';

const outbox = () => path.join(process.env.E2E_DATA_DIR, 'outbox');

/** The code in the newest outbox mail to `email`. */
async function codeFor(email) {
  for (let i = 0; i < 50; i++) {
    const mails = fs.existsSync(outbox()) ? fs.readdirSync(outbox()).filter((f) => f.endsWith('.eml')) : [];
    for (const f of mails) {
      const text = fs.readFileSync(path.join(outbox(), f), 'utf8');
      if (text.includes(`To: ${email}`)) {
        const m = text.match(/Your code: (\d{6})/);
        if (m) return m[1];
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail to ${email} in ${outbox()}`);
}

test('forgot password: mail a code, set a new password, log in with it', async ({ page }) => {
  const user = await registerByApi(page, newUser('rs'));
  const newPassword = `new-${unique()}-secret`;

  await open(page, '/login');
  await page.getByRole('link', { name: 'Forgot password?' }).click();
  await expect(page).toHaveURL(/\/reset-password$/);
  await page.getByLabel('Email').fill(user.email);
  await page.getByRole('button', { name: 'Send code' }).click();
  await expect(page.getByRole('status')).toContainText(`We sent a code to ${user.email}`);

  const code = await codeFor(user.email);
  await page.getByLabel('Code').fill(code === '000000' ? '999999' : String((Number(code) + 1) % 1e6).padStart(6, '0'));
  await page.getByLabel('New password').fill(newPassword);
  await page.getByRole('button', { name: 'Reset password' }).click();
  await expect(page.getByRole('alert')).toHaveText('That code is wrong or has expired. Ask for a new one.');

  await page.getByLabel('Code').fill(code);
  await page.getByRole('button', { name: 'Reset password' }).click();
  await expect(page).toHaveURL(/\/login\?reset=1$/);
  await expect(page.getByRole('status')).toContainText('Your password was changed');

  await fillLogin(page, user, newPassword);
  await expect(page).toHaveURL(/\/dashboard$/);
});

test('an unknown email is answered next to the form', async ({ page }) => {
  await open(page, '/reset-password');
  await page.getByLabel('Email').fill(`nobody_${unique()}@example.org`);
  await page.getByRole('button', { name: 'Send code' }).click();
  await expect(page.getByRole('alert')).toHaveText('No account uses this email. Check it, or register first.');
});
