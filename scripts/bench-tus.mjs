#!/usr/bin/env node
// Resumable uploads against the plain upload (release build): a
// file of N MiB (1024 by default) sent as one `POST /upload_file`, and the
// same size sent to `/uploads` (tus) in 8 MiB PATCHes. Each upload runs
// against a server of its own, so the server's peak RSS (VmHWM) is that
// upload's. Fresh random bytes each time (identical content would be
// stored once). On SQLite + local files by default; run inside
// scripts/with-postgres.sh scripts/with-s3.sh for PostgreSQL + S3.
//
//   node scripts/bench-tus.mjs [MiB [rounds]]
//   scripts/with-postgres.sh scripts/with-s3.sh node scripts/bench-tus.mjs [MiB [rounds]]
//
// Prints a Markdown table for BENCHMARKS.md.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { startServer, newUserWithToken, uploadFile, request, onS3 } from '../end2end/api/harness.mjs';

const MIB = Number(process.argv[2] ?? 1024);
const ROUNDS = Number(process.argv[3] ?? 3);
const PIECE = 8 * 1024 * 1024;
const now = () => Number(process.hrtime.bigint()) / 1e9;
const env = {
  RUST_LOG: 'warn',
  PEERVAULT_MAX_FILE_BYTES: String((MIB + 1) * 1024 * 1024),
  PEERVAULT_USER_QUOTA_BYTES: String(4 * (MIB + 1) * 1024 * 1024),
};
const peakRss = (server) => Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${server.proc.pid}/status`, 'utf8'))[1]) / 1024;

async function plain(bytes) {
  const server = await startServer(env);
  try {
    const user = await newUserWithToken(server);
    const t0 = now();
    const { cid } = await uploadFile(server, user.token, bytes, { filename: 'plain.bin' });
    return { secs: now() - t0, rss: peakRss(server), cid };
  } finally {
    await server.stop();
  }
}

async function tus(bytes) {
  const server = await startServer(env);
  try {
    const user = await newUserWithToken(server);
    const t0 = now();
    const created = await request(server, 'POST', '/uploads', {
      token: user.token,
      headers: { 'tus-resumable': '1.0.0', 'upload-length': String(bytes.length), 'upload-metadata': `filename ${Buffer.from('tus.bin').toString('base64')}` },
    });
    assert.equal(created.status, 201, created.text);
    let cid;
    for (let at = 0; at < bytes.length; at += PIECE) {
      const res = await request(server, 'PATCH', created.headers.location, {
        token: user.token, body: bytes.subarray(at, Math.min(bytes.length, at + PIECE)), timeout: 300_000,
        headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': String(at) },
      });
      assert.equal(res.status, 204, res.text);
      cid = res.headers['peervault-cid'] ?? cid;
    }
    return { secs: now() - t0, rss: peakRss(server), cid };
  } finally {
    await server.stop();
  }
}

// Rounds alternate which upload goes first; before each upload the page
// cache's dirty pages are written out (`sync`), so each starts from the
// same state of the disk. Medians over the rounds.
const results = { plain: [], tus: [] };
for (let round = 0; round < ROUNDS; round += 1) {
  const order = round % 2 === 0 ? ['plain', 'tus'] : ['tus', 'plain'];
  for (const which of order) {
    const bytes = crypto.randomBytes(MIB * 1024 * 1024);
    execFileSync('sync');
    const r = await (which === 'plain' ? plain : tus)(bytes);
    assert.ok(r.cid);
    results[which].push(r);
  }
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const secs = (which) => median(results[which].map((r) => r.secs));
const spread = (which) => results[which].map((r) => (MIB / r.secs).toFixed(0)).join(', ');
const rss = (which) => Math.max(...results[which].map((r) => r.rss)).toFixed(0);
const where = onS3 ? 'PostgreSQL + S3 (SeaweedFS)' : 'SQLite + local files';
console.log(`| ${MIB} MiB, ${where}, median of ${ROUNDS} | POST /upload_file | tus, 8 MiB PATCHes | tus / plain |`);
console.log('|---|---|---|---|');
console.log(`| throughput, MiB/s | ${(MIB / secs('plain')).toFixed(0)} | ${(MIB / secs('tus')).toFixed(0)} | ${(secs('plain') / secs('tus')).toFixed(2)} |`);
console.log(`| each round, MiB/s | ${spread('plain')} | ${spread('tus')} | |`);
console.log(`| time, s | ${secs('plain').toFixed(2)} | ${secs('tus').toFixed(2)} | |`);
console.log(`| server peak RSS, MiB (largest) | ${rss('plain')} | ${rss('tus')} | |`);
