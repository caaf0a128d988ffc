#!/usr/bin/env node
// Resumable uploads against the plain upload, one run (release build): a
// file of N MiB (1024 by default) sent as one `POST /upload_file`, and the
// same size sent to `/uploads` (tus) in 8 MiB PATCHes. Each upload runs
// against a server of its own, so the server's peak RSS (VmHWM) is that
// upload's. Fresh random bytes each time (identical content would be
// stored once). On SQLite + local files by default; run inside
// scripts/with-postgres.sh scripts/with-s3.sh for PostgreSQL + S3.
//
//   node scripts/bench-tus.mjs [MiB]
//   scripts/with-postgres.sh scripts/with-s3.sh node scripts/bench-tus.mjs [MiB]
//
// Prints a Markdown table for BENCHMARKS.md.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { startServer, newUserWithToken, uploadFile, request, onS3 } from '../end2end/api/harness.mjs';

const MIB = Number(process.argv[2] ?? 1024);
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

const bytesA = crypto.randomBytes(MIB * 1024 * 1024);
const a = await plain(bytesA);
const b = await tus(crypto.randomBytes(MIB * 1024 * 1024));
assert.ok(a.cid && b.cid);
const rate = (r) => (MIB / r.secs).toFixed(0);
const where = onS3 ? 'PostgreSQL + S3 (SeaweedFS)' : 'SQLite + local files';
console.log(`| ${MIB} MiB, ${where} | POST /upload_file | tus, 8 MiB PATCHes | tus / plain |`);
console.log('|---|---|---|---|');
console.log(`| throughput, MiB/s | ${rate(a)} | ${rate(b)} | ${(a.secs / b.secs).toFixed(2)} |`);
console.log(`| time, s | ${a.secs.toFixed(2)} | ${b.secs.toFixed(2)} | |`);
console.log(`| server peak RSS, MiB | ${a.rss.toFixed(0)} | ${b.rss.toFixed(0)} | |`);
