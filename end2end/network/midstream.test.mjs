// A real `peervault node` killed with SIGKILL while it delivers (issue 12,
// PEERVAULT_KEEP_LOCAL_COPY=false): two real nodes hold a 32 MiB object the
// coordinator no longer keeps. Each talks to the coordinator through a TCP
// proxy that passes its uploads at 8 MiB/s, so a delivery takes seconds.
// As soon as the client of a download has its first bytes, the delivering
// node is killed; the download goes on from the other node and the client
// gets every byte right. With two coordinators (make test-network on
// PostgreSQL + S3) the nodes poll different instances: the second node
// delivers to its own, which restores the object into the shared bucket,
// and the download goes on from that copy.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { newUserWithToken, uploadFile, downloadLink, advanceClock, TEST_CLOCK, dashboard, freePort } from '../api/harness.mjs';
import { MiB, startNode, carOf, fileStatus, nodeStatus, stored, until, startCoordinators } from './nodes.mjs';

const REPLICAS = 2;
const RATE = 8 * MiB; // bytes per second from a node to the coordinator

let coord;
const nodes = [];
let alice;
let file;
let cid;

/** A proxy to the coordinator at `base` passing what the node sends at RATE; counts it. */
async function slowProxy(base) {
  const target = Number(new URL(base).port);
  const port = await freePort();
  const proxy = { up: 0, base: `http://127.0.0.1:${port}` };
  proxy.server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('data', (chunk) => {
      proxy.up += chunk.length;
      upstream.write(chunk);
      client.pause();
      setTimeout(() => client.resume(), Math.ceil((chunk.length / RATE) * 1000));
    });
    client.on('end', () => upstream.end());
    upstream.pipe(client);
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise((resolve) => proxy.server.listen(port, '127.0.0.1', resolve));
  return proxy;
}

before(async () => {
  coord = await startCoordinators({
    ...TEST_CLOCK,
    PEERVAULT_KEEP_LOCAL_COPY: 'false',
    PEERVAULT_REPLICAS: REPLICAS,
    PEERVAULT_NETWORK_TICK_SECS: 1,
    PEERVAULT_NODE_OFFLINE_SECS: 30,
    PEERVAULT_REPAIR_AFTER_SECS: 864_000,
    PEERVAULT_AUDIT_INTERVAL_SECS: 3600,
    PEERVAULT_AUDIT_DEADLINE_SECS: 600,
    PEERVAULT_RETRIEVE_WAIT_SECS: 5,
  });
  for (const instance of (coord.peers ?? [coord, coord]).slice(0, 2).reverse()) {
    const user = await newUserWithToken(coord);
    const { peerId } = await dashboard(coord, user.token);
    const proxy = await slowProxy(instance.base);
    nodes.push({ ...startNode(coord, user, peerId, { base: proxy.base }), proxy, instance: instance.base });
  }
  alice = await newUserWithToken(coord);
  file = crypto.randomBytes(32 * MiB);
  ({ cid } = await uploadFile(coord, alice.token, file));
  await stored(coord, alice.token, cid, REPLICAS, nodes);
  // Both replicas pass an audit; the coordinator's copy goes.
  await advanceClock(coord, 3_600_000 + 1000);
  await until(async () => (await fileStatus(coord, alice.token, cid)).json, (s) => s.localCopy === false);
});

after(async () => {
  for (const n of nodes) n.proc.kill('SIGKILL');
  for (const n of nodes) n.proxy.server.close();
  await coord?.stop();
});

describe('a real node killed mid-delivery', () => {
  it('the download goes on from the other node: every byte right, none missing', async () => {
    await until(async () => (await nodeStatus(coord, alice.token)).network.nodesOnline, (n) => n === REPLICAS);
    const url = await downloadLink(coord, alice.token, cid);
    const before = nodes.map((n) => n.proxy.up);
    let killed;
    const got = await new Promise((resolve, reject) => {
      http.get(url, (res) => {
        const chunks = [];
        res.on('data', (c) => {
          chunks.push(c);
          if (!killed) {
            // The node whose proxy carries the delivery.
            killed = nodes.reduce((a, b) => (b.proxy.up - before[nodes.indexOf(b)] > a.proxy.up - before[nodes.indexOf(a)] ? b : a));
            killed.proc.kill('SIGKILL');
          }
        });
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(got.status, 200);
    assert.equal(got.body.length, file.length, 'the whole length');
    assert.ok(got.body.equals(file), 'every byte right');
    await killed.exited;
    const sent = killed.proxy.up - before[nodes.indexOf(killed)];
    const car = carOf(file).length;
    assert.ok(sent < car, `the killed node sent ${sent} of the CAR's ${car} bytes: it died mid-stream`);
    const other = nodes.find((n) => n !== killed);
    // (its answer comes after the client has the last byte)
    await until(() => other.log(), (log) => /task done task="\d+" kind="retrieve"/.test(log), () => 'the other node delivered');
    if (coord.peers) {
      // The other node polls the other instance: it restored the copy there.
      assert.notEqual(other.instance, killed.instance);
      assert.equal((await fileStatus(coord, alice.token, cid)).json.localCopy, true);
    }
  });
});
