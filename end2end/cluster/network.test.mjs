// The storage network behind two coordinators (issue 12): two instances
// share one PostgreSQL database, one bucket and the JWT secret; four real
// `peervault node`s, two talking to each instance. Both instances run the
// network loop at once, every second: placement, audits and payment race
// on the same rows. The database must show every placement made once per
// node, every audit opened once per due time and settled once, and every
// storage interval paid once. Run by `make test-cluster` (PostgreSQL + S3).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  startServer, sharedStorage, onPostgres, onS3, newUserWithToken, uploadFile, dashboard, advanceClock, TEST_CLOCK,
} from '../api/harness.mjs';
import { MiB, startNode, fileStatus, nodeStatus, stored, until } from '../network/nodes.mjs';

const REPLICAS = 3;
const HOUR = 3_600_000;
const RATE = 0.02;
const coinsFor = (bytes, ms) => bytes / 2 ** 30 * (ms / 3_600_000) * RATE;

let a;
let b;
let shared;
const nodes = [];
let alice;
const objects = [];

/** Rows of a query on the shared database. */
const sql = (query) => execFileSync('psql', [shared.DATABASE_URL, '-qAtX', '-F', '|', '-v', 'ON_ERROR_STOP=1', '-c', query])
  .toString('utf8').split('\n').filter(Boolean);

before(async () => {
  assert.ok(onPostgres && onS3, 'run inside scripts/with-postgres.sh and scripts/with-s3.sh (make test-cluster)');
  shared = sharedStorage();
  const env = {
    ...shared,
    ...TEST_CLOCK,
    PEERVAULT_JWT_SECRET: crypto.randomBytes(32).toString('hex'),
    PEERVAULT_REPLICAS: REPLICAS,
    PEERVAULT_NETWORK_TICK_SECS: 1,
    PEERVAULT_NODE_OFFLINE_SECS: 30,
    PEERVAULT_REPAIR_AFTER_SECS: 864_000,
    PEERVAULT_AUDIT_INTERVAL_SECS: 3600,
    PEERVAULT_AUDIT_DEADLINE_SECS: 600,
    PEERVAULT_STORAGE_COIN_RATE: RATE,
  };
  [a, b] = await Promise.all([startServer(env), startServer(env)]);
  for (const coord of [a, b, a, b]) {
    const user = await newUserWithToken(coord);
    const { peerId } = await dashboard(coord, user.token);
    nodes.push(startNode(coord, user, peerId));
  }
  alice = await newUserWithToken(a);
});

after(async () => {
  for (const n of nodes) n.proc.kill('SIGKILL');
  await Promise.all([a?.stop(), b?.stop()]);
});

/** Moves both instances' clocks by the same amount. */
async function advanceBoth(ms) {
  return Math.min(...await Promise.all([advanceClock(a, ms), advanceClock(b, ms)]));
}

describe('two coordinators, one database', () => {
  it('six uploads through both instances reach 3 stored replicas each, every placement made once', async () => {
    for (let i = 0; i < 6; i += 1) {
      const bytes = crypto.randomBytes(i === 0 ? MiB * 2 + 3 : 100_000 + i);
      const { cid } = await uploadFile(i % 2 ? b : a, alice.token, bytes);
      objects.push({ cid, bytes });
    }
    for (const o of objects) {
      const s = await stored(a, alice.token, o.cid, REPLICAS, nodes);
      assert.equal(new Set(s.replicas.map((r) => r.node)).size, s.replicas.length, 'one replica per node');
    }
    assert.deepEqual(sql("SELECT cid, node_user FROM placements GROUP BY cid, node_user HAVING COUNT(*) > 1"), []);
    assert.deepEqual(sql("SELECT placement_id FROM tasks WHERE kind = 'store' GROUP BY placement_id HAVING COUNT(*) > 1"), []);
    assert.deepEqual(sql("SELECT COUNT(*) FROM placements"), [String(objects.length * REPLICAS)]);
  });

  it('two audit rounds: each replica audited once per round, each interval paid once, to the last digit', async () => {
    for (let round = 1; round <= 2; round += 1) {
      const since = (await advanceBoth(HOUR + 1000)) - 1;
      for (const o of objects) {
        await until(async () => (await fileStatus(b, alice.token, o.cid)).json,
          (s) => s.replicas.filter((r) => r.state === 'stored').length === REPLICAS
            && s.replicas.every((r) => r.lastAuditOk === true && r.lastAuditAt > since));
      }
      assert.deepEqual(sql('SELECT COUNT(*) FROM audits'), [String(objects.length * REPLICAS * round)], 'one audit per replica per round');
      assert.deepEqual(sql("SELECT placement_id FROM audits GROUP BY placement_id HAVING COUNT(*) <> " + round), []);
      assert.deepEqual(sql("SELECT outcome, COUNT(*) FROM audits GROUP BY outcome"), [`passed|${objects.length * REPLICAS * round}`]);
      assert.deepEqual(sql("SELECT COUNT(*) FROM coin_ledger WHERE kind = 'storage'"), [String(objects.length * REPLICAS * round)]);
      assert.deepEqual(sql("SELECT user_id, cid, from_ms FROM coin_ledger WHERE kind = 'storage' GROUP BY user_id, cid, from_ms HAVING COUNT(*) > 1"), []);
    }
    // each node's credits: chained intervals, the formula to the last digit
    const sizes = new Map(objects.map((o) => [o.cid, o.bytes.length]));
    for (const n of nodes) {
      const status = await nodeStatus(n === nodes[0] || n === nodes[2] ? a : b, n.user.token);
      const byCid = new Map();
      for (const c of [...status.storageCredits].reverse()) {
        assert.equal(c.bytes, sizes.get(c.cid));
        assert.equal(c.coins, coinsFor(c.bytes, c.toMs - c.fromMs));
        if (byCid.has(c.cid)) assert.equal(c.fromMs, byCid.get(c.cid).toMs, 'the next interval starts where the last ended');
        byCid.set(c.cid, c);
      }
    }
  });
});
