// Repair (issue 12, docs/NETWORK.md), in real time with short timers: four
// `peervault node`s, three replicas. One node is killed with SIGKILL; after
// PEERVAULT_REPAIR_AFTER_SECS its placements are lost and every object is
// back to three stored replicas on the others; nothing new goes to the dead
// node; when it comes back (same account, same data dir) its stale copies
// are dropped.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { newUserWithToken, uploadFile } from '../api/harness.mjs';
import { MiB, startNodes, startNode, held, carPath, carOf, fileStatus, nodeStatus, stored, until, startCoordinators } from './nodes.mjs';

const REPLICAS = 3;

let coord;
let nodes = [];
let alice;
const objects = [];

before(async () => {
  coord = await startCoordinators({
    PEERVAULT_REPLICAS: REPLICAS,
    PEERVAULT_NETWORK_TICK_SECS: 1,
    PEERVAULT_NODE_OFFLINE_SECS: 4, // polls wait at most 1.3 s
    PEERVAULT_REPAIR_AFTER_SECS: 6,
  });
  nodes = await startNodes(coord, 4);
  alice = await newUserWithToken(coord);
  for (const bytes of [Buffer.from('x'), crypto.randomBytes(MiB + 1), crypto.randomBytes(300_000)]) {
    const { cid } = await uploadFile(coord, alice.token, bytes);
    objects.push({ cid, bytes });
  }
  for (const o of objects) await stored(coord, alice.token, o.cid, REPLICAS, nodes);
  for (const n of nodes) n.id = (await nodeStatus(coord, n.user.token)).node;
});

after(async () => {
  for (const n of nodes) n.proc.kill('SIGKILL');
  await coord?.stop();
});

describe('a node killed with SIGKILL', () => {
  let dead;
  let stale;

  it('loses its placements after the repair timer; every object is back to 3 stored replicas on the other nodes', async () => {
    // the node holding the most objects
    dead = [...nodes].sort((a, b) => held(b).length - held(a).length)[0];
    stale = held(dead);
    assert.ok(stale.length > 0);
    await dead.kill();
    const alive = nodes.filter((n) => n !== dead);
    for (const o of objects) {
      const s = await stored(coord, alice.token, o.cid, REPLICAS, alive,
        (st) => st.replicas.filter((r) => r.state === 'stored').every((r) => r.node !== dead.id));
      const holders = s.replicas.filter((r) => r.state === 'stored').map((r) => r.node);
      assert.deepEqual(holders.sort(), alive.map((n) => n.id).sort(), 'on the three others');
      if (stale.includes(`${o.cid}.car`)) {
        assert.ok(s.replicas.some((r) => r.node === dead.id && r.state === 'lost'), 'the dead node\'s replica is lost');
      }
      const expected = carOf(o.bytes);
      for (const n of alive) assert.ok(fs.readFileSync(carPath(n, o.cid)).equals(expected));
    }
    // nothing new is placed on the dead node
    const late = crypto.randomBytes(50_000);
    const { cid } = await uploadFile(coord, alice.token, late);
    objects.push({ cid, bytes: late });
    const s = await stored(coord, alice.token, cid, REPLICAS, alive);
    assert.ok(s.replicas.every((r) => r.node !== dead.id));
    assert.deepEqual(held(dead), stale, 'the dead node\'s disk is as it was');
  });

  it('when it comes back, its stale copies get drop tasks; every other copy stays', async () => {
    const others = new Map(nodes.filter((n) => n !== dead).map((n) => [n, held(n)]));
    const back = startNode(coord, dead.user, dead.peerId, { dir: dead.dir, base: dead.base });
    back.id = dead.id;
    nodes[nodes.indexOf(dead)] = back;
    await until(async () => held(back), (files) => files.length === 0, (f) => `${f}\n${back.log()}`);
    for (const [n, files] of others) assert.deepEqual(held(n), files);
    for (const o of objects) {
      const s = (await fileStatus(coord, alice.token, o.cid)).json;
      assert.equal(s.stored, REPLICAS);
      assert.ok(!s.replicas.some((r) => r.node === back.id && r.state !== 'lost'));
    }
  });
});
