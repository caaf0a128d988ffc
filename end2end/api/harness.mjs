// Test harness for the peervault JSON API suite (`node --test end2end/api/`).
//
// Node 20 built-ins only. Every test file starts its own server with
// `startServer(env)` in a `before` hook and stops it in `after`.
//
// The server binary is `target/release/peervault` (built by `make build`),
// or whatever PEERVAULT_BIN points at.

import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');

const STARTUP_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const REQUEST_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------
// Server lifecycle
// ---------------------------------------------------------------------------

/** Children still running, killed if the test process dies without `stop()`. */
const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/** A TCP port that was free a moment ago (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function binaryPath() {
  const bin = process.env.PEERVAULT_BIN || 'target/release/peervault';
  return path.resolve(REPO_ROOT, bin);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export { sleep };

/**
 * With PEERVAULT_TEST_POSTGRES (the admin URL of a throwaway PostgreSQL
 * server, see scripts/with-postgres.sh) every data dir gets a fresh database
 * of its own there, so the whole suite runs against PostgreSQL; a server
 * restarted on the same data dir finds the same database.
 */
const PG_ADMIN = process.env.PEERVAULT_TEST_POSTGRES;
const pgDatabases = new Map();
export const onPostgres = Boolean(PG_ADMIN);

function databaseFor(dataDir) {
  if (!PG_ADMIN) return {};
  if (!pgDatabases.has(dataDir)) {
    const name = `pv_${crypto.randomBytes(6).toString('hex')}`;
    execFileSync('psql', [PG_ADMIN, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${name}`]);
    const url = new URL(PG_ADMIN);
    url.pathname = `/${name}`;
    pgDatabases.set(dataDir, url.toString());
  }
  return { DATABASE_URL: pgDatabases.get(dataDir) };
}

/**
 * With PEERVAULT_TEST_S3_BUCKET (a throwaway SeaweedFS, see
 * scripts/with-s3.sh) every data dir gets a prefix of its own in that bucket
 * as PEERVAULT_BLOB_URL, so the whole suite stores files in S3. The tests
 * look at the stored objects through SeaweedFS's filer (plain HTTP, no S3
 * signature), via the helpers below.
 */
const S3_BUCKET = process.env.PEERVAULT_TEST_S3_BUCKET;
const S3_FILER = process.env.PEERVAULT_TEST_S3_FILER;
const s3Prefixes = new Map();
export const onS3 = Boolean(S3_BUCKET);

function bucketFor(dataDir) {
  if (!S3_BUCKET) return {};
  if (!s3Prefixes.has(dataDir)) s3Prefixes.set(dataDir, `t${crypto.randomBytes(6).toString('hex')}`);
  return { PEERVAULT_BLOB_URL: `s3://${S3_BUCKET}/${s3Prefixes.get(dataDir)}` };
}

/**
 * What several instances share: a fresh database and bucket prefix (on
 * PostgreSQL and S3; pass them to each startServer as overrides).
 */
export function sharedStorage() {
  const key = `shared-${crypto.randomBytes(6).toString('hex')}`;
  return { ...databaseFor(key), ...bucketFor(key) };
}

/** Where the server of `dataDir` keeps upload staging files. */
export const stagingDir = (dataDir) => (onS3 ? path.join(dataDir, 'staging') : path.join(dataDir, 'blobs', 'staging'));

function s3PrefixOf(dataDir) {
  const prefix = s3Prefixes.get(dataDir);
  if (!prefix) throw new Error(`no S3 prefix was given to a server on ${dataDir}`);
  return prefix;
}

/** The stored objects of the server on `dataDir`, as sorted `<last 2 chars>/<cid>`. */
export async function storedObjects(dataDir) {
  if (!onS3) return blobFiles(dataDir, 'objects');
  const names = [];
  let last = '';
  for (;;) {
    const url = `${S3_FILER}/buckets/${S3_BUCKET}/${s3PrefixOf(dataDir)}/?limit=1000&lastFileName=${encodeURIComponent(last)}`;
    const res = await fetch(url, { headers: { Accept: 'application/json' } });
    const text = await res.text();
    if (res.status === 404 || text.trim() === '') break; // no object under the prefix yet
    assert.equal(res.status, 200, `filer listing: ${text.slice(0, 200)}`);
    const listing = JSON.parse(text);
    for (const e of listing.Entries ?? []) names.push(path.posix.basename(e.FullPath));
    if (!listing.ShouldDisplayLoadMore) break;
    last = listing.LastFileName;
  }
  return names.map((cid) => path.join(cid.slice(-2), cid)).sort();
}

/**
 * Multipart objects begun and neither completed nor aborted: locally the
 * files under the server's `blobs/multipart/`; on S3, the multipart uploads
 * of the whole test bucket (SeaweedFS keeps them under `.uploads/`).
 */
export async function unfinishedMultipartUploads(dataDir) {
  if (!onS3) return fs.readdirSync(path.join(dataDir, 'blobs', 'multipart')).sort();
  const res = await fetch(`${S3_FILER}/buckets/${S3_BUCKET}/.uploads/?limit=1000`, { headers: { Accept: 'application/json' } });
  const text = await res.text();
  if (res.status === 404 || text.trim() === '') return [];
  assert.equal(res.status, 200, `filer listing: ${text.slice(0, 200)}`);
  return (JSON.parse(text).Entries ?? []).map((e) => path.posix.basename(e.FullPath));
}

/** The bytes of the object of `cid`, or null when there is none. */
export async function objectBytes(dataDir, cid) {
  if (!onS3) {
    try { return fs.readFileSync(objectPath(dataDir, cid)); } catch (e) { if (e.code === 'ENOENT') return null; throw e; }
  }
  const res = await fetch(`${S3_FILER}/buckets/${S3_BUCKET}/${s3PrefixOf(dataDir)}/${cid}`);
  if (res.status === 404) return null;
  assert.equal(res.status, 200, `filer read of ${cid}`);
  return Buffer.from(await res.arrayBuffer());
}

/** Whether the server on `dataDir` stores an object for `cid`. */
export const hasObject = async (dataDir, cid) => (await objectBytes(dataDir, cid)) !== null;

/**
 * Start a fresh server on a free port with a fresh data dir.
 * @param {Record<string,string|number>} envOverrides extra env (e.g. PEERVAULT_COIN_RATE)
 * @param {{dataDir?:string, keepDataDir?:boolean}} [options]
 *   dataDir: reuse this data dir (e.g. the one of a server killed earlier)
 *   instead of a fresh one; keepDataDir: `stop()` leaves the data dir in place.
 * @returns {Promise<{base:string, port:number, dataDir:string, secret:string,
 *   proc:import('node:child_process').ChildProcess, stdout:()=>string,
 *   stderr:()=>string, stop:()=>Promise<void>,
 *   waitForExit:()=>Promise<{code:number|null, signal:string|null}>}>}
 */
export async function startServer(envOverrides = {}, options = {}) {
  const bin = binaryPath();
  if (!fs.existsSync(bin)) {
    throw new Error(`peervault binary not found at ${bin}: build it first (make build) or set PEERVAULT_BIN`);
  }
  const port = await freePort();
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'peervault-e2e-'));
  const secret = crypto.randomBytes(32).toString('hex');
  const overrides = Object.fromEntries(
    Object.entries(envOverrides).map(([k, v]) => [k, String(v)]),
  );
  const env = {
    ...process.env,
    LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
    LEPTOS_SITE_ROOT: 'target/site',
    PEERVAULT_DATA_DIR: dataDir,
    PEERVAULT_JWT_SECRET: secret,
    // Every test registers its users from 127.0.0.1: the registration budget
    // per address is the subject of its own test, which sets it low.
    PEERVAULT_REGISTER_MAX_PER_IP: '1000000',
    ...databaseFor(dataDir),
    ...bucketFor(dataDir),
    ...overrides,
  };
  const effectiveSecret = env.PEERVAULT_JWT_SECRET;
  // The object helpers look where this server really stores (an override may share a prefix).
  const bucketUrl = S3_BUCKET ? `s3://${S3_BUCKET}/` : null;
  if (bucketUrl && env.PEERVAULT_BLOB_URL?.startsWith(bucketUrl)) s3Prefixes.set(dataDir, env.PEERVAULT_BLOB_URL.slice(bucketUrl.length));

  const proc = spawn(bin, [], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(proc);
  const out = [];
  const err = [];
  proc.stdout.on('data', (c) => out.push(c));
  proc.stderr.on('data', (c) => err.push(c));
  const stdout = () => Buffer.concat(out).toString('utf8');
  const stderr = () => Buffer.concat(err).toString('utf8');

  let exited = null; // { code, signal } once the process is gone
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      liveChildren.delete(proc);
      resolve(exited);
    });
    proc.on('error', (e) => {
      exited = { code: null, signal: null, error: e };
      liveChildren.delete(proc);
      resolve(exited);
    });
  });

  const removeDataDir = () => { if (!options.keepDataDir) fs.rmSync(dataDir, { recursive: true, force: true }); };

  const stop = async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => { if (!exited) proc.kill('SIGKILL'); }, STOP_GRACE_MS);
      await exitPromise;
      clearTimeout(timer);
    }
    removeDataDir();
  };

  const base = `http://127.0.0.1:${port}`;
  const waitForExit = () => exitPromise;
  const databaseUrl = env.DATABASE_URL;
  const server = { base, port, dataDir, databaseUrl, secret: effectiveSecret, proc, stdout, stderr, stop, waitForExit };

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let lastProblem = 'no answer yet';
  for (;;) {
    if (exited) {
      removeDataDir();
      throw new Error(
        `peervault exited during startup (code ${exited.code}, signal ${exited.signal}` +
        `${exited.error ? `, ${exited.error.message}` : ''})\n--- stderr ---\n${stderr()}\n--- stdout ---\n${stdout()}`,
      );
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `peervault did not answer GET /healthz with 200 within ${STARTUP_TIMEOUT_MS} ms (${lastProblem})` +
        `\n--- stderr ---\n${stderr()}\n--- stdout ---\n${stdout()}`,
      );
    }
    try {
      const res = await request(server, 'GET', '/healthz', { timeout: 2_000 });
      if (res.status === 200) break;
      lastProblem = `last status ${res.status}: ${res.text.slice(0, 200)}`;
    } catch (e) {
      lastProblem = e.code || e.message;
    }
    await sleep(100); // real time: the server process is starting
  }
  return server;
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/**
 * One HTTP request on a fresh connection (node:http, so raw bytes, any
 * Content-Type and a chosen source address can be sent).
 *
 * @param {{base:string}} server
 * @param {string} method
 * @param {string} urlPath
 * @param {{json?:any, body?:Buffer|string, headers?:Record<string,string>,
 *   token?:string, localAddress?:string, timeout?:number}} [opts]
 *   json: serialised, Content-Type application/json (unless headers set one);
 *   body: raw bytes sent as is (no Content-Type unless headers set one);
 *   token: sent raw as `Authorization: <token>`.
 * @returns {Promise<{status:number, headers:Record<string,string|string[]>,
 *   text:string, raw:Buffer, json:any}>} json is undefined when the body does not parse.
 */
