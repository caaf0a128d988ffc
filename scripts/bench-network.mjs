#!/usr/bin/env node
// The storage network, one run on loopback (release build, SQLite, local
// files): a coordinator and three `peervault node`s.
//  1. A 256 MiB upload, then the time until it has 3 stored replicas (each
//     node fetched the CAR and checked every block) against the upload's.
//  2. The same object downloaded from the coordinator's own copy, then
//     (PEERVAULT_KEEP_LOCAL_COPY=false, after the replicas passed an audit
//     and the copy was dropped) served through a node: throughput ratio.
//
//   node scripts/bench-network.mjs [MiB]
//
// Prints a Markdown block for BENCHMARKS.md.
import crypto from 'node:crypto';
import http from 'node:http';
import {
  startServer, newUserWithToken, uploadFile, downloadLink, advanceClock, TEST_CLOCK, hasObject,
} from '../end2end/api/harness.mjs';
import { startNodes, fileStatus, until } from '../end2end/network/nodes.mjs';

const MIB = Number(process.argv[2] ?? 256);
const RUNS = 3;

const now = () => Number(process.hrtime.bigint()) / 1e9;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** GETs `url`, hashing the body as it streams (nothing kept); returns seconds and the digest. */
function timedGet(url) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    http.get(url, (res) => {
      if (res.statusCode !== 200) reject(new Error(`GET ${url}: ${res.statusCode}`));
      const hash = crypto.createHash('sha256');
      res.on('data', (c) => hash.update(c));
      res.on('end', () => resolve({ secs: now() - t0, digest: hash.digest('hex') }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

const coord = await startServer({
  ...TEST_CLOCK,
  RUST_LOG: 'warn',
  PEERVAULT_KEEP_LOCAL_COPY: 'false',
  PEERVAULT_MAX_FILE_BYTES: String((MIB + 1) * 1024 * 1024),
  PEERVAULT_USER_QUOTA_BYTES: String((MIB + 1) * 1024 * 1024),
  PEERVAULT_REPLICAS: 3,
  PEERVAULT_NETWORK_TICK_SECS: 1,
  PEERVAULT_NODE_OFFLINE_SECS: 30,
  PEERVAULT_REPAIR_AFTER_SECS: 864000,
  PEERVAULT_AUDIT_INTERVAL_SECS: 3600,
});
const nodes = await startNodes(coord, 3, { pledgeMb: MIB * 2 });
try {
  const alice = await newUserWithToken(coord);
  const bytes = crypto.randomBytes(MIB * 1024 * 1024);
  const digest = crypto.createHash('sha256').update(bytes).digest('hex');
  let t0 = now();
  const { cid } = await uploadFile(coord, alice.token, bytes);
  const upload = now() - t0;
  t0 = now();
  await until(async () => (await fileStatus(coord, alice.token, cid)).json, (s) => s.stored === 3);
  const replicate = now() - t0;

  const local = [];
  for (let i = 0; i < RUNS; i += 1) {
    const got = await timedGet(await downloadLink(coord, alice.token, cid));
    if (got.digest !== digest) throw new Error('local download differs');
    local.push(got.secs);
  }
  await advanceClock(coord, 3_600_000 + 1000);
  await until(async () => (await fileStatus(coord, alice.token, cid)).json, (s) => s.localCopy === false);
  if (await hasObject(coord.dataDir, cid)) throw new Error('the local copy is still there');
  const remote = [];
  for (let i = 0; i < RUNS; i += 1) {
    const got = await timedGet(await downloadLink(coord, alice.token, cid));
    if (got.digest !== digest) throw new Error('download through a node differs');
    remote.push(got.secs);
  }
  const mibs = (s) => (MIB / s).toFixed(0);
  const [l, r] = [median(local), median(remote)];
  console.log(`## The storage network on loopback (${new Date().toISOString().slice(0, 10)})

Command: \`node scripts/bench-network.mjs ${MIB}\` (release build, SQLite and local
files, a coordinator and 3 \`peervault node\`s on loopback, network tick 1 s;
downloads are medians of ${RUNS})

| | seconds | MiB/s |
|---|---|---|
| upload of ${MIB} MiB (\`POST /upload_file\`) | ${upload.toFixed(2)} | ${mibs(upload)} |
| from the upload's end to 3 stored replicas | ${replicate.toFixed(2)} | |
| download from the coordinator's copy | ${l.toFixed(2)} | ${mibs(l)} |
| download served through a node (no local copy) | ${r.toFixed(2)} | ${mibs(r)} |

Replication / upload: **${(replicate / upload).toFixed(2)}** of the upload's time.
Through a node / local: **${(l / r).toFixed(2)}** of the local throughput.`);
} finally {
  for (const n of nodes) n.proc.kill('SIGKILL');
  await coord.stop();
}
