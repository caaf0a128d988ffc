// Browser tests in Debian's Chromium (never a downloaded browser) against the
// release build, started on a free loopback port with a throwaway data dir.
import { defineConfig } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const port = Number(process.env.E2E_PORT || 3107);
const dataDir = process.env.E2E_DATA_DIR || mkdtempSync(join(tmpdir(), 'peervault-e2e-'));
process.env.E2E_DATA_DIR = dataDir; // workers re-import this file: keep one data dir
const base = `http://127.0.0.1:${port}`;

export default defineConfig({
  testDir: './browser',
  outputDir: './test-results',
  timeout: 30_000,
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: base,
    trace: 'retain-on-failure',
    acceptDownloads: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run'],
    },
  },
  webServer: {
    command: join(root, 'target/release/peervault'),
    cwd: root,
    url: `${base}/healthz`,
    reuseExistingServer: false,
    timeout: 30_000,
    stdout: 'ignore',
    stderr: 'pipe',
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: join(root, 'target/site'),
      PEERVAULT_DATA_DIR: dataDir,
      RUST_LOG: 'warn',
      PEERVAULT_MAX_FILE_BYTES: String(8 * 1024 * 1024),
      // every spec registers its users from 127.0.0.1
      PEERVAULT_REGISTER_MAX_PER_IP: '1000000',
      // network.spec runs storage nodes: place on them within a second
      PEERVAULT_NETWORK_TICK_SECS: '1',
    },
  },
});