export function request(server, method, urlPath, opts = {}) {
  const { json, body, headers = {}, token, localAddress, timeout = REQUEST_TIMEOUT_MS } = opts;
  const url = new URL(urlPath, server.base);
  const hdrs = {};
  for (const [k, v] of Object.entries(headers)) hdrs[k.toLowerCase()] = v;

  let payload = null;
  if (json !== undefined) {
    payload = Buffer.from(JSON.stringify(json), 'utf8');
    if (!('content-type' in hdrs)) hdrs['content-type'] = 'application/json';
  } else if (body !== undefined) {
    payload = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
  }
  if (payload !== null && !('content-length' in hdrs)) hdrs['content-length'] = String(payload.length);
  if (token !== undefined) hdrs.authorization = token;

  return new Promise((resolve, reject) => {
    let settled = false;
    const req = http.request({
      method,
      hostname: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      headers: hdrs,
      agent: false, // fresh connection, so localAddress always applies
      localAddress,
      timeout,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', (e) => { if (!settled) { settled = true; reject(e); } });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        const raw = Buffer.concat(chunks);
        const text = raw.toString('utf8');
        let parsed;
        try { parsed = JSON.parse(text); } catch { parsed = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, raw, json: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: no answer within ${timeout} ms`)));
    // A server may answer (e.g. 413) and close before it read the whole body:
    // a write error after the response started is not a failure of the request.
    req.on('error', (e) => { if (!settled) { settled = true; reject(e); } });
    if (payload !== null) req.write(payload);
    req.end();
  });
}

export const post = (server, urlPath, opts) => request(server, 'POST', urlPath, opts);

/** The CID, CAR CID and CAR ipfs-car (npm) gives `bytes`: the reference every stored file must match. */
export function ipfsCarCids(bytes) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-ipfscar-'));
  try {
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, bytes);
    const run = (args) => execFileSync(path.join(REPO_ROOT, 'node_modules/.bin/ipfs-car'), args, { encoding: 'utf8' }).trim();
    const cid = run(['pack', file, '--no-wrap', '-o', `${file}.car`]).split('\n').pop().trim();
    return { cid, carCid: run(['hash', `${file}.car`]), car: fs.readFileSync(`${file}.car`) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `ipfs-car pack <dir>` of `files` ({path: bytes}) in a folder named `top`: { cid, carCid, car }. */
export function ipfsCarPack(files, top = 'folder') {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-pack-'));
  try {
    const dir = path.join(work, top);
    fs.mkdirSync(dir);
    for (const [rel, bytes] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), bytes);
    }
    const run = (args) => execFileSync(path.join(REPO_ROOT, 'node_modules/.bin/ipfs-car'), args, { encoding: 'utf8' }).trim();
    const cid = run(['pack', dir, '-o', path.join(work, 'out.car')]).split('\n').pop();
    return { cid, carCid: run(['hash', path.join(work, 'out.car')]), car: fs.readFileSync(path.join(work, 'out.car')) };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The file parts of a folder upload, each named by its path under `top`, in `order` (default: as given). */
export const folderParts = (files, top = 'folder', order = Object.keys(files)) =>
  order.map((rel) => ({ name: 'file', filename: `${top}/${rel}`, data: files[rel] }));

// CAR and CID reading, to check what the gateway serves against ipfs-car's CAR.

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
/** Bytes of a base32 (multibase 'b') CID. */
export function cidBytes(cid) {
  assert.equal(cid[0], 'b', `not a base32 CID: ${cid}`);
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of cid.slice(1)) {
    const v = B32.indexOf(ch);
    assert.ok(v >= 0, `bad base32 character ${ch} in ${cid}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

export function varint(buf, off) {
  let n = 0;
  let shift = 0;
  for (;;) {
    const b = buf[off++];
    n += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [n, off];
    shift += 7;
  }
}

/** { version, codec, hashCode, digest, length } of CID bytes starting at `off`. */
export function parseCid(buf, off = 0) {
  const start = off;
  let version; let codec; let hashCode; let len;
  [version, off] = varint(buf, off);
  [codec, off] = varint(buf, off);
  [hashCode, off] = varint(buf, off);
  [len, off] = varint(buf, off);
  return { version, codec, hashCode, digest: buf.subarray(off, off + len), length: off + len - start };
}

/** The blocks of a CARv1: [{ cid: Buffer, data: Buffer }]. */
export function carBlocks(car) {
  let [hlen, off] = varint(car, 0);
  off += hlen;
  const blocks = [];
  while (off < car.length) {
    const [len, start] = varint(car, off);
    const cid = parseCid(car, start);
    blocks.push({ cid: car.subarray(start, start + cid.length), data: car.subarray(start + cid.length, start + len) });
    off = start + len;
  }
  return blocks;
}

/** The base32 (multibase 'b') string of CID bytes. */
export function cidString(bytes) {
  let bits = 0;
  let value = 0;
  let out = 'b';
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** Environment that lets a test move the server's clock (see `advanceClock`). */
export const TEST_CLOCK = { PEERVAULT_TEST_CLOCK: 'true' };

/**
 * Moves the clock of a server started with TEST_CLOCK forward by `ms`
 * (POST /test/clock, answered only to loopback): expiry, throttle windows
 * and uptime are then tested without sleeping. Returns the server's time.
 */
export async function advanceClock(server, ms) {
  // Instances started together (`server.peers`) move together: each clock is the system's plus the same offset.
  let now;
  for (const one of server.peers ?? [server]) {
    const res = await post(one, '/test/clock', { json: { advance_ms: ms } });
    assert.equal(res.status, 200, `advancing the clock by ${ms} ms: ${res.status} ${res.text}`);
    now ??= res.json.now_ms;
  }
  return now;
}

/** Assert a JSON response: status, exact body, Content-Type application/json. */
export function assertJson(res, status, expectedBody) {
  const ctx = `(got ${res.status} ${res.headers['content-type'] ?? '<no content-type>'}: ${res.text.slice(0, 500)})`;
  assert.equal(res.status, status, `status ${ctx}`);
  assert.match(String(res.headers['content-type'] ?? ''), /^application\/json\b/i, `content-type ${ctx}`);
  assert.notEqual(res.json, undefined, `body is not JSON ${ctx}`);
  if (expectedBody !== undefined) assert.deepStrictEqual(res.json, expectedBody, ctx);
  return res.json;
}

// ---------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------

export const uniqueSuffix = () => crypto.randomBytes(5).toString('hex');

/** A fresh, valid, unique set of credentials (not registered). */
export function newCredentials(overrides = {}) {
  const username = `u_${uniqueSuffix()}`;
  return {
    username,
    email: `${username}@example.com`,
    password: `pw-${crypto.randomBytes(9).toString('base64url')}`,
    ...overrides,
  };
}

/** Register a unique user (asserting success); returns {username, email, password}. */
export async function registerUser(server, overrides = {}) {
  const creds = newCredentials(overrides);
  const res = await post(server, '/register', { json: creds });
  assertJson(res, 200, { message: 'User registered successfully' });
  return creds;
}

/** Log in (username or email in the `username` field); asserts 200 and returns the JWT. */
export async function loginUser(server, user, { localAddress, as = 'username' } = {}) {
  const res = await post(server, '/login', {
    json: { username: as === 'email' ? user.email : user.username, password: user.password },
    localAddress,
  });
  const body = assertJson(res, 200);
  assert.equal(typeof body.token, 'string', `login gave no token: ${res.text}`);
  return body.token;
}

/** POST /dashboard with the given token; asserts 200 and returns the body. */
export async function dashboard(server, token) {
  const res = await post(server, '/dashboard', { token });
  return assertJson(res, 200);
}

/** The account's peerId, read from its dashboard. */
export async function peerIdOf(server, userToken) {
  return (await dashboard(server, userToken)).peerId;
}

/** A device token via /android_auth (looks the peerId up with a user login). */
export async function deviceToken(server, user, { localAddress } = {}) {
  const peerId = user.peerId ?? await peerIdOf(server, await loginUser(server, user, { localAddress }));
  const res = await post(server, '/android_auth', { json: { username: user.username, peerId }, localAddress });
  const body = assertJson(res, 200);
  assert.equal(typeof body.token, 'string', `android_auth gave no token: ${res.text}`);
  return body.token;
}

/** Register + log in; returns { ...creds, token }. */
export async function newUserWithToken(server, overrides = {}) {
  const user = await registerUser(server, overrides);
  const token = await loginUser(server, user);
  return { ...user, token };
}

/** POST /onboarding with the pledge; asserts 200. */
export async function onboard(server, token, storageRented) {
  const res = await post(server, '/onboarding', { token, json: { storageRented } });
  return assertJson(res, 200);
}

// ---------------------------------------------------------------------------
// JWT
// ---------------------------------------------------------------------------

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const HMAC = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/**
 * Sign a JWT. alg HS256 (default), HS384, HS512 or 'none' (empty signature).
 * `header` adds/overrides header fields. The key is the secret's UTF-8 bytes.
 */
export function signJwt(secret, claims, { alg = 'HS256', header = {} } = {}) {
  const head = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const body = b64url(JSON.stringify(claims));
  const input = `${head}.${body}`;
  if (alg === 'none') return `${input}.`;
  const hash = HMAC[alg];
  if (!hash) throw new Error(`unsupported alg ${alg}`);
  return `${input}.${crypto.createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** Decode (without verifying) a JWT into { header, payload, signature }. */
export function decodeJwt(token) {
  const parts = token.split('.');
  assert.equal(parts.length, 3, `not a JWT: ${token}`);
  return {
    header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')),
    signature: parts[2],
  };
}

// ---------------------------------------------------------------------------
// Source addresses
// ---------------------------------------------------------------------------

// Linux routes all of 127.0.0.0/8 to lo, so any 127.x.y.z works as a source
// address. Start at a per-process offset so parallel test files never share.
let ipCounter = (process.pid % 200) * 60_000;

/** A distinct 127.x.y.z per call (never 127.0.0.1, never .0 or .255). */
export function uniqueIp() {
  ipCounter += 1;
  const n = ipCounter % (250 * 250 * 250);
  const x = 1 + Math.floor(n / 62_500); // 1..250: never 127.0.*.*
  const y = Math.floor(n / 250) % 250;
  const z = (n % 250) + 1; // 1..250
  return `127.${x}.${y}.${z}`;
}

// ---------------------------------------------------------------------------
// Misc
// ---------------------------------------------------------------------------

/** Shortest decimal form of a number, as JavaScript (and the contract) prints it. */
export const shortest = (n) => String(Number(n));

/** Base58 (Bitcoin alphabet) check. */
export const BASE58 = /^[123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz]+$/;

/** The canonical error bodies of the contract. */
export const MSG = {
  tokenMissing: { message: 'Token is missing' },
  tokenInvalid: { message: 'Token is invalid' },
  tooLarge: { message: 'Request body too large' },
  wrongContentType: { message: 'Content-Type must be application/json' },
  badUtf8: { message: 'Request body is not valid UTF-8' },
  malformed: { message: 'Malformed JSON in request body' },
  notObject: { message: 'Request body must be a JSON object' },
  tooMany: { message: 'Too many attempts, please try again later' },
  badLogin: { message: 'Invalid username or password' },
  badDevice: { message: 'Invalid username or PeerID' },
  userExists: { message: 'User already exist' },
  dataMissing: { message: 'Data missing' },
  missing: (field) => ({ message: `Missing ${field} field in request body` }),
  notString: (field) => ({ message: `${field} must be a string` }),
};

/**
 * Assert that a rejected registration left nothing behind: logging in with
 * its credentials fails (from a fresh source address, so no throttle budget
 * is touched) and its username and email are still free (registering them
 * now succeeds). Pass `usernameValid:false` / `emailValid:false` when that
 * value was itself the invalid input: a fresh valid one is used instead.
 */
export async function assertNotRegistered(server, creds, { usernameValid = true, emailValid = true } = {}) {
  if (usernameValid && typeof creds.password === 'string' && creds.password.length > 0) {
    const login = await post(server, '/login', {
      json: { username: creds.username, password: creds.password },
      localAddress: uniqueIp(),
    });
    assertJson(login, 401, MSG.badLogin);
  }
  const fresh = newCredentials();
  const res = await post(server, '/register', {
    json: {
      username: usernameValid ? creds.username : fresh.username,
      email: emailValid ? creds.email : fresh.email,
      password: fresh.password,
    },
  });
  assertJson(res, 200, { message: 'User registered successfully' });
}

/** A JSON text of exactly `size` bytes for `obj`, padded with whitespace. */
export function paddedJson(obj, size) {
  const s = JSON.stringify(obj);
  const pad = size - Buffer.byteLength(s, 'utf8');
  if (pad < 0) throw new Error(`object needs ${Buffer.byteLength(s)} bytes, more than ${size}`);
  return `${s.slice(0, -1)}${' '.repeat(pad)}}`;
}

/** Coins of one credited interval: ms/3600000 h * MB/1024 GB * coins per GB-hour. */
export const coinsFor = (ms, storageMb, coinRate) => (ms / 3_600_000) * (storageMb / 1024) * coinRate;

// ---------------------------------------------------------------------------
// Files: multipart bodies and the blob store on disk
// ---------------------------------------------------------------------------

/**
 * A multipart/form-data body built by hand, so part order, headers and
 * malformed cases are under the test's control.
 * Each part: { name, filename?, type?, data?: Buffer|string, headers?: string[] }
 * (`filename: undefined` → no filename attribute; `headers` → extra header lines;
 * `disposition` → the whole Content-Disposition value, replacing the generated one).
 * @returns {{body:Buffer, contentType:string, boundary:string}}
 */
export function multipart(parts, { boundary = `----pvtest${crypto.randomBytes(8).toString('hex')}`, close = true } = {}) {
  const chunks = [];
  for (const part of parts) {
    const lines = [];
    if (part.disposition !== undefined) {
      lines.push(`Content-Disposition: ${part.disposition}`);
    } else {
      let cd = `form-data; name="${part.name}"`;
      if (part.filename !== undefined) cd += `; filename="${part.filename}"`;
      lines.push(`Content-Disposition: ${cd}`);
    }
    if (part.type !== undefined) lines.push(`Content-Type: ${part.type}`);
    for (const h of part.headers ?? []) lines.push(h);
    chunks.push(Buffer.from(`--${boundary}\r\n${lines.join('\r\n')}\r\n\r\n`, 'utf8'));
    const data = part.data ?? Buffer.alloc(0);
    chunks.push(Buffer.isBuffer(data) ? data : Buffer.from(String(data), 'utf8'));
    chunks.push(Buffer.from('\r\n'));
  }
  if (close) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}`, boundary };
}

/** POST /upload_file with the given parts (see `multipart`); returns the raw response. */
export function uploadParts(server, token, parts, { timeout } = {}) {
  const { body, contentType } = multipart(parts);
  return post(server, '/upload_file', { token, body, headers: { 'Content-Type': contentType }, timeout });
}

/** Upload `data` as the `file` part named `filename` (plus a `name` part if given); asserts 200, returns web3. */
export async function uploadFile(server, token, data, { filename = 'file.bin', name, type } = {}) {
  const parts = [{ name: 'file', filename, type, data }];
  if (name !== undefined) parts.push({ name: 'name', data: name });
  const res = await uploadParts(server, token, parts, { timeout: 120_000 });
  const body = assertJson(res, 200);
  assert.equal(body.message, 'File uploaded successfully', res.text);
  return body.web3;
}

/** POST /get_file_list; asserts 200 and an array, returns it. */
export async function fileList(server, token) {
  const res = await post(server, '/get_file_list', { token });
  const body = assertJson(res, 200);
  assert.ok(Array.isArray(body), `file list is not an array: ${res.text.slice(0, 300)}`);
  return body;
}

/** POST /download_file; asserts 200, returns the link. */
export async function downloadLink(server, token, cid) {
  const res = await post(server, '/download_file', { token, json: { cid } });
  const body = assertJson(res, 200);
  assert.equal(typeof body.url, 'string', res.text);
  return body.url;
}

/**
 * Files under <dataDir>/blobs/<sub> ('objects' or 'staging'), as sorted
 * relative paths; 'staging' is wherever the server stages (see stagingDir).
 */
export function blobFiles(dataDir, sub) {
  const root = sub === 'staging' ? stagingDir(dataDir) : path.join(dataDir, 'blobs', sub);
  const out = [];
  const walk = (dir) => {
    let entries;
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch (e) { if (e.code === 'ENOENT') return; throw e; }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

/** Where the blob store keeps the object of `cid`: <dataDir>/blobs/objects/<last 2 chars>/<cid>. */
export const objectPath = (dataDir, cid) => path.join(dataDir, 'blobs', 'objects', cid.slice(-2), cid);

// ---------------------------------------------------------------------------
// Mail: a real SMTP server (aiosmtpd) and the server's file outbox
// ---------------------------------------------------------------------------

const SMTP_STARTUP_TIMEOUT_MS = 20_000;

/** The aiosmtpd executable of the venv `make test-tools` creates (or PEERVAULT_AIOSMTPD). */
export function aiosmtpdPath() {
  return path.resolve(REPO_ROOT, process.env.PEERVAULT_AIOSMTPD || 'target/smtp-venv/bin/aiosmtpd');
}

/** Resolves once `port` on 127.0.0.1 sends an SMTP greeting (a line starting 220). */
function smtpGreets(port, timeoutMs = 2_000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (err) => { clearTimeout(timer); sock.destroy(); if (err) reject(err); else resolve(); };
    const timer = setTimeout(() => done(new Error('no SMTP greeting')), timeoutMs);
    sock.on('data', (c) => {
      buf += c.toString('latin1');
      if (buf.includes('\n')) done(buf.startsWith('220') ? null : new Error(`unexpected greeting ${JSON.stringify(buf)}`));
    });
    sock.on('error', (e) => done(e));
    sock.on('end', () => done(new Error('closed before the greeting')));
  });
}

/**
 * Start a real SMTP server (aiosmtpd 1.4.6 with its Mailbox handler) that
 * stores every message it accepts in a temporary Maildir.
 * @param {{port?:number}} [options] port: listen on this port (e.g. to restart
 *   a server that was stopped) instead of a free one.
 * @returns {Promise<{url:string, port:number, maildir:string,
 *   messages:()=>ReturnType<typeof parseEml>[],
 *   waitForMessage:(predicate?:(m:ReturnType<typeof parseEml>)=>boolean, timeoutMs?:number)=>Promise<ReturnType<typeof parseEml>>,
 *   stop:()=>Promise<void>, stderr:()=>string}>}
 *   messages(): every stored message, oldest first (see `parseEml`).
 */
export async function startSmtp(options = {}) {
  const bin = aiosmtpdPath();
  if (!fs.existsSync(bin)) {
    throw new Error(`aiosmtpd not found at ${bin}: create it with ` +
      '`python3 -m venv target/smtp-venv && target/smtp-venv/bin/pip install aiosmtpd==1.4.6` (make test-tools)');
  }
  const port = options.port ?? await freePort();
  const maildir = fs.mkdtempSync(path.join(os.tmpdir(), 'peervault-smtp-'));
  for (const sub of ['tmp', 'new', 'cur']) fs.mkdirSync(path.join(maildir, sub));

  // aiosmtpd [-n] [-l HOST:PORT] [-c CLASSPATH] [CLASSARGS...]: the Mailbox handler takes the Maildir path.
  const proc = spawn(bin, ['-n', '-l', `127.0.0.1:${port}`, '-c', 'aiosmtpd.handlers.Mailbox', maildir], {
    cwd: REPO_ROOT, env: { ...process.env, PYTHONUNBUFFERED: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(proc);
  const out = [];
  proc.stdout.on('data', (c) => out.push(c));
  proc.stderr.on('data', (c) => out.push(c));
  const stderr = () => Buffer.concat(out).toString('utf8');
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => { exited = { code, signal }; liveChildren.delete(proc); resolve(exited); });
    proc.on('error', (e) => { exited = { code: null, signal: null, error: e }; liveChildren.delete(proc); resolve(exited); });
  });

  let removed = false;
  const stop = async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => { if (!exited) proc.kill('SIGKILL'); }, STOP_GRACE_MS);
      await exitPromise;
      clearTimeout(timer);
    }
    if (!removed) { removed = true; fs.rmSync(maildir, { recursive: true, force: true }); }
  };

  const deadline = Date.now() + SMTP_STARTUP_TIMEOUT_MS;
  let lastProblem = 'no answer yet';
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`aiosmtpd exited during startup (code ${exited.code}, signal ${exited.signal}` +
        `${exited.error ? `, ${exited.error.message}` : ''})\n${stderr()}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`aiosmtpd did not greet on 127.0.0.1:${port} within ${SMTP_STARTUP_TIMEOUT_MS} ms (${lastProblem})\n${stderr()}`);
    }
    try { await smtpGreets(port); break; } catch (e) { lastProblem = e.code || e.message; }
    await sleep(100); // real time: the SMTP process is starting
  }

  const messages = () => readMailFiles(path.join(maildir, 'new'), () => true)
    .concat(readMailFiles(path.join(maildir, 'cur'), () => true))
    .sort(byArrival);
  const waitForMessage = (predicate = () => true, timeoutMs = 10_000) =>
    waitForMail(messages, predicate, timeoutMs, `SMTP server on port ${port}`);

  return { url: `smtp://127.0.0.1:${port}`, port, maildir, messages, waitForMessage, stop, stderr };
}

/** The mails the server wrote to <dataDir>/outbox/*.eml (outbox mode), oldest first, parsed like `startSmtp().messages()`. */
export function outboxMessages(dataDir) {
  return readMailFiles(path.join(dataDir, 'outbox'), (name) => name.endsWith('.eml')).sort(byArrival);
}

/** Waits for an outbox mail matching `predicate` (see `outboxMessages`). */
export function waitForOutboxMessage(dataDir, predicate = () => true, timeoutMs = 10_000) {
  return waitForMail(() => outboxMessages(dataDir), predicate, timeoutMs, `${dataDir}/outbox`);
}

async function waitForMail(list, predicate, timeoutMs, where) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = list().find(predicate);
    if (found) return found;
    if (Date.now() > deadline) {
      const seen = list().map((m) => `${m.to} | ${m.subject}`);
      throw new Error(`no matching mail in ${where} within ${timeoutMs} ms; ${seen.length} mail(s): ${JSON.stringify(seen)}`);
    }
    await sleep(50); // real time: the mail is written by another process
  }
}

