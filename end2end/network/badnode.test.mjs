// Lying nodes (issue 12, docs/NETWORK.md): nodes driven by hand over HTTP
// try every shortcut the protocol could leave open. Each is refused with a
// JSON message, nothing is credited and nothing changes; the honest answer
// afterwards still works and is paid once.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { post, assertJson, newUserWithToken, uploadFile, advanceClock, TEST_CLOCK } from '../api/harness.mjs';
import { MiB, handNode, fileStatus, nodeStatus, until, startCoordinators } from './nodes.mjs';

const HOUR = 3_600_000;
const RATE = 0.02;
const coinsFor = (bytes, ms) => bytes / 2 ** 30 * (ms / 3_600_000) * RATE;

let coord;
let honest; // the node the object is placed on (the most free pledge)
let other;
let alice;
let file;
let cid;

before(async () => {
  coord = await startCoordinators({
    ...TEST_CLOCK,
    PEERVAULT_REPLICAS: 1,
    PEERVAULT_NETWORK_TICK_SECS: 1,
    PEERVAULT_NODE_OFFLINE_SECS: 30,
    PEERVAULT_REPAIR_AFTER_SECS: 864_000,
    PEERVAULT_AUDIT_INTERVAL_SECS: 3600,
    PEERVAULT_AUDIT_DEADLINE_SECS: 600,
    PEERVAULT_AUDIT_MAX_FAILURES: 4,
    PEERVAULT_STORAGE_COIN_RATE: RATE,
  });
  honest = await handNode(coord, 1000);
  other = await handNode(coord, 500);
  await honest.work();
  await other.work();
  alice = await newUserWithToken(coord);
  file = crypto.randomBytes(200_000); // one raw leaf: the block is the file
  ({ cid } = await uploadFile(coord, alice.token, file));
  flipped = Buffer.from(file);
  flipped[100] ^= 0x80;
});

after(async () => {
  await coord?.stop();
});

const replica = async () => (await fileStatus(coord, alice.token, cid)).json.replicas[0];
/** Polls as `node` until it is given a task of `kind`. */
const taskOf = (node, kind) => until(() => node.work(2), (ts) => ts.some((t) => t.kind === kind && t.cid === cid))
  .then((ts) => ts.find((t) => t.kind === kind && t.cid === cid));
const credits = async () => (await nodeStatus(coord, honest.user.token)).storageCredits;
let flipped; // the file with one bit changed

