// Folders in a real browser (issue 14): upload a folder with the folder
// picker (its root CID is what `ipfs-car pack <dir>` gives), browse it on
// /files/folder, download a file from inside it, drop several files (a
// folder of them), drop a real folder (Chromium's drag and drop from the
// desktop, driven through CDP: the page reads the directory entries), share
// the folder and fetch a file in it by path from a fresh browser context
// without a session.
import { test, expect } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open, signedIn, screenshot } from './helpers.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const IPFS_CAR = path.join(ROOT, 'node_modules/.bin/ipfs-car');

/**
 * A folder `name` of `files` ({path: bytes}) and empty `folders` in a fresh
 * temporary directory: { work, dir, expected }, `expected` being the root
 * CID `ipfs-car pack <dir>` gives it.
 */
function folderOnDisk(name, files, folders = []) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-folder-'));
  const dir = path.join(work, name);
  for (const sub of folders) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  for (const [rel, bytes] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), bytes);
  }
  const expected = execFileSync(IPFS_CAR, ['pack', dir, '-o', path.join(work, 'ref.car')], { encoding: 'utf8' }).trim().split('\n').pop();
  return { work, dir, expected };
}

test('upload a folder, browse it, download a file in it, share it and fetch a file by path without a session', async ({ page, browser }) => {
  const photo = randomBytes(300_000);
  const { work, dir, expected } = folderOnDisk('holiday', {
    'notes.txt': 'a folder from the browser\n', 'day one/beach.jpg': photo, 'day one/größe.txt': 'Unicode names too\n',
  });

  await signedIn(page, 'fo');
  await open(page, '/files');
  await page.getByLabel('Or a folder').setInputFiles(dir);
  await expect(page.getByText('Selected: a folder of 3 files')).toBeVisible();
  await page.getByRole('button', { name: 'Upload' }).click();
  const row = page.locator(`tr[data-cid="${expected}"]`);
  await expect(row).toBeVisible({ timeout: 20_000 });
  await expect(row.locator('td.name')).toHaveText('holiday/');
  await expect(row).toContainText('Folder, 3 files');

  // browse: the folder, then its sub-folder; download a file from it
  await row.getByRole('link', { name: 'holiday/' }).click();
  await expect(page).toHaveURL(new RegExp(`/files/folder\\?cid=${expected}$`));
  await expect(page.getByRole('heading', { name: 'holiday' })).toBeVisible();
  await expect(page.locator('table.folder tbody tr')).toHaveCount(2);
  await page.getByRole('link', { name: 'day one/' }).click();
  await expect(page).toHaveURL(/path=day%20one$/);
  await expect(page.locator('table.folder tbody tr')).toHaveCount(2);
  await screenshot(page, 'folder-desktop');
  const downloading = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download beach.jpg' }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe('beach.jpg');
  expect(fs.readFileSync(await download.path()).equals(photo)).toBe(true);

  // share it from /files: a file in it by path, from a context without a session
  await open(page, '/files');
  await row.getByRole('button', { name: 'Share', exact: true }).click();
  const link = row.locator('.share-url');
  await expect(link).toHaveText(new RegExp(`/ipfs/${expected}$`));
  await screenshot(page, 'files-shared-desktop');
  const url = await link.getAttribute('href');
  const stranger = await browser.newContext();
  try {
    const got = await stranger.request.get(`${url}/day%20one/beach.jpg`);
    expect(got.status()).toBe(200);
    expect(Buffer.from(await got.body()).equals(photo)).toBe(true);
    expect(got.headers()['cache-control']).toBe('public, max-age=29030400, immutable');
  } finally {
    await stranger.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test('several files dropped at once go up as one folder of them', async ({ page }) => {
  await signedIn(page, 'fd');
  await open(page, '/files');
  const dropped = await page.evaluateHandle(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['first'], 'one.txt', { type: 'text/plain' }));
    dt.items.add(new File(['second'], 'two.txt', { type: 'text/plain' }));
    return dt;
  });
  const zone = page.locator('.dropzone');
  await zone.dispatchEvent('drop', { dataTransfer: dropped });
  await expect(page.getByText('Selected: 2 dropped files')).toBeVisible();
  await page.getByRole('button', { name: 'Upload' }).click();
  const row = page.locator('tr[data-cid]');
  await expect(row).toHaveCount(1, { timeout: 20_000 });
  await expect(row).toContainText('Folder, 2 files');
  await expect(row.locator('td.name')).toHaveText('2 files/');
});

test('a folder dragged in and dropped goes up as that folder (Chromium\'s own drag and drop, driven through CDP)', async ({ page }) => {
  // Input.dispatchDragEvent with a path is how Chromium takes a drag from the
  // desktop: the page gets a real directory entry and reads it through.
  const map = randomBytes(200_000);
  const { work, dir, expected } = folderOnDisk('trip', {
    'plan.txt': 'dropped, not picked\n', 'maps/north.bin': map, 'maps/old/süd.txt': 'a folder inside a folder\n',
  }, ['empty']);
  try {
    await signedIn(page, 'dg');
    await open(page, '/files');
    const box = await page.locator('.dropzone').boundingBox();
    const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
    const cdp = await page.context().newCDPSession(page);
    const data = { items: [], files: [dir], dragOperationsMask: 1 };
    for (const type of ['dragEnter', 'dragOver', 'drop']) await cdp.send('Input.dispatchDragEvent', { type, ...at, data });
    await expect(page.getByText('Selected: 3 dropped files')).toBeVisible();
    await page.getByRole('button', { name: 'Upload' }).click();
    const row = page.locator(`tr[data-cid="${expected}"]`);
    await expect(row).toBeVisible({ timeout: 20_000 });
    await expect(row.locator('td.name')).toHaveText('trip/');
    await expect(row).toContainText('Folder, 3 files');
    // what went up is the folder's files by path
    await row.getByRole('link', { name: 'trip/' }).click();
    await page.getByRole('link', { name: 'maps/' }).click();
    const downloading = page.waitForEvent('download');
    await page.getByRole('link', { name: 'Download north.bin' }).click();
    expect(fs.readFileSync(await (await downloading).path()).equals(map)).toBe(true);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