const byArrival = (a, b) => (a.mtimeNs < b.mtimeNs ? -1 : a.mtimeNs > b.mtimeNs ? 1 : a.file.localeCompare(b.file));

function readMailFiles(dir, accept) {
  let names;
  try { names = fs.readdirSync(dir); } catch (e) { if (e.code === 'ENOENT') return []; throw e; }
  const out = [];
  for (const name of names) {
    if (name.startsWith('.') || !accept(name)) continue;
    const file = path.join(dir, name);
    const st = fs.statSync(file, { bigint: true });
    if (!st.isFile()) continue;
    out.push({ ...parseEml(fs.readFileSync(file)), file, mtimeNs: st.mtimeNs });
  }
  return out;
}

// --- a small MIME reader (RFC 5322 headers, RFC 2045 multipart and transfer encodings, RFC 2047 words)

function decodeBytes(buf, charset = 'utf-8') {
  try { return new TextDecoder(charset.toLowerCase() === 'us-ascii' ? 'utf-8' : charset).decode(buf); } catch { return new TextDecoder('utf-8').decode(buf); }
}

/** Bytes (as a latin1 string) of a quoted-printable body. */
const unQuotedPrintable = (s) => s.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));

/** Decodes RFC 2047 encoded words (=?charset?B|Q?...?=) in a header value. */
export function decodeWords(value) {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?[^?]+\?[BbQq]\?[^?]*\?=)/g, '$1') // whitespace between words is dropped
    .replace(/=\?([^?*]+)(?:\*[^?]*)?\?([BbQq])\?([^?]*)\?=/g, (_, charset, enc, text) => {
      const bytes = enc.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : Buffer.from(unQuotedPrintable(text.replace(/_/g, ' ')), 'latin1');
      return decodeBytes(bytes, charset);
    });
}

