#!/usr/bin/env node
// Coordinator overhead at scale, simulated (issue 12): one coordinator
// (release build, SQLite) with 1,000 nodes and 100,000 stored placements
// (100 one-leaf objects on every node, rows written straight into the
// database), and 1,000 simulated nodes in this process, each holding a
// `/node/work` long poll open and answering its audits with the right block.
// The clock is moved an audit interval ahead: every placement is due at
// once. Measured: the audit round's coordinator CPU time and SQL statements
// (sqlx's statement log), its wall time until every audit is opened and
// until every one is settled, and the latency of `/node/work` (wait 0)
// probes before and during the round.
//
//   node scripts/bench-network-scale.mjs [nodes] [objects]
//
// Prints a Markdown block for BENCHMARKS.md.
import crypto from 'node:crypto';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, post, newUserWithToken, uploadFile, advanceClock, TEST_CLOCK, dashboard, sleep } from '../end2end/api/harness.mjs';

const NODES = Number(process.argv[2] ?? 1000);
const OBJECTS = Number(process.argv[3] ?? 100);
const PLACEMENTS = NODES * OBJECTS;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; };

const coord = await startServer({
  ...TEST_CLOCK,
  RUST_LOG: 'warn,sqlx::query=debug',
  PEERVAULT_ARGON2_MEMORY_KIB: 8, // accounts are not what is measured
  PEERVAULT_ARGON2_ITERATIONS: 1,
  PEERVAULT_REPLICAS: 3,
  PEERVAULT_NETWORK_TICK_SECS: 2,
  PEERVAULT_NODE_OFFLINE_SECS: 60,
  PEERVAULT_REPAIR_AFTER_SECS: 864000,
  PEERVAULT_AUDIT_INTERVAL_SECS: 3600,
  PEERVAULT_AUDIT_DEADLINE_SECS: 3000,
});
const db = path.join(coord.dataDir, 'peervault.db');
const sql = (query) => execFileSync('python3', ['-c', `
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=60)
for row in c.execute(sys.argv[2]): print('|'.join(map(str, row)))
c.commit()`, db, query]).toString().trim();
const cpuTicks = () => {
  const fields = fs.readFileSync(`/proc/${coord.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in 1/100 s
};
// SQL statements, counted as sqlx logs them (the log is too large to keep as one string).
let logged = 0;
for (const stream of [coord.proc.stdout, coord.proc.stderr]) {
  let tail = '';
  stream.on('data', (chunk) => {
    const text = tail + chunk.toString('latin1');
    logged += text.split('sqlx::query').length - 1;
    tail = text.slice(-10); // a name cut between chunks is counted with the next one
    if (tail.includes('sqlx::query')) tail = '';
  });
}
const statements = () => logged;

const agent = new http.Agent({ keepAlive: true, maxSockets: NODES + 50 });
function call(pathname, token, body, type = 'application/json') {
  return new Promise((resolve, reject) => {
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const req = http.request(`${coord.base}${pathname}`, {
      method: 'POST', agent, headers: { authorization: token, 'content-type': type, 'content-length': payload.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

try {
  // 1,000 accounts with device tokens (8 at a time)
  const devices = [];
  for (let i = 0; i < NODES; i += 8) {
    devices.push(...await Promise.all(Array.from({ length: Math.min(8, NODES - i) }, async () => {
      const user = await newUserWithToken(coord);
      const { peerId } = await dashboard(coord, user.token);
      const res = await post(coord, '/android_auth', { json: { username: user.username, peerId } });
      return res.json.token;
    })));
  }
  // 100 one-leaf objects, then every node holds all of them
  const owner = await newUserWithToken(coord);
  const blocks = new Map();
  for (let i = 0; i < OBJECTS; i += 1) {
    const bytes = crypto.randomBytes(4096);
    blocks.set((await uploadFile(coord, owner.token, bytes)).cid, bytes);
  }
  const t = Date.now();
  sql(`INSERT INTO nodes (user_id, node_id, last_poll_at, free_bytes) SELECT id, lower(hex(randomblob(8))), ${t}, 0 FROM users WHERE id <> (SELECT id FROM users WHERE username = '${owner.username}')`);
  sql(`INSERT INTO placements (cid, node_user, size, state, assigned_at, stored_at, paid_from, next_audit_at) SELECT b.cid, n.user_id, b.size, 'stored', ${t}, ${t}, ${t}, ${t + 3_600_000} FROM blobs b CROSS JOIN nodes n`);
  const placed = Number(sql('SELECT COUNT(*) FROM placements'));
  if (placed !== PLACEMENTS) throw new Error(`${placed} placements`);

  // the simulated nodes: a long poll each, audits answered with the block
  let running = true;
  let proofs = 0;
  const pollers = devices.map(async (token) => {
    while (running) {
      const res = await call('/node/work', token, { wait: 20 }).catch(() => null);
      for (const task of res?.json?.tasks ?? []) {
        if (task.kind !== 'audit') continue;
        const r = await call(`/node/proof/${task.id}`, token, blocks.get(task.cid), 'application/octet-stream');
        if (r.status === 200) proofs += 1;
      }
    }
  });
  await sleep(5000); // the polls are open
  const probe = async (ms) => {
    const lat = [];
    const end = now() + ms;
    while (now() < end) {
      const token = devices[Math.floor(Math.random() * devices.length)];
      const t0 = now();
      await call('/node/work', token, { wait: 0 });
      lat.push(now() - t0);
      await sleep(20);
    }
    return lat;
  };
  const idle = await probe(10_000);

  const [cpu0, q0, t0] = [cpuTicks(), statements(), now()];
  await advanceClock(coord, 3_600_000 + 1000);
  const during = [];
  let opened = 0;
  let openedAt = 0;
  let settledAt = 0;
  while (!settledAt) {
    during.push(...await probe(2000));
    opened = Number(sql('SELECT COUNT(*) FROM audits'));
    if (!openedAt && opened >= PLACEMENTS) openedAt = now();
    if (Number(sql("SELECT COUNT(*) FROM audits WHERE outcome = 'passed'")) >= PLACEMENTS) settledAt = now();
    if (now() - t0 > 1_800_000) throw new Error(`not settled: ${opened} opened, ${proofs} proofs`);
  }
  const [cpu1, q1] = [cpuTicks(), statements()];
  running = false;
  const credits = Number(sql("SELECT COUNT(*) FROM coin_ledger WHERE kind = 'storage'"));
  const f = (x) => x.toFixed(1);
  console.log(`## Coordinator overhead at scale, simulated (${new Date().toISOString().slice(0, 10)})

Command: \`node scripts/bench-network-scale.mjs ${NODES} ${OBJECTS}\` (release build, SQLite;
${NODES} nodes and ${PLACEMENTS} stored placements, ${NODES} simulated nodes in one
Node.js process each holding a \`/node/work\` long poll and answering audits;
the clock moved one audit interval so every placement is due at once)

| | figure |
|---|---|
| audits opened | ${opened} in ${f((openedAt - t0) / 1000)} s |
| audits settled (passed, paid) | ${PLACEMENTS} in ${f((settledAt - t0) / 1000)} s (${credits} storage credits) |
| coordinator CPU for the whole round (open, ${PLACEMENTS} proofs, settle) | ${f((cpu1 - cpu0) / 100)} s |
| SQL statements in the round | ${q1 - q0} (${f((q1 - q0) / PLACEMENTS)} per audit) |
| \`/node/work\` wait 0, ${NODES} polls open, no audits: p50 / p99 | ${f(pct(idle, 0.5))} / ${f(pct(idle, 0.99))} ms (${idle.length} probes) |
| the same during the round: p50 / p99 | ${f(pct(during, 0.5))} / ${f(pct(during, 0.99))} ms (${during.length} probes) |`);
  await Promise.race([Promise.all(pollers), sleep(25_000)]);
} finally {
  await coord.stop();
}
