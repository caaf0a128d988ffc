#!/usr/bin/env node
// The gateway's CAR against the plain download (release build): one file
// of N MiB (256 by default) uploaded once, then fetched through its signed
// link as bytes, as the default CAR (depth first, each block once) and as
// ipfs-car's CAR (car-order=unk&car-dups=y), in alternating order, ROUNDS
// times each; medians. Every body is streamed and hashed, never kept: the
// plain download must hash to the file's SHA-256, each CAR to the same
// digest every round. On SQLite + local files by default; run inside
// scripts/with-postgres.sh scripts/with-s3.sh for PostgreSQL + S3.
//
//   node scripts/bench-gateway.mjs [MiB [rounds]]
//
// Prints a Markdown table for BENCHMARKS.md.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { startServer, newUserWithToken, uploadFile, downloadLink } from '../end2end/api/harness.mjs';

const MIB = Number(process.argv[2] ?? 256);
const ROUNDS = Number(process.argv[3] ?? 5);
const now = () => Number(process.hrtime.bigint()) / 1e9;

/** GETs `url`, hashing the body as it arrives: { secs, bytes, digest }. */
function fetchHashed(url) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    http.get(url, (res) => {
      if (res.statusCode !== 200) reject(new Error(`${url}: HTTP ${res.statusCode}`));
      const hash = crypto.createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk) => { hash.update(chunk); bytes += chunk.length; });
      res.on('end', () => resolve({ secs: now() - t0, bytes, digest: hash.digest('hex') }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startServer({
  RUST_LOG: 'warn',
  PEERVAULT_MAX_FILE_BYTES: String((MIB + 1) * 1024 * 1024),
  PEERVAULT_USER_QUOTA_BYTES: String(2 * (MIB + 1) * 1024 * 1024),
});
try {
  const user = await newUserWithToken(server);
  const bytes = crypto.randomBytes(MIB * 1024 * 1024);
  const fileDigest = crypto.createHash('sha256').update(bytes).digest('hex');
  const { cid } = await uploadFile(server, user.token, bytes, { filename: 'bench.bin' });
  const link = new URL(await downloadLink(server, user.token, cid));
  const variant = (params) => {
    const url = new URL(link);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    return url.toString();
  };
  const variants = {
    'plain download (bytes)': variant({}),
    'CAR, order=dfs; dups=n (the default)': variant({ format: 'car' }),
    'CAR, order=unk; dups=y (ipfs-car\'s)': variant({ format: 'car', 'car-order': 'unk', 'car-dups': 'y' }),
  };
  const names = Object.keys(variants);
  const results = Object.fromEntries(names.map((n) => [n, []]));
  const digests = {};
  for (let round = 0; round < ROUNDS; round += 1) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) {
      const got = await fetchHashed(variants[name]);
      if (name.startsWith('plain')) assert.equal(got.digest, fileDigest, 'the plain download is the file');
      digests[name] ??= got.digest;
      assert.equal(got.digest, digests[name], `${name}: the same bytes every round`);
      results[name].push({ secs: got.secs, bytes: got.bytes });
    }
  }
  const plainRate = median(results[names[0]].map((r) => r.bytes / r.secs));
  console.log(`${MIB} MiB file, ${ROUNDS} rounds each, medians:\n`);
  console.log('| | body, MiB | MiB/s | vs plain |');
  console.log('|---|---|---|---|');
  for (const name of names) {
    const rate = median(results[name].map((r) => r.bytes / r.secs));
    const size = results[name][0].bytes / 1024 / 1024;
    console.log(`| ${name} | ${size.toFixed(2)} | ${(rate / 1024 / 1024).toFixed(0)} | ${(rate / plainRate).toFixed(2)} |`);
  }
} finally {
  await server.stop();
}