/** Header block (latin1 string) → [[lowercase name, raw value], ...], folded lines unfolded. */
function parseHeaders(block) {
  const out = [];
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && out.length > 0) out[out.length - 1][1] += ` ${line.trim()}`;
    else {
      const i = line.indexOf(':');
      if (i > 0) out.push([line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()]);
    }
  }
  return out;
}

/** `type/sub; a=b; c="d"` → { type: 'type/sub', params: { a: 'b', c: 'd' } }. */
function parseContentType(value = 'text/plain') {
  const [type, ...rest] = value.split(';');
  const params = {};
  for (const p of rest) {
    const i = p.indexOf('=');
    if (i < 0) continue;
    params[p.slice(0, i).trim().toLowerCase()] = p.slice(i + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return { type: type.trim().toLowerCase(), params };
}

/** One MIME entity (latin1 string) → { headers, contentType, leaves: [{ type, text }] }. */
function parseEntity(str) {
  const m = /\r?\n\r?\n/.exec(str);
  const headerBlock = m ? str.slice(0, m.index) : str;
  const body = m ? str.slice(m.index + m[0].length) : '';
  const headerList = parseHeaders(headerBlock);
  const first = (name) => headerList.find(([n]) => n === name)?.[1];
  const ct = parseContentType(first('content-type'));
  const leaves = [];
  if (ct.type.startsWith('multipart/') && ct.params.boundary) {
    const delim = `--${ct.params.boundary}`;
    const chunks = `\r\n${body}`.split(new RegExp(`\\r?\\n${delim.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    for (const chunk of chunks.slice(1)) {
      if (chunk.startsWith('--')) break; // close delimiter
      const nl = chunk.indexOf('\n');
      if (nl < 0) continue;
      leaves.push(...parseEntity(chunk.slice(nl + 1)).leaves);
    }
  } else {
    const cte = (first('content-transfer-encoding') ?? '7bit').trim().toLowerCase();
    let bytes;
    if (cte === 'base64') bytes = Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
    else if (cte === 'quoted-printable') bytes = Buffer.from(unQuotedPrintable(body), 'latin1');
    else bytes = Buffer.from(body, 'latin1');
    leaves.push({ type: ct.type, charset: ct.params.charset ?? 'us-ascii', transferEncoding: cte, text: decodeBytes(bytes, ct.params.charset ?? 'utf-8') });
  }
  return { headerList, contentType: ct, leaves };
}

/** `Name <a@b>`, `"Name" <a@b>` or `a@b` → { name, address }. */
export function parseAddress(value) {
  const m = /^\s*(.*?)\s*<([^>]*)>\s*$/.exec(value ?? '');
  if (!m) return { name: '', address: (value ?? '').trim() };
  let name = m[1];
  if (/^".*"$/.test(name)) name = name.slice(1, -1).replace(/\\(.)/g, '$1');
  return { name, address: m[2].trim() };
}

/**
 * Parse one RFC 5322 message.
 * @param {Buffer|string} raw
 * @returns {{raw:string, headers:Record<string,string>, header:(name:string)=>string|undefined,
 *   headerAll:(name:string)=>string[], to:string, from:string, subject:string, contentType:string,
 *   parts:{type:string, charset:string, transferEncoding:string, text:string}[],
 *   text:string|undefined, html:string|undefined}}
 *   headers: first value of each header, lowercase names, encoded words decoded;
 *   text/html: the decoded text/plain and text/html parts (first of each).
 */
export function parseEml(raw) {
  const str = Buffer.isBuffer(raw) ? raw.toString('latin1') : Buffer.from(raw, 'utf8').toString('latin1');
  const entity = parseEntity(str);
  // header values may carry raw UTF-8 (SMTPUTF8): read them back as UTF-8 before decoding words
  const values = entity.headerList.map(([n, v]) => [n, decodeWords(decodeBytes(Buffer.from(v, 'latin1')))]);
  const headers = {};
  for (const [n, v] of values) if (!(n in headers)) headers[n] = v;
  const header = (name) => headers[name.toLowerCase()];
  const headerAll = (name) => values.filter(([n]) => n === name.toLowerCase()).map(([, v]) => v);
  const part = (type) => entity.leaves.find((l) => l.type === type)?.text;
  return {
    raw: decodeBytes(Buffer.from(str, 'latin1')),
    headers, header, headerAll,
    to: header('to') ?? '',
    from: header('from') ?? '',
    subject: header('subject') ?? '',
    contentType: entity.contentType.type,
    parts: entity.leaves,
    text: part('text/plain'),
    html: part('text/html'),
  };
}

/** The visible text of an HTML document: no tags, style or script, entities decoded, whitespace collapsed. */
export function htmlText(html) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };
  return String(html ?? '')
    .replace(/<(style|script|head)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, e) => {
      if (e[0] === '#') return String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
      return named[e.toLowerCase()] ?? all;
    })
    .replace(/\s+/g, ' ')
    .trim();
}

/** Every distinct standalone run of exactly 6 digits in `text`. */
export const sixDigitCodes = (text) => [...new Set(String(text ?? '').match(/(?<![\w#])\d{6}(?![\w])/g) ?? [])];

/**
 * The 6-digit code of a reset mail: the one 6-digit number of its text/plain
 * part (of its HTML text when it has no plain part). Throws unless exactly one.
 */
export function codeFrom(message) {
  const source = message.text !== undefined ? message.text : htmlText(message.html);
  const codes = sixDigitCodes(source);
  if (codes.length !== 1) {
    throw new Error(`expected exactly one 6-digit code in the mail to ${message.to}, found ${JSON.stringify(codes)}:\n${source}`);
  }
  return codes[0];
}

// ---------------------------------------------------------------------------
// Server functions of the web UI (POST /api/<name>) and the session cookie
// ---------------------------------------------------------------------------

export const SESSION_COOKIE = 'peervault_session';

/**
 * POST /api/<name>: a server function of the web UI, its arguments
 * form-encoded, asking for JSON back (as the page's script does).
 * @param {{cookie?:string, headers?:Record<string,string>, localAddress?:string,
 *   origin?:string|null, accept?:string, timeout?:number}} [opts]
 *   cookie: the Cookie header (e.g. what webLogin returns);
 *   origin: the Origin header, the server's own origin unless given (null: none);
 *   accept: `text/html` to post the way a browser's plain form does;
 *   headers: extra headers, overriding the ones above.
 */
export function serverFn(server, name, fields = {}, opts = {}) {
  const { cookie, headers = {}, localAddress, origin = server.base, accept = 'application/json', timeout } = opts;
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) form.append(k, String(v));
  const hdrs = { 'content-type': 'application/x-www-form-urlencoded', accept };
  if (origin !== null) hdrs.origin = origin;
  if (cookie !== undefined) hdrs.cookie = cookie;
  for (const [k, v] of Object.entries(headers)) hdrs[k.toLowerCase()] = v;
  return post(server, `/api/${name}`, { body: form.toString(), headers: hdrs, localAddress, timeout });
}

/** POST /api/<name> with a multipart body of `parts` (see `multipart`), e.g. upload_my_file. */
export function serverFnMultipart(server, name, parts, opts = {}) {
  const { cookie, headers = {}, localAddress, origin = server.base, timeout } = opts;
  const { body, contentType } = multipart(parts);
  const hdrs = { 'content-type': contentType, accept: 'application/json' };
  if (origin !== null) hdrs.origin = origin;
  if (cookie !== undefined) hdrs.cookie = cookie;
  for (const [k, v] of Object.entries(headers)) hdrs[k.toLowerCase()] = v;
  return post(server, `/api/${name}`, { body, headers: hdrs, localAddress, timeout });
}

/** The `peervault_session=<JWT>` a response sets (non-empty value), or null. */
export function sessionCookieOf(res) {
  const raw = res.headers['set-cookie'];
  const list = Array.isArray(raw) ? raw : raw ? [raw] : [];
  for (const c of list) {
    const pair = c.split(';')[0].trim();
    if (pair.startsWith(`${SESSION_COOKIE}=`) && pair.length > SESSION_COOKIE.length + 1) return pair;
  }
  return null;
}

/** The JWT inside a `peervault_session=<JWT>` cookie string. */
export const cookieToken = (cookie) => cookie.slice(cookie.indexOf('=') + 1);

/**
 * Log in the way the web page does (POST /api/log_in); asserts 200 and a
 * session cookie, returns `peervault_session=<JWT>` for the Cookie header.
 */
export async function webLogin(server, user, { localAddress, as = 'username' } = {}) {
  const res = await serverFn(server, 'log_in', {
    username: as === 'email' ? user.email : user.username, password: user.password,
  }, { localAddress });
  assert.equal(res.status, 200, `web login: ${res.status} ${res.text.slice(0, 300)}`);
  const cookie = sessionCookieOf(res);
  assert.ok(cookie, `web login set no ${SESSION_COOKIE} cookie: ${JSON.stringify(res.headers['set-cookie'])}`);
  return cookie;
}

/**
 * Assert a server function's error: the real HTTP status and a JSON body
 * whose `message` is exactly `message` (and whose `status`, if present, is
 * that status).
 */
export function assertFnError(res, status, message) {
  const ctx = `(got ${res.status} ${res.headers['content-type'] ?? '<no content-type>'}: ${res.text.slice(0, 500)})`;
  assert.equal(res.status, status, `status ${ctx}`);
  assert.ok(res.json !== null && typeof res.json === 'object', `body is not a JSON object ${ctx}`);
  assert.equal(res.json.message, message, `message ${ctx}`);
  if (res.json.status !== undefined) assert.equal(res.json.status, status, `"status" field ${ctx}`);
  return res.json;
}

// ---------------------------------------------------------------------------
// Server memory and streamed request bodies
// ---------------------------------------------------------------------------

/** The server process's peak resident set size (VmHWM), in bytes. */
export function peakRss(server) {
  const status = fs.readFileSync(`/proc/${server.proc.pid}/status`, 'utf8');
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  assert.ok(m, `no VmHWM in /proc/${server.proc.pid}/status`);
  return Number(m[1]) * 1024;
}

/**
 * Resets the server's peak RSS to its current RSS (Linux ≥ 4.0, writing 5 to
 * clear_refs), so the next peakRss() shows what happened since. Returns
 * false where that is not allowed (then peakRss() only ever grows).
 */
export function resetPeakRss(server) {
  try { fs.writeFileSync(`/proc/${server.proc.pid}/clear_refs`, '5'); return true; } catch { return false; }
}

/**
 * A request whose body is `head`, then `fillBytes` bytes of `fill` (a
 * one-byte string), then `tail`, written in 1 MiB chunks as the socket takes
 * them, so the test never holds the body in memory. Writing stops once the
 * answer has begun; a write error after that (the server answered and
 * closed before reading everything) is not a failure.
 * @returns {Promise<{status:number, headers:Record<string,string|string[]>, text:string, json:any}>}
 */
export function streamedRequest(server, method, urlPath, { headers = {}, head = '', fill = 'a', fillBytes = 0, tail = '', localAddress, timeout = REQUEST_TIMEOUT_MS } = {}) {
  const url = new URL(urlPath, server.base);
  const headBuf = Buffer.isBuffer(head) ? head : Buffer.from(head, 'utf8');
  const tailBuf = Buffer.isBuffer(tail) ? tail : Buffer.from(tail, 'utf8');
  const hdrs = {};
  for (const [k, v] of Object.entries(headers)) hdrs[k.toLowerCase()] = v;
  hdrs['content-length'] = String(headBuf.length + fillBytes + tailBuf.length);
  const chunk = Buffer.alloc(1024 * 1024, fill);
  return new Promise((resolve, reject) => {
    let settled = false;
    let answered = false;
    const req = http.request({
      method, hostname: url.hostname, port: url.port, path: url.pathname + url.search,
      headers: hdrs, agent: false, localAddress, timeout,
    }, (res) => {
      answered = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', (e) => { if (!settled) { settled = true; reject(e); } });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed;
        try { parsed = JSON.parse(text); } catch { parsed = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json: parsed });
        req.destroy(); // the rest of the body is not sent
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: no answer within ${timeout} ms`)));
    req.on('error', (e) => {
      if (settled || answered) return;
      settled = true;
      if (['EPIPE', 'ECONNRESET'].includes(e.code)) {
        e.message = `${method} ${urlPath}: the connection was reset before any answer arrived (${e.code}): `
          + 'a server that answers early must still read on (or shut down its side gracefully) so the client gets the answer';
      }
      reject(e);
    });
    const stopped = () => answered || settled || req.destroyed;
    const drained = () => new Promise((r) => {
      const done = () => { req.off('drain', done); req.off('close', done); r(); };
      req.on('drain', done);
      req.on('close', done);
    });
    (async () => {
      if (!req.write(headBuf)) await drained();
      let left = fillBytes;
      while (left > 0) {
        if (stopped()) return;
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await drained();
      }
      if (stopped()) return;
      req.end(tailBuf);
    })();
  });
}
