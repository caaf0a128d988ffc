// What the storage-network suites share: `peervault node` processes on
// loopback, a test-driven node speaking the protocol by hand, and waits
// on what real processes do on their own.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import {
  post, request, binaryPath, sleep, newUserWithToken, dashboard, deviceToken, onboard, startServer, sharedStorage, onPostgres, onS3,
} from '../api/harness.mjs';

export const MiB = 1024 * 1024;
export const SETTLE_MS = 60_000;

/** How many coordinator instances a suite runs (make test-network: 1 on SQLite, 2 on PostgreSQL + S3). */
export const COORDINATORS = Number(process.env.PEERVAULT_TEST_COORDINATORS ?? 1);

/**
 * The coordinator of a network suite: one server, or COORDINATORS instances
 * sharing one database, one bucket and the JWT secret. The first is
 * returned (clients talk to it); nodes are spread over all of them, the
 * first node on the last instance (see `nodeBase`); `stop` stops them all.
 */
export async function startCoordinators(env) {
  if (COORDINATORS === 1) return startServer(env);
  assert.ok(onPostgres && onS3, 'several coordinators share PostgreSQL and S3 (scripts/with-postgres.sh, scripts/with-s3.sh)');
  const shared = { ...sharedStorage(), PEERVAULT_JWT_SECRET: crypto.randomBytes(32).toString('hex'), ...env };
  const all = await Promise.all(Array.from({ length: COORDINATORS }, () => startServer(shared)));
  const [first] = all;
  const stops = all.map((s) => s.stop);
  first.peers = all;
  first.placed = 0;
  first.stop = () => Promise.all(stops.map((stop) => stop()));
  return first;
}

/** The address a new node is told: the coordinators' in turn, from the last. */
function nodeBase(coord) {
  if (!coord.peers) return coord.base;
  coord.placed += 1;
  return coord.peers[coord.peers.length - (coord.placed % coord.peers.length) - 1].base;
}

/** Starts `peervault node` for `user` (its data dir kept across restarts when given). */
export function startNode(coord, user, peerId, { dir, pledgeMb = 100, base = nodeBase(coord) } = {}) {
  const dataDir = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pv-node-'));
  const proc = spawn(binaryPath(), [
    'node', '--coordinator', base, '--username', user.username, '--peer-id', peerId,
    '--data-dir', dataDir, '--pledge-mb', String(pledgeMb), '--heartbeat-secs', '600',
  ], { env: { ...process.env, RUST_LOG: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const err = [];
  proc.stderr.on('data', (c) => err.push(c));
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  return {
    user, peerId, dir: dataDir, base, proc, exited, log: () => Buffer.concat(err).toString('utf8'),
    async kill() { proc.kill('SIGKILL'); await exited; },
  };
}

/** `count` fresh accounts, each running a node. */
export async function startNodes(coord, count, options) {
  const nodes = [];
  for (let i = 0; i < count; i += 1) {
    const user = await newUserWithToken(coord);
    const { peerId } = await dashboard(coord, user.token);
    nodes.push(startNode(coord, user, peerId, options));
  }
  return nodes;
}

/** The CAR files a node keeps, sorted. */
export function held(node) {
  const dir = path.join(node.dir, 'objects');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.car')).sort() : [];
}

export const carPath = (node, cid) => path.join(node.dir, 'objects', `${cid}.car`);

/** The CAR `peervault car` makes of `bytes`. */
export function carOf(bytes) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-car-'));
  fs.writeFileSync(path.join(dir, 'f'), bytes);
  execFileSync(binaryPath(), ['car', path.join(dir, 'f'), '-o', path.join(dir, 'f.car')]);
  const car = fs.readFileSync(path.join(dir, 'f.car'));
  fs.rmSync(dir, { recursive: true, force: true });
  return car;
}

export const fileStatus = (coord, token, cid) => post(coord, '/file_status', { token, json: { cid } });
export const nodeStatus = async (coord, token) => {
  const res = await post(coord, '/node_status', { token });
  assert.equal(res.status, 200, res.text);
  return res.json;
};

/**
 * Polls until `check(value)` holds for `value = await get()` (real processes
 * act on their own); fails with `describe(value)` after SETTLE_MS.
 */
export async function until(get, check, describe = (v) => JSON.stringify(v)) {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const value = await get();
    if (check(value)) return value;
    if (Date.now() > deadline) assert.fail(`not reached after ${SETTLE_MS} ms: ${describe(value)}`);
    await sleep(100); // real time: nodes and the network loop run on their own
  }
}

/** Waits until `cid` has `wanted` stored replicas (and `extra(status)` holds). */
export function stored(coord, token, cid, wanted, nodes = [], extra = () => true) {
  return until(
    async () => (await fileStatus(coord, token, cid)).json,
    (s) => s?.stored === wanted && extra(s),
    (s) => `${JSON.stringify(s)}\n${nodes.map((n) => n.log().split('\n').slice(-6).join('\n')).join('\n---\n')}`,
  );
}

/** An account whose node the test drives by hand (device token, pledge). */
export async function handNode(coord, pledgeMb) {
  const user = await newUserWithToken(coord);
  await onboard(coord, user.token, pledgeMb);
  const device = await deviceToken(coord, user);
  return {
    user,
    device,
    work: async (wait = 0) => {
      const res = await post(coord, '/node/work', { token: device, json: { wait } });
      assert.equal(res.status, 200, res.text);
      return res.json.tasks;
    },
    fetch: (cid) => request(coord, 'GET', `/node/content/${cid}`, { token: device }),
    done: (id) => post(coord, '/node/done', { token: device, json: { id } }),
    failed: (id, reason = 'test') => post(coord, '/node/failed', { token: device, json: { id, reason } }),
    proof: (id, body) => request(coord, 'POST', `/node/proof/${id}`, {
      token: device, body, headers: { 'content-type': 'application/octet-stream' },
    }),
  };
}