describe('a node cannot cut corners', () => {
  let store;
  let audit;

  it('a store task is not done before the content was fetched; another node can neither fetch it nor answer for it', async () => {
    store = await taskOf(honest, 'store');
    assert.equal(store.size, file.length);
    assertJson(await honest.done(store.id), 409, { message: 'The content was not fetched: read /node/content/{cid} first' });
    assert.equal((await replica()).state, 'assigned');
    assertJson(await other.fetch(cid), 404, { message: 'No such object is placed on this node' });
    assertJson(await other.done(store.id), 404, { message: 'Task not found' });
    assertJson(await other.failed(store.id), 404, { message: 'Task not found' });
    assertJson(await post(coord, '/node/work', { token: honest.user.token, json: { wait: 0 } }), 403,
      { message: 'Node calls need a device token (from /android_auth)' });
    const res = await honest.fetch(cid);
    assert.equal(res.status, 200);
    assertJson(await honest.done(store.id), 200, { message: 'Task done' });
    assertJson(await honest.done(store.id), 200, { message: 'Task done' });
    assertJson(await honest.failed(store.id), 409, { message: 'Task was already answered otherwise' });
    const r = await replica();
    assert.equal(r.state, 'stored');
    assert.equal(r.lastAuditAt, null);
    assert.deepEqual(await credits(), [], 'storing alone pays nothing');
  });

  it('audit answers: someone else\'s, the wrong route, too large, a wrong block — refused, failed, unpaid', async () => {
    await advanceClock(coord, HOUR + 1000);
    audit = await taskOf(honest, 'audit');
    assert.equal(audit.block, cid, 'a one-leaf object: its leaf is its root');
    assert.equal(typeof audit.deadline, 'number');
    assertJson(await other.proof(audit.id, file), 404, { message: 'Audit not found' });
    assertJson(await honest.proof(store.id, file), 404, { message: 'Audit not found' });
    assertJson(await honest.proof('nope', file), 404, { message: 'Task not found' });
    assertJson(await honest.done(audit.id), 409, { message: 'An audit is answered with its block at /node/proof/{id}' });
    assertJson(await honest.proof(audit.id, crypto.randomBytes(MiB + 1)), 413, { message: 'Proof is larger than any block' });
    assert.ok((await honest.work()).some((t) => t.id === audit.id), 'still open after the refused answers');
    assert.equal((await replica()).lastAuditAt, null);
    assertJson(await honest.proof(audit.id, flipped), 422, { message: 'Proof does not match the block' });
    assertJson(await honest.proof(audit.id, file), 409, { message: 'Audit was already answered' });
    const r = await replica();
    assert.equal(r.lastAuditOk, false);
    assert.equal(r.state, 'stored');
    assert.deepEqual(await credits(), [], 'a failed audit pays nothing');
    assert.ok(!(await honest.work()).some((t) => t.id === audit.id));
  });

  it('the right block in time passes and is paid once, from the failed audit on (the failed interval is not paid)', async () => {
    const failedAt = (await replica()).lastAuditAt;
    await advanceClock(coord, HOUR + 1000);
    const next = await taskOf(honest, 'audit');
    assert.notEqual(next.id, audit.id);
    assertJson(await honest.proof(next.id, file), 200, { message: 'Proof accepted' });
    assertJson(await honest.proof(next.id, file), 409, { message: 'Audit was already answered' });
    const r = await replica();
    assert.equal(r.lastAuditOk, true);
    const paid = await credits();
    assert.equal(paid.length, 1, 'paid once');
    assert.equal(paid[0].fromMs, failedAt);
    assert.equal(paid[0].toMs, r.lastAuditAt);
    assert.equal(paid[0].coins, coinsFor(file.length, paid[0].toMs - paid[0].fromMs));
    const status = await nodeStatus(coord, honest.user.token);
    assert.deepEqual([status.auditsPassed, status.auditsTotal, status.auditScore], [1, 2, 0.5]);
  });

  it('a late answer fails and pays nothing; failures in a row make the replica lost, placed elsewhere and dropped here', async () => {
    await advanceClock(coord, HOUR + 1000);
    const late = await taskOf(honest, 'audit');
    await advanceClock(coord, 601_000); // past the deadline: the loop settles it as late
    await until(replica, (r) => r.lastAuditOk === false);
    assertJson(await honest.proof(late.id, file), 409, { message: 'Audit was already answered' });
    // the node admits it lost the block: a failure at once
    await advanceClock(coord, HOUR + 1000);
    const admitted = await taskOf(honest, 'audit');
    assertJson(await honest.failed(admitted.id, 'lost it'), 200, { message: 'Task failed' });
    assertJson(await honest.proof(admitted.id, file), 409, { message: 'Audit was already answered' });
    // two more wrong answers: the fourth failure in a row loses the replica
    for (let i = 0; i < 2; i += 1) {
      await advanceClock(coord, HOUR + 1000);
      const t = await taskOf(honest, 'audit');
      assertJson(await honest.proof(t.id, flipped), 422, { message: 'Proof does not match the block' });
    }
    await other.work();
    const repair = await taskOf(other, 'store');
    const res = await other.fetch(cid);
    assert.equal(res.status, 200);
    assertJson(await other.done(repair.id), 200, { message: 'Task done' });
    const drop = await taskOf(honest, 'drop');
    assertJson(await honest.done(drop.id), 200, { message: 'Task done' });
    assertJson(await honest.fetch(cid), 404, { message: 'No such object is placed on this node' });
    const s = (await fileStatus(coord, alice.token, cid)).json;
    assert.equal(s.stored, 1);
    assert.deepEqual(s.replicas.map((r) => r.state).sort(), ['stored']);
    assert.equal((await credits()).length, 1, 'nothing more was paid');
  });
});
