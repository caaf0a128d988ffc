// Share links in a real browser (issue 14): share a file from /files, copy
// its link, fetch it from a fresh browser context without a session (the
// bytes, publicly cacheable), stop sharing, and the link answers 404 again
// (unshared content is not told apart from unknown content).
import { test, expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { open, signedIn, tempFile } from './helpers.mjs';

test('share a file, fetch its link without a session, stop sharing', async ({ page, browser }) => {
  await signedIn(page, 's');
  await open(page, '/files');
  const bytes = randomBytes(200_000);
  await page.getByLabel('File').setInputFiles(tempFile('to share.bin', bytes));
  await page.getByRole('button', { name: 'Upload' }).click();
  const row = page.locator('tr', { hasText: 'to share.bin' });
  await expect(row).toBeVisible({ timeout: 20_000 });
  const cid = await row.getAttribute('data-cid');
  await expect(row.locator('.share-url')).toHaveCount(0);

  await row.getByRole('button', { name: 'Share', exact: true }).click();
  const link = row.locator('.share-url');
  await expect(link).toHaveText(new RegExp(`/ipfs/${cid}$`));
  await expect(row.getByRole('button', { name: 'Copy the share link of to share.bin' })).toBeVisible();
  const url = await link.getAttribute('href');

  const stranger = await browser.newContext();
  try {
    const got = await stranger.request.get(url);
    expect(got.status()).toBe(200);
    expect(Buffer.from(await got.body()).equals(bytes)).toBe(true);
    expect(got.headers()['cache-control']).toBe('public, max-age=29030400, immutable');

    await row.getByRole('button', { name: 'Stop sharing' }).click();
    await expect(row.locator('.share-url')).toHaveCount(0);
    await expect(row.getByRole('button', { name: 'Share', exact: true })).toBeVisible();
    const gone = await stranger.request.get(url);
    expect(gone.status()).toBe(404);
    expect(await gone.json()).toEqual({ message: 'File not found' });
  } finally {
    await stranger.close();
  }
});
