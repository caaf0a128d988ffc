// The storage network on the pages: /files says how many copies of each
// file the nodes hold (a warning while fewer than wanted), and the
// dashboard shows a node owner what their node holds and the network's
// figures. Three real `peervault node` processes hold the copies.
import { test, expect } from '@playwright/test';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, newUser, registerByApi, open, fillLogin } from './helpers.mjs';

const nodes = [];
/** As the pages write byte counts (model::human_bytes). */
const humanBytes = (bytes) => {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
};
test.afterAll(() => {
  for (const n of nodes) n.kill('SIGKILL');
});

async function startNode(page, baseURL) {
  const user = await registerByApi(page, newUser('node'));
  const token = (await (await page.request.post('/login', { data: user })).json()).token;
  const { peerId } = await (await page.request.post('/dashboard', { headers: { Authorization: token } })).json();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-node-'));
  nodes.push(spawn(BIN, ['node', '--coordinator', baseURL, '--username', user.username, '--peer-id', peerId,
    '--data-dir', dir, '--pledge-mb', '100'], { stdio: 'ignore' }));
  return user;
}

test('copies per file on /files, and a node owner\'s figures on the dashboard', async ({ page, baseURL }) => {
  const owner = await registerByApi(page, newUser('owner'));
  const token = (await (await page.request.post('/login', { data: owner })).json()).token;
  const up = await page.request.post('/upload_file', {
    headers: { Authorization: token },
    multipart: { file: { name: 'kept.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(300_000, 7) } },
  });
  expect(up.status()).toBe(200);
  const { cid } = (await up.json()).web3;

  await open(page, '/login');
  await fillLogin(page, owner);
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.locator('[data-figure="no_node"]')).toContainText('None of your devices holds data for the network yet');
  await open(page, '/files');
  const copies = page.locator(`tr[data-cid="${cid}"] td.replicas`);
  await expect(copies).toHaveText('0 of 3 copies fewer than wanted');
  await expect(copies).toHaveClass(/short/);

  const holders = [];
  for (let i = 0; i < 3; i += 1) holders.push(await startNode(page, baseURL));
  await expect(async () => {
    await page.reload();
    await expect(copies).toHaveText('3 of 3 copies', { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await expect(copies).not.toHaveClass(/short/);

  // a node owner's dashboard
  await page.context().clearCookies();
  await open(page, '/login');
  await fillLogin(page, holders[0]);
  await expect(page).toHaveURL(/\/dashboard$/);
  const figure = (id) => page.locator(`[data-figure="${id}"] dd`);
  const nodeToken = (await (await page.request.post('/login', { data: holders[0] })).json()).token;
  // The nodes also take the copies of files other specs uploaded: the page
  // must show what /node_status says at the same moment.
  await expect(async () => {
    await page.reload();
    const status = await (await page.request.post('/node_status', { headers: { Authorization: nodeToken } })).json();
    await expect(figure('held_bytes')).toHaveText(humanBytes(status.heldBytes), { timeout: 1000 });
    await expect(figure('placements')).toHaveText(String(status.placements), { timeout: 1000 });
    await expect(figure('network_placed')).toHaveText(humanBytes(status.network.placedBytes), { timeout: 1000 });
    expect(status.placements).toBeGreaterThan(0);
  }).toPass({ timeout: 30_000 });
  await expect(figure('audit_score')).toHaveText('No audits yet');
  await expect(figure('storage_coins')).toHaveText('0 coins');
  await expect(figure('nodes_online')).toHaveText('3');
  await expect(figure('network_pledge')).toHaveText('300 MB');
});
