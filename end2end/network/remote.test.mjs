// Serving from the network (issue 12, PEERVAULT_KEEP_LOCAL_COPY=false):
// once an object's replicas are stored and audited the coordinator drops
// its own copy, and downloads, Range requests and ?format=car come from a
// node, checked block by block. Three holders: a node driven by hand (it
// holds the oldest replica, so it is asked first) and two real
// `peervault node`s. The hand node lies or dies mid-stream; the download
// still completes from another node, byte for byte, and with every holder
// offline the answer is a 503. With two coordinators (make test-network on
// PostgreSQL + S3) the hand node and one real node poll the first, the
// other real node the second: a download at the first whose only online
// holder polls the second is restored into the shared bucket by the second.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import {
  request, post, assertJson, newUserWithToken, uploadFile, downloadLink, advanceClock, TEST_CLOCK, hasObject,
} from '../api/harness.mjs';
import { MiB, COORDINATORS, startNodes, handNode, carOf, fileStatus, nodeStatus, stored, until, startCoordinators } from './nodes.mjs';

const REPLICAS = 3;

let coord;
let hand;
let real = [];
let alice;
let file;
let cid;
let car;
let storeTask;
const retrieveTasks = [];

/** The CID ipfs-car gives a raw leaf: CIDv1, raw codec, sha2-256, base32. */
function rawCid(bytes) {
  const digest = crypto.createHash('sha256').update(bytes).digest();
  const raw = Buffer.concat([Buffer.from([0x01, 0x55, 0x12, 0x20]), digest]);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  let out = 'b';
  for (const byte of raw) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) { out += alphabet[(value >>> (bits - 5)) & 31]; bits -= 5; }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

const taskOf = (node, kind) => until(() => node.work(2), (ts) => ts.some((t) => t.kind === kind && t.cid === cid))
  .then((ts) => ts.find((t) => t.kind === kind && t.cid === cid));
const linkPath = async (suffix = '') => {
  const u = new URL(await downloadLink(coord, alice.token, cid));
  return u.pathname + u.search + suffix;
};
const download = async (opts = {}, suffix = '') => request(coord, 'GET', await linkPath(suffix), { timeout: 60_000, ...opts });

/**
 * POSTs `body` to /node/deliver/{id} as the hand node (to the instance at
 * `base`); with `cutAfter`, sends that much and drops the connection.
 */
function deliver(id, body, { cutAfter, base = coord.base } = {}) {
  return new Promise((resolve) => {
    const url = new URL(`/node/deliver/${id}`, base);
    const req = http.request({
      method: 'POST', hostname: url.hostname, port: url.port, path: url.pathname,
      headers: { authorization: hand.device, 'content-type': 'application/vnd.ipld.car', 'content-length': body.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', () => resolve({ status: 0, headers: {}, text: '' }));
    if (cutAfter === undefined) {
      req.end(body);
    } else {
      req.write(body.subarray(0, cutAfter), () => setTimeout(() => { req.destroy(); resolve({ status: 0, headers: {}, text: '' }); }, 200));
    }
  });
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
    PEERVAULT_RESTORED_KEEP_SECS: 60,
  });
  hand = await handNode(coord, 1000); // the most room: it gets the first replica
  await hand.work();
  real = await startNodes(coord, 2);
  alice = await newUserWithToken(coord);
  file = crypto.randomBytes(2 * MiB + 100); // three leaves
  ({ cid } = await uploadFile(coord, alice.token, file));
  car = carOf(file);
  const store = await taskOf(hand, 'store');
  storeTask = store.id;
  assert.equal((await hand.fetch(cid)).status, 200);
  assertJson(await hand.done(store.id), 200, { message: 'Task done' });
  await stored(coord, alice.token, cid, REPLICAS, real);
});

after(async () => {
  for (const n of real) n.proc.kill('SIGKILL');
  await coord?.stop();
});

