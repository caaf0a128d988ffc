// The storage network, placement (issue 12, docs/NETWORK.md): real
// processes on loopback, the release binary as the coordinator and as four
// `peervault node`s. Every stored object reaches PEERVAULT_REPLICAS stored
// replicas on distinct nodes, and each node keeps exactly the objects placed
// on it, as the same CAR bytes `peervault car` makes; a deleted file's
// replicas are dropped from the nodes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { post, request, assertJson, MSG, newUserWithToken, deviceToken, uploadFile, sleep } from '../api/harness.mjs';
import { MiB, SETTLE_MS, startNodes, held, carOf, fileStatus, stored, startCoordinators } from './nodes.mjs';

const REPLICAS = 3;
const NODES = 4;

let coord;
let nodes = [];

before(async () => {
  coord = await startCoordinators({ PEERVAULT_REPLICAS: REPLICAS, PEERVAULT_NETWORK_TICK_SECS: 1, PEERVAULT_NODE_OFFLINE_SECS: 30 });
  nodes = await startNodes(coord, NODES);
});

after(async () => {
  for (const n of nodes) n.proc.kill('SIGKILL');
  await coord?.stop();
});

const status = (token, cid) => fileStatus(coord, token, cid);
const settled = (token, cid) => stored(coord, token, cid, REPLICAS, nodes);

