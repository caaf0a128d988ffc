// Restarts (issue 12): the coordinator is killed with SIGKILL while nodes
// fetch objects and answer audits (real time, audits every 2 s), and
// restarted on the same data dir behind the same address; a node is
// killed with a store task open and restarted on its data dir. No
// placement is lost, no storage interval is paid twice, and the node
// finishes the task it was given before.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { startServer, newUserWithToken, uploadFile, dashboard, freePort, sleep } from '../api/harness.mjs';
import { MiB, startNode, startNodes, held, carPath, carOf, fileStatus, nodeStatus, stored, until } from './nodes.mjs';

const REPLICAS = 2;
const RATE = 0.02;
const coinsFor = (bytes, ms) => bytes / 2 ** 30 * (ms / 3_600_000) * RATE;

let coord;
let env;
let proxy;
let front; // what the nodes are told: the proxy's address, which outlives restarts
let target = 0;
let nodes = [];
let alice;
const objects = [];

/** A TCP proxy from a fixed port to whichever coordinator runs now. */
async function startProxy() {
  const port = await freePort();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${port}` };
}

async function startCoordinator(dataDir) {
  coord = await startServer(env, dataDir ? { dataDir, keepDataDir: true } : { keepDataDir: true });
  target = coord.port;
}

async function killCoordinator() {
  coord.proc.kill('SIGKILL');
  await coord.waitForExit();
}

before(async () => {
  env = {
    PEERVAULT_JWT_SECRET: crypto.randomBytes(32).toString('hex'),
    PEERVAULT_REPLICAS: REPLICAS,
    PEERVAULT_NETWORK_TICK_SECS: 1,
    PEERVAULT_NODE_OFFLINE_SECS: 6,
    PEERVAULT_REPAIR_AFTER_SECS: 600,
    PEERVAULT_AUDIT_INTERVAL_SECS: 2,
    PEERVAULT_AUDIT_DEADLINE_SECS: 20,
    PEERVAULT_STORAGE_COIN_RATE: RATE,
  };
  await startCoordinator();
  proxy = await startProxy();
  front = { base: proxy.base };
  nodes = await startNodes(front, 3);
  alice = await newUserWithToken(coord);
});

after(async () => {
  for (const n of nodes) n.proc.kill('SIGKILL');
  await coord?.stop();
  proxy?.server.close();
  fs.rmSync(coord.dataDir, { recursive: true, force: true });
});

describe('restarts', () => {
  it('the coordinator killed during transfers and during audits, twice: no placement lost, nothing paid twice', async () => {
    for (const size of [8 * MiB + 1, 3 * MiB, 200_000, 1]) {
      const bytes = crypto.randomBytes(size);
      const { cid } = await uploadFile(coord, alice.token, bytes);
      objects.push({ cid, bytes });
    }
    await killCoordinator(); // while the nodes fetch
    await startCoordinator(coord.dataDir);
    for (const o of objects) await stored(coord, alice.token, o.cid, REPLICAS, nodes);
    // a few audit rounds, then a kill in the middle of them
    await until(async () => (await fileStatus(coord, alice.token, objects[0].cid)).json,
      (s) => s.replicas.every((r) => r.lastAuditOk === true));
    await sleep(1500); // real time: audits are open or being answered
    await killCoordinator();
    await sleep(500); // real time: the nodes' answers fail meanwhile and are retried
    await startCoordinator(coord.dataDir);
    const restartedAt = Date.now();
    for (const o of objects) {
      await until(async () => (await fileStatus(coord, alice.token, o.cid)).json,
        (s) => s.stored === REPLICAS && s.replicas.every((r) => r.state === 'stored' && r.lastAuditOk === true && r.lastAuditAt > restartedAt));
    }
    const sizes = new Map(objects.map((o) => [o.cid, o.bytes.length]));
    for (const n of nodes) {
      n.id = (await nodeStatus(coord, n.user.token)).node;
      const credits = (await nodeStatus(coord, n.user.token)).storageCredits;
      const byCid = new Map();
      for (const c of credits) byCid.set(c.cid, [...(byCid.get(c.cid) ?? []), c]);
      for (const [cid, list] of byCid) {
        list.sort((x, y) => x.fromMs - y.fromMs);
        for (const [i, c] of list.entries()) {
          assert.equal(c.bytes, sizes.get(cid));
          assert.equal(c.coins, coinsFor(c.bytes, c.toMs - c.fromMs));
          if (i > 0) assert.ok(c.fromMs >= list[i - 1].toMs, `${cid}: intervals never overlap (paid once)`);
        }
      }
    }
    for (const o of objects) {
      const s = (await fileStatus(coord, alice.token, o.cid)).json;
      assert.equal(s.replicas.length, REPLICAS, 'no placement lost or made again');
      const expected = carOf(o.bytes);
      for (const r of s.replicas) {
        assert.ok(fs.readFileSync(carPath(nodes.find((n) => n.id === r.node), o.cid)).equals(expected));
      }
    }
  });

  it('a node killed with a store task open finishes it after its restart', async () => {
    // a fourth node with the largest pledge: new objects go to it first
    const user = await newUserWithToken(coord);
    const { peerId } = await dashboard(coord, user.token);
    let big = startNode(front, user, peerId, { pledgeMb: 1000 });
    nodes.push(big);
    big.id = await until(async () => (await nodeStatus(coord, user.token)).node, (id) => Boolean(id));
    big.proc.kill('SIGSTOP'); // frozen: still online for a few seconds, fetching nothing
    const bytes = crypto.randomBytes(2 * MiB);
    const { cid } = await uploadFile(coord, alice.token, bytes);
    await until(async () => (await fileStatus(coord, alice.token, cid)).json,
      (s) => s.replicas.some((r) => r.node === big.id && r.state === 'assigned'));
    await big.kill();
    assert.deepEqual(held(big), []);
    big = startNode(front, user, peerId, { dir: big.dir, pledgeMb: 1000 });
    big.id = nodes.at(-1).id;
    nodes[nodes.length - 1] = big;
    const s = await stored(coord, alice.token, cid, REPLICAS, nodes);
    assert.ok(s.replicas.some((r) => r.node === big.id && r.state === 'stored'), 'the restarted node stored it');
    assert.ok(fs.readFileSync(carPath(big, cid)).equals(carOf(bytes)));
  });
});
