// Resumable uploads from the /files page (issue 13): the page sends the
// file with tus in 4 MiB pieces. The browser's upload is throttled to
// 1 MiB/s (Chromium's network emulation) so it can be cut mid-way: by
// going offline (then online again), and by a reload. Each time the page
// says where it resumed from, and the file it ends with is the one
// `peervault cid` makes of the same bytes.
import { test, expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { BIN, hydrated, open, signedIn, tempFile } from './helpers.mjs';

const MiB = 1024 * 1024;
const cidOf = (file) => JSON.parse(execFileSync(BIN, ['cid', file], { encoding: 'utf8' })).cid;

/** Chromium's network emulation on `page`: upload bytes per second (-1: unthrottled), offline or not. */
async function network(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  return (uploadThroughput, offline = false) => cdp.send('Network.emulateNetworkConditions',
    { offline, latency: 0, downloadThroughput: -1, uploadThroughput });
}

/**
 * Signs up, opens /files and starts uploading a file of `size` random
 * bytes at 1 MiB/s; resolves once the progress bar is past `percent`, with
 * the file's path and the network emulation.
 */
async function uploadUntil(page, name, size, percent) {
  await signedIn(page, 'r');
  await open(page, '/files');
  const file = tempFile(name, randomBytes(size));
  await page.getByLabel('File').setInputFiles(file);
  const emulate = await network(page);
  await emulate(MiB);
  await page.getByRole('button', { name: 'Upload' }).click();
  const bar = page.getByLabel('Upload progress');
  await expect.poll(async () => Number(await bar.getAttribute('value')), { timeout: 15_000 }).toBeGreaterThan(percent);
  return { file, emulate };
}

test('the connection drops mid-upload and comes back: the upload goes on from where the server got to', async ({ page }) => {
  const { file, emulate } = await uploadUntil(page, 'offline.bin', 6 * MiB + 321, 25);
  await emulate(MiB, true);
  await expect(page.getByRole('status')).toContainText('Connection lost', { timeout: 10_000 });
  await page.waitForTimeout(1500); // offline for a while: the page keeps asking
  await emulate(MiB);
  await expect(page.getByRole('status')).toHaveText(/^Resumed at [1-9][\d.]* MB of 6\.0 MB$/, { timeout: 15_000 });
  const row = page.locator(`tr[data-cid="${cidOf(file)}"]`);
  await expect(row).toBeVisible({ timeout: 30_000 });
  await expect(row.locator('td.name')).toHaveText('offline.bin');
  await expect(page.getByRole('status')).toHaveCount(0);
});

test('a reload mid-upload: the page says the upload did not finish; the same file resumes from where it was', async ({ page }) => {
  const { file } = await uploadUntil(page, 'reloaded.bin', 7 * MiB + 5, 35);
  await page.reload();
  await hydrated(page);
  await expect(page.getByRole('status')).toHaveText(
    'The upload of reloaded.bin did not finish: choose the same file and upload it again to resume.');
  await expect(page.getByText('No files yet')).toBeVisible();
  await page.getByLabel('File').setInputFiles(file);
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page.getByRole('status')).toHaveText(/^Resumed at [1-9][\d.]* MB of 7\.0 MB$/, { timeout: 15_000 });
  const row = page.locator(`tr[data-cid="${cidOf(file)}"]`);
  await expect(row).toBeVisible({ timeout: 30_000 });
  await expect(page.getByRole('status')).toHaveCount(0);
  // Finished: nothing to resume after another reload.
  await page.reload();
  await hydrated(page);
  await expect(page.getByRole('status')).toHaveCount(0);
});