describe(`${NODES} nodes, ${REPLICAS} replicas`, () => {
  const uploads = [];

  it('6 uploads (0 B, 1 B, 1 MiB + 1, 5 MB, the same content by two users) reach 3 stored replicas on 3 distinct nodes', async () => {
    const alice = await newUserWithToken(coord);
    const bob = await newUserWithToken(coord);
    const shared = crypto.randomBytes(300_000);
    for (const [who, bytes] of [
      [alice, Buffer.alloc(0)], [alice, Buffer.from('x')], [alice, crypto.randomBytes(MiB + 1)],
      [alice, crypto.randomBytes(5_000_000)], [alice, shared], [bob, shared],
    ]) {
      const { cid } = await uploadFile(coord, who.token, bytes);
      uploads.push({ who, bytes, cid });
    }
    assert.equal(new Set(uploads.map((u) => u.cid)).size, 5, 'the shared content is one object');
    for (const u of uploads) {
      const s = await settled(u.who.token, u.cid);
      assert.equal(s.cid, u.cid);
      assert.equal(s.wanted, REPLICAS);
      assert.equal(s.localCopy, true);
      const stored = s.replicas.filter((r) => r.state === 'stored');
      assert.equal(stored.length, REPLICAS);
      assert.equal(new Set(stored.map((r) => r.node)).size, REPLICAS, 'distinct nodes');
      for (const r of stored) {
        assert.match(r.node, /^[0-9a-f]{16}$/, 'an opaque node id');
        assert.ok(!nodes.some((n) => r.node.includes(n.peerId) || r.node.includes(n.user.username)));
        assert.equal(typeof r.storedAt, 'number');
      }
    }
  });

  it('each node keeps exactly the objects placed on it, byte-identical to `peervault car`', async () => {
    const distinct = [...new Map(uploads.map((u) => [u.cid, u])).values()];
    // placements per node, from /file_status, against files per node dir
    const perNode = new Map();
    for (const u of distinct) {
      for (const r of (await status(u.who.token, u.cid)).json.replicas.filter((x) => x.state === 'stored')) {
        perNode.set(r.node, (perNode.get(r.node) ?? 0) + 1);
      }
    }
    const counts = nodes.map((n) => held(n).length).filter((c) => c > 0).sort();
    assert.deepEqual(counts, [...perNode.values()].sort(), 'files per node = placements per node');
    for (const u of distinct) {
      const holders = nodes.filter((n) => held(n).includes(`${u.cid}.car`));
      assert.equal(holders.length, REPLICAS, `${u.cid} on ${holders.length} nodes`);
      const expected = carOf(u.bytes);
      for (const n of holders) {
        assert.ok(fs.readFileSync(path.join(n.dir, 'objects', `${u.cid}.car`)).equals(expected), `${u.cid} on a node`);
      }
    }
    for (const n of nodes) {
      assert.deepEqual(fs.readdirSync(path.join(n.dir, 'staging')), [], 'no staging leftovers');
    }
  });

  it('bad node calls are refused with JSON and change nothing', async () => {
    const { who, cid } = uploads[3];
    const before = (await status(who.token, cid)).json;
    const stranger = await newUserWithToken(coord);
    const device = await deviceToken(coord, stranger);
    assertJson(await post(coord, '/node/work', { json: { wait: 0 } }), 401, MSG.tokenMissing);
    assertJson(await post(coord, '/node/work', { token: stranger.token, json: { wait: 0 } }), 403,
      { message: 'Node calls need a device token (from /android_auth)' });
    for (const wait of [-1, 61, 'soon', true]) {
      assertJson(await post(coord, '/node/work', { token: device, json: { wait } }), 400, { message: 'wait must be a number from 0 to 60' });
    }
    assertJson(await post(coord, '/node/work', { token: device, json: { wait: 0, freeBytes: -5 } }), 400, { message: 'freeBytes must be a number of bytes' });
    assertJson(await post(coord, '/node/done', { token: device, json: {} }), 400, MSG.missing('id'));
    assertJson(await post(coord, '/node/done', { token: device, json: { id: [1] } }), 400, { message: 'id must be a string' });
    // task ids of other nodes (they are small numbers) are not this node's
    for (const id of ['1', '2', 1, '99999', 'x']) {
      assertJson(await post(coord, '/node/done', { token: device, json: { id } }), 404, { message: 'Task not found' });
      assertJson(await post(coord, '/node/failed', { token: device, json: { id, reason: 'no' } }), 404, { message: 'Task not found' });
    }
    // content is only for the nodes it is placed on
    const notPlaced = { message: 'No such object is placed on this node' };
    assertJson(await request(coord, 'GET', `/node/content/${cid}`, { token: device }), 404, notPlaced);
    assertJson(await request(coord, 'GET', `/node/content/${cid}`, { token: who.token }), 403,
      { message: 'Node calls need a device token (from /android_auth)' });
    // another account cannot see where a file is held
    assertJson(await status(stranger.token, cid), 404, { message: 'Invalid Credentials' });
    assertJson(await post(coord, '/file_status', { token: who.token, json: {} }), 400, MSG.missing('cid'));
    assert.deepEqual((await status(who.token, cid)).json, before, 'nothing changed');
  });
  it('the shipped Android client (device token, pledge, heartbeats, bandwidth, dashboard) behaves as before and is given no placements', async () => {
    const phone = await newUserWithToken(coord);
    const device = await deviceToken(coord, phone);
    assertJson(await post(coord, '/onboarding', { token: device, json: { storageRented: 2048 } }), 200);
    for (let i = 0; i < 2; i += 1) {
      assertJson(await post(coord, '/active_time', { token: device, json: { active_time: '1' } }), 200);
    }
    assertJson(await post(coord, '/rateinout', { token: device, json: { TotalIn: 10, TotalOut: 20, RateIn: 1, RateOut: 2 } }), 200);
    const d = assertJson(await post(coord, '/dashboard', { token: device }), 200);
    assert.equal(d.storage_rented, 2048);
    await sleep(1500); // real time: a network round passes
    const mine = assertJson(await post(coord, '/node_status', { token: device }), 200);
    assert.deepEqual([mine.node, mine.placements, mine.heldBytes, mine.storageCoins], [null, 0, 0, 0],
      'never polled for work: not a node, holds nothing');
  });

  it('a deleted file\'s replicas are dropped from its nodes; every other object stays where it is', async () => {
    const gone = uploads[2]; // alice's 1 MiB + 1, stored by her alone
    const before = new Map(nodes.map((n) => [n.dir, held(n)]));
    assert.equal(nodes.filter((n) => before.get(n.dir).includes(`${gone.cid}.car`)).length, REPLICAS);
    assertJson(await post(coord, '/delete_file', { token: gone.who.token, json: { cid: gone.cid } }), 200,
      { message: 'File deleted successfully' });
    const deadline = Date.now() + SETTLE_MS;
    while (nodes.some((n) => held(n).includes(`${gone.cid}.car`))) {
      if (Date.now() > deadline) assert.fail(`still held after ${SETTLE_MS} ms`);
      await sleep(200); // real time: the nodes act on their own
    }
    for (const n of nodes) {
      assert.deepEqual(held(n), before.get(n.dir).filter((f) => f !== `${gone.cid}.car`), 'the other objects stay');
    }
    assertJson(await status(gone.who.token, gone.cid), 404, { message: 'Invalid Credentials' });
  });
});
