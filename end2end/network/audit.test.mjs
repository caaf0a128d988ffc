// Audits and storage coins (issue 12, docs/NETWORK.md): three real
// `peervault node`s hold two objects twice each. The test clock jumps an
// audit interval at a time; the nodes answer each audit with the block
// asked for. Honest nodes pass and earn storage coins matching the formula
// to the last digit of the ledger; a node that deleted an object and one
// that corrupted another fail, earn nothing for the interval, and after
// PEERVAULT_AUDIT_MAX_FAILURES the replicas are lost and made elsewhere.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { post, newUserWithToken, uploadFile, advanceClock, TEST_CLOCK, dashboard } from '../api/harness.mjs';
import { MiB, startNodes, held, carPath, carOf, fileStatus, nodeStatus, stored, until, startCoordinators } from './nodes.mjs';

const REPLICAS = 2;
const HOUR = 3_600_000;
const RATE = 0.02;
/** The ledger's formula (docs/NETWORK.md), in its order of operations. */
const coinsFor = (bytes, ms) => bytes / 2 ** 30 * (ms / 3_600_000) * RATE;

let coord;
let nodes = [];
let alice;
const objects = [];

before(async () => {
  coord = await startCoordinators({
    ...TEST_CLOCK,
    PEERVAULT_REPLICAS: REPLICAS,
    PEERVAULT_NETWORK_TICK_SECS: 1,
    PEERVAULT_NODE_OFFLINE_SECS: 30,
    PEERVAULT_REPAIR_AFTER_SECS: 864_000,
    PEERVAULT_AUDIT_INTERVAL_SECS: 3600,
    PEERVAULT_AUDIT_DEADLINE_SECS: 600,
    PEERVAULT_AUDIT_MAX_FAILURES: 2,
    PEERVAULT_STORAGE_COIN_RATE: RATE,
  });
  nodes = await startNodes(coord, 3);
  alice = await newUserWithToken(coord);
  for (const bytes of [crypto.randomBytes(3 * MiB + 5), crypto.randomBytes(200_000)]) {
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

const replicas = async (cid) => (await fileStatus(coord, alice.token, cid)).json.replicas;
const holderOf = (replica) => nodes.find((n) => n.id === replica.node);

/** Waits until every replica in state stored was audited after `since`, and returns them per object. */
async function audited(since, ok = () => true) {
  const out = [];
  for (const o of objects) {
    out.push(await until(() => replicas(o.cid),
      (rs) => rs.filter((r) => r.state === 'stored').every((r) => r.lastAuditAt > since && ok(o, r)),
      (rs) => JSON.stringify(rs) + nodes.map((n) => n.log().split('\n').slice(-5).join('\n')).join('\n---\n')));
  }
  return out;
}

describe('audits', () => {
  let firstAudit;

  it('honest nodes pass their audits and earn storage coins that match the formula to the last digit of the ledger', async () => {
    const before = Date.now() + 0;
    const now = await advanceClock(coord, HOUR + 1000);
    assert.ok(now > before);
    firstAudit = await audited(now - 1, (o, r) => r.lastAuditOk === true);
    for (const n of nodes) {
      const status = await nodeStatus(coord, n.user.token);
      const mine = objects.flatMap((o, i) => firstAudit[i].filter((r) => r.node === n.id).map((r) => ({ o, r })));
      assert.equal(status.placements, mine.length);
      assert.equal(status.heldBytes, mine.reduce((a, { o }) => a + o.bytes.length, 0));
      assert.equal(status.storageCredits.length, mine.length, JSON.stringify(status));
      for (const { o, r } of mine) {
        const credit = status.storageCredits.find((c) => c.cid === o.cid);
        assert.ok(credit, `a credit for ${o.cid}`);
        assert.equal(credit.bytes, o.bytes.length);
        assert.equal(credit.fromMs, r.storedAt, 'paid from when it was stored');
        assert.equal(credit.toMs, r.lastAuditAt, 'to the audit');
        assert.equal(credit.rate, RATE);
        assert.ok(credit.toMs - credit.fromMs >= HOUR);
        assert.equal(credit.coins, coinsFor(o.bytes.length, credit.toMs - credit.fromMs), 'to the last digit');
      }
      const sum = status.storageCredits.reduce((a, c) => a + c.coins, 0);
      assert.equal(status.storageCoins, sum);
      assert.equal(status.uptimeCoins, 0, 'no heartbeat interval credited yet');
      assert.equal(status.auditsPassed, mine.length);
      assert.equal(status.auditsTotal, mine.length);
      assert.equal(status.auditScore, mine.length ? 1 : null);
      assert.equal((await dashboard(coord, n.user.token)).coins_earned, status.storageCoins + status.uptimeCoins);
    }
    // the owner of the files earns nothing: she holds nothing
    const hers = await nodeStatus(coord, alice.token);
    assert.deepEqual([hers.node, hers.storageCoins, hers.storageCredits, hers.auditScore], [null, 0, [], null]);
    assert.equal(hers.network.nodesOnline, 3);
    assert.equal(hers.network.placedBytes, REPLICAS * objects.reduce((a, o) => a + o.bytes.length, 0));
  });

  it('a node that deleted an object and one that corrupted another fail, earn nothing, and lose the replicas, which are made elsewhere', async () => {
    const [big, small] = objects;
    const bigHolders = firstAudit[0].map(holderOf);
    const deleter = bigHolders[0];
    const corrupter = firstAudit[1].map(holderOf).find((n) => n !== deleter);
    fs.rmSync(carPath(deleter, big.cid));
    const car = fs.readFileSync(carPath(corrupter, small.cid));
    car[car.length - 1000] ^= 0x01;
    fs.writeFileSync(carPath(corrupter, small.cid), car);
    const bad = (o, r) => (o === big && r.node === deleter.id) || (o === small && r.node === corrupter.id);
    const credits = async (n) => (await nodeStatus(coord, n.user.token)).storageCredits;
    const before = new Map();
    for (const n of nodes) before.set(n, await credits(n));

    const now = await advanceClock(coord, HOUR + 1000);
    const second = await audited(now - 1, (o, r) => r.lastAuditOk === !bad(o, r));
    for (const n of nodes) {
      const after = await credits(n);
      const fresh = after.slice(0, after.length - before.get(n).length);
      for (const [i, o] of objects.entries()) {
        const r = second[i].find((x) => x.node === n.id);
        if (!r) continue;
        const credit = fresh.find((c) => c.cid === o.cid);
        if (bad(o, r)) {
          assert.equal(credit, undefined, 'a failed audit pays nothing');
        } else {
          const prev = before.get(n).find((c) => c.cid === o.cid);
          assert.equal(credit.fromMs, prev.toMs, 'paid from the previous passed audit');
          assert.equal(credit.coins, coinsFor(o.bytes.length, credit.toMs - credit.fromMs));
        }
      }
    }
    const deleterStatus = await nodeStatus(coord, deleter.user.token);
    assert.ok(deleterStatus.auditScore < 1 && deleterStatus.auditsTotal > deleterStatus.auditsPassed);

    // a second failure in a row: lost, and made again on the third node
    await advanceClock(coord, HOUR + 1000);
    for (const [o, culprit] of [[big, deleter], [small, corrupter]]) {
      const s = await stored(coord, alice.token, o.cid, REPLICAS, nodes,
        // the culprit's replica lost (then dropped: no longer listed), two others stored
        (st) => st.replicas.filter((r) => r.node === culprit.id).every((r) => r.state === 'lost')
          && st.replicas.filter((r) => r.state === 'stored').every((r) => r.node !== culprit.id));
      const expected = carOf(o.bytes);
      for (const r of s.replicas.filter((x) => x.state === 'stored')) {
        assert.ok(fs.readFileSync(carPath(holderOf(r), o.cid)).equals(expected), 'the repaired replica is the same CAR');
      }
    }
    // the corrupt copy is dropped from the node that held it
    await until(async () => held(corrupter), (files) => !files.includes(`${small.cid}.car`));
  });

  it('/node_status needs a token', async () => {
    const res = await post(coord, '/node_status', {});
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, { message: 'Token is missing' });
  });
});