describe('PEERVAULT_KEEP_LOCAL_COPY=false', () => {
  it('once every replica passed an audit, the coordinator\'s copy is gone from its blob store', async () => {
    assert.equal((await fileStatus(coord, alice.token, cid)).json.localCopy, true);
    assert.ok(await hasObject(coord.dataDir, cid));
    const now = await advanceClock(coord, 3_600_000 + 1000);
    const audit = await taskOf(hand, 'audit');
    const leaves = [0, 1, 2].map((i) => file.subarray(i * MiB, Math.min(file.length, (i + 1) * MiB)));
    const leaf = leaves.find((l) => rawCid(l) === audit.block);
    assert.ok(leaf, `the audited block ${audit.block} is a leaf of the file`);
    assertJson(await hand.proof(audit.id, leaf), 200, { message: 'Proof accepted' });
    const s = await until(async () => (await fileStatus(coord, alice.token, cid)).json,
      (st) => st.localCopy === false && st.replicas.every((r) => r.lastAuditOk && r.lastAuditAt >= now));
    assert.equal(s.stored, REPLICAS);
    // The row says so first, then the object goes (a bucket's delete takes a moment).
    assert.equal(await until(() => hasObject(coord.dataDir, cid), (has) => has === false), false, 'no object in the blob store');
  });

  it('a download, a Range request and ?format=car are served through a node, identical to the original', async () => {
    // The hand node goes quiet (the clock moves past the offline time): the real node serves.
    await advanceClock(coord, 31_000);
    await until(async () => (await nodeStatus(coord, alice.token)).network.nodesOnline, (n) => n === real.length);
    const whole = await download();
    assert.equal(whole.status, 200);
    assert.ok(whole.raw.equals(file), 'the whole file');
    const part = await download({ headers: { Range: 'bytes=1000000-2000000' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000000-2000000/${file.length}`);
    assert.ok(part.raw.equals(file.subarray(1_000_000, 2_000_001)), 'the range');
    const asCar = await download({}, '&format=car&car-order=unk&car-dups=y');
    assert.equal(asCar.status, 200);
    assert.ok(asCar.raw.equals(car), 'the CAR ipfs-car makes');
    const holder = real.find((n) => n.log().includes('kind="retrieve"'));
    assert.ok(holder, 'a real node delivered');
    assert.match(holder.log(), /task done task="\d+" kind="retrieve"/);
  });

  it('a node delivering a corrupted block is refused (422) and the download completes from the other node', async () => {
    await hand.work(); // online again, and asked first
    const pending = download();
    const task = await taskOf(hand, 'retrieve');
    retrieveTasks.push(task.id);
    const bad = Buffer.from(car);
    bad[car.length - 1000] ^= 0x01; // inside a leaf's bytes
    const answer = await deliver(task.id, bad);
    assert.equal(answer.status, 422);
    assert.deepEqual(answer.json, { message: 'Delivery does not match the object' });
    const got = await pending;
    assert.equal(got.status, 200);
    assert.ok(got.raw.equals(file), 'every byte right, none from the lie');
  });

  it('a node cut off mid-stream: the download goes on from the other node, byte for byte', async () => {
    await hand.work();
    const pending = download();
    const task = await taskOf(hand, 'retrieve');
    retrieveTasks.push(task.id);
    await deliver(task.id, car, { cutAfter: MiB + 500_000 }); // one leaf and a half, then the connection dies
    const got = await pending;
    assert.equal(got.status, 200);
    assert.ok(got.raw.equals(file));
  });

  it('bad deliveries are refused and change nothing: unknown, foreign or finished ids, other kinds of task, a user token', async () => {
    const before = (await fileStatus(coord, alice.token, cid)).json;
    // (a small body: a refused delivery is answered before it is read)
    const body = car.subarray(0, 200);
    const as = (id, token = hand.device) => request(coord, 'POST', `/node/deliver/${id}`, {
      token, body, headers: { 'content-type': 'application/vnd.ipld.car' },
    });
    for (const id of ['nope', '99999']) {
      assertJson(await as(id), 404, { message: 'Task not found' });
    }
    assertJson(await as(storeTask), 409, { message: 'Only a retrieve task is answered with a delivery' });
    assertJson(await as(retrieveTasks[0]), 409, { message: 'Task was already answered' });
    assertJson(await as(retrieveTasks[0], hand.user.token), 403, { message: 'Node calls need a device token (from /android_auth)' });
    assert.deepEqual((await fileStatus(coord, alice.token, cid)).json, before);
  });

  it('a download at an instance no online holder polls: the holder delivers to its own, which restores the copy into the shared bucket',
    { skip: COORDINATORS === 1 && 'one coordinator' }, async () => {
      const near = real.find((n) => n.base === coord.base);
      const far = real.find((n) => n.base !== coord.base);
      assert.ok(near && far, 'one real node on each instance');
      // A corrupted CAR delivered to the other instance: checked there as
      // here, refused, nothing restored; the download goes on from the next holder.
      await hand.work();
      const pending = download();
      const task = await taskOf(hand, 'retrieve');
      const bad = Buffer.from(car);
      bad[car.length - 1000] ^= 0x01;
      assertJson(await deliver(task.id, bad, { base: far.base }), 422, { message: 'Delivery does not match the object' });
      const got = await pending;
      assert.equal(got.status, 200);
      assert.ok(got.raw.equals(file), 'every byte right');
      assert.equal(await hasObject(coord.dataDir, cid), false, 'nothing restored from the lie');
      assert.equal((await fileStatus(coord, alice.token, cid)).json.localCopy, false);

      await near.kill();
      await advanceClock(coord, 31_000); // the hand node and the killed one are offline
      await until(async () => (await nodeStatus(coord, alice.token)).network.nodesOnline, (n) => n === 1);
      const whole = await download();
      assert.equal(whole.status, 200);
      assert.ok(whole.raw.equals(file), 'the whole file');
      assert.match(far.log(), /task done task="\d+" kind="retrieve"/, 'delivered by the node on the other instance');
      assert.equal((await fileStatus(coord, alice.token, cid)).json.localCopy, true);
      assert.ok(await hasObject(coord.dataDir, cid), 'restored into the bucket');
      const part = await download({ headers: { Range: 'bytes=5-2000000' } });
      assert.equal(part.status, 206);
      assert.ok(part.raw.equals(file.subarray(5, 2_000_001)), 'a range of the restored copy');
      // Kept RESTORED_KEEP_SECS, then released again.
      await advanceClock(coord, 61_000);
      await until(async () => (await fileStatus(coord, alice.token, cid)).json.localCopy, (l) => l === false);
      assert.equal(await hasObject(coord.dataDir, cid), false, 'released again');
    });

  it('with every holder offline: 503 {"message":"Content temporarily unavailable"}', async () => {
    for (const n of real) await n.kill();
    await advanceClock(coord, 31_000);
    const res = await download();
    assert.equal(res.status, 503);
    assert.deepEqual(res.json, { message: 'Content temporarily unavailable' });
    assert.match(res.headers['content-type'], /application\/json/);
  });
});
