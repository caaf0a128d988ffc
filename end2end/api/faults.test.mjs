// Faults caused for real, and what clients see: a full disk (a 40 MiB tmpfs
// as the data directory), the database stopped (PostgreSQL runs only),
// the bucket stopped (S3 runs only), and SIGTERM during an upload.
// Each: the status and JSON during the fault, nothing partial left behind,
// full service after recovery with nothing lost.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, post, request, assertJson, newUserWithToken, uploadFile, uploadParts, fileList, downloadLink,
  dashboard, registerUser, stagingDir, onPostgres, onS3, webLogin, serverFn, multipart, sleep,
} from './harness.mjs';

const NO_SPACE = { message: 'Not enough storage space on the server' };
const UNAVAILABLE = { message: 'Service temporarily unavailable' };
const rand = (n) => crypto.randomBytes(n);

/** Runs `fn` and returns [its result, the milliseconds it took]. */
async function timed(fn) {
  const t = Date.now();
  const result = await fn();
  return [result, Date.now() - t];
}

/** A 503 as every JSON route answers it during an outage: message and Retry-After. */
function assertUnavailable(res, ms, what) {
  assertJson(res, 503, UNAVAILABLE);
  assert.equal(res.headers['retry-after'], '5', `${what}: Retry-After`);
  // the dependency timeout is 2 s: the answer comes well before a pool's or client's default
  assert.ok(ms < 8000, `${what} answered after ${ms} ms`);
}

/** Polls GET /healthz until it answers 200 (after a dependency came back). */
async function waitHealthy(server, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await request(server, 'GET', '/healthz', { timeout: 10_000 }).catch((e) => ({ status: 0, text: e.message }));
    if (res.status === 200) return;
    if (Date.now() > deadline) throw new Error(`not healthy after ${timeoutMs} ms: ${res.status} ${res.text}`);
    await sleep(200); // real time: a restarted dependency takes its own time
  }
}

describe('a full disk: the data directory on a 40 MiB tmpfs', () => {
  let mountPoint;
  let mounted = false;
  let server;
  let skipReason;
  before(async () => {
    mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), 'peervault-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m,mode=0700', 'tmpfs', mountPoint], { stdio: 'pipe' });
      mounted = true;
    } catch (e) {
      skipReason = `mounting a tmpfs is not permitted here (${String(e.stderr || e.message).trim()}): the full-disk test needs root`;
      return;
    }
    server = await startServer({}, { dataDir: mountPoint, keepDataDir: true });
  });
  after(async () => {
    await server?.stop();
    if (mounted) execFileSync('umount', [mountPoint]);
    fs.rmSync(mountPoint, { recursive: true, force: true });
  });

  it('a 60 MB upload → 507 "Not enough storage space on the server", the OS error and path in the log, nothing left; then full service', async (t) => {
    if (skipReason) { t.skip(skipReason); return; }
    const user = await newUserWithToken(server);
    const before = await dashboard(server, user.token);
    const res = await uploadParts(server, user.token, [{ name: 'file', filename: 'big.bin', data: rand(60 * 1000 * 1000) }], { timeout: 120_000 });
    assertJson(res, 507, NO_SPACE);
    const log = server.stderr();
    assert.match(log, /No space left on device/, 'the OS error is logged');
    assert.ok(log.includes(stagingDir(server.dataDir)), 'the log names the file that could not be written');
    assert.ok(!/No space left on device/.test(res.text), 'the client is not shown the OS error');
    // nothing partial: no staging file, no object, no row, no figure changed
    assert.deepEqual(fs.readdirSync(stagingDir(server.dataDir)), [], 'no staging file left');
    assert.deepEqual(await fileList(server, user.token), []);
    assert.deepEqual(await dashboard(server, user.token), before);
    // the space is back: the service goes on
    const other = await registerUser(server);
    assert.ok(other.username);
    const small = rand(100_000);
    const { cid } = await uploadFile(server, user.token, small, { filename: 'small.bin' });
    const url = await downloadLink(server, user.token, cid);
    const got = await request(server, 'GET', new URL(url).pathname + new URL(url).search);
    assert.equal(got.status, 200);
    assert.ok(got.raw.equals(small));
  });
});

describe('the database stopped (PostgreSQL)', { skip: onPostgres ? false : 'runs on PostgreSQL only (make test-api-scaled)' }, () => {
  let server;
  let user;
  let cookie;
  let kept;
  before(async () => {
    server = await startServer({ PEERVAULT_DEPENDENCY_TIMEOUT_SECS: 2 });
    user = await newUserWithToken(server);
    cookie = await webLogin(server, user);
    kept = rand(50_000);
    user.cid = (await uploadFile(server, user.token, kept, { filename: 'kept.bin' })).cid;
    user.figures = await dashboard(server, user.token);
  });
  after(async () => {
    try { execSync(process.env.PEERVAULT_TEST_POSTGRES_START, { stdio: 'ignore' }); } catch { /* already running */ }
    await server?.stop();
  });

  it('every route answers 503 with Retry-After within seconds, /healthz names the database; all is back after a restart', async () => {
    execSync(process.env.PEERVAULT_TEST_POSTGRES_STOP, { stdio: 'pipe' });
    try {
      let [res, ms] = await timed(() => post(server, '/dashboard', { token: user.token }));
      assertUnavailable(res, ms, 'POST /dashboard');
      [res, ms] = await timed(() => post(server, '/login', { json: { username: user.username, password: user.password } }));
      assertUnavailable(res, ms, 'POST /login');
      [res, ms] = await timed(() => uploadParts(server, user.token, [{ name: 'file', filename: 'new.bin', data: rand(10_000) }]));
      assertUnavailable(res, ms, 'POST /upload_file');
      [res, ms] = await timed(() => post(server, '/active_time', { token: user.token, json: { active_time: '1' } }));
      assertUnavailable(res, ms, 'POST /active_time');
      [res, ms] = await timed(() => request(server, 'GET', '/healthz'));
      assertJson(res, 503, { status: 'unavailable', database: 'unavailable', storage: 'ok' });
      assert.ok(ms < 8000, `/healthz answered after ${ms} ms`);
      // the web UI: a server function and a page
      [res, ms] = await timed(() => serverFn(server, 'get_dashboard', {}, { cookie }));
      assert.equal(res.status, 503, res.text);
      assert.equal(res.json?.message, UNAVAILABLE.message);
      assert.ok(ms < 8000, `get_dashboard answered after ${ms} ms`);
      [res, ms] = await timed(() => request(server, 'GET', '/dashboard', { headers: { cookie, accept: 'text/html' } }));
      assert.match(res.text, /Service temporarily unavailable/, 'the page says what is wrong');
      assert.ok(ms < 8000, `the page answered after ${ms} ms`);
      assert.match(server.stderr(), /dependency unavailable.*database/, 'the cause is logged');
    } finally {
      execSync(process.env.PEERVAULT_TEST_POSTGRES_START, { stdio: 'pipe' });
    }
    await waitHealthy(server);
    assert.deepEqual(await dashboard(server, user.token), user.figures, 'nothing changed, nothing lost');
    const list = await fileList(server, user.token);
    assert.deepEqual(list.map((f) => f.cid), [user.cid], 'the upload refused during the outage left no row');
    const url = new URL(await downloadLink(server, user.token, user.cid));
    const got = await request(server, 'GET', url.pathname + url.search);
    assert.ok(got.raw.equals(kept));
  });
});

describe('the bucket stopped (S3)', { skip: onS3 ? false : 'runs on S3 only (make test-api-scaled)' }, () => {
  const ctl = (what) => execFileSync(process.env.PEERVAULT_TEST_S3_CTL, [what], { stdio: 'pipe', timeout: 90_000 });
  let server;
  let user;
  let kept;
  let link;
  before(async () => {
    server = await startServer({ PEERVAULT_DEPENDENCY_TIMEOUT_SECS: 2 });
    user = await newUserWithToken(server);
    kept = rand(70_000);
    user.cid = (await uploadFile(server, user.token, kept, { filename: 'kept.bin' })).cid;
    link = new URL(await downloadLink(server, user.token, user.cid));
    user.figures = await dashboard(server, user.token);
  });
  after(async () => {
    try { ctl('start'); } catch { /* already running */ }
    await server?.stop();
  });

  it('uploads and downloads answer 503 with Retry-After, /healthz names the storage, nothing is left; all is back after a restart', async () => {
    ctl('stop');
    try {
      let [res, ms] = await timed(() => uploadParts(server, user.token, [{ name: 'file', filename: 'new.bin', data: rand(30_000) }]));
      assertUnavailable(res, ms, 'POST /upload_file');
      [res, ms] = await timed(() => request(server, 'GET', link.pathname + link.search));
      assertUnavailable(res, ms, 'GET /ipfs/{cid}');
      [res, ms] = await timed(() => request(server, 'GET', '/healthz'));
      assertJson(res, 503, { status: 'unavailable', database: 'ok', storage: 'unavailable' });
      assert.match(server.stderr(), /dependency unavailable.*object store/, 'the cause is logged');
      assert.deepEqual(fs.readdirSync(stagingDir(server.dataDir)), [], 'no staging file left');
    } finally {
      ctl('start');
    }
    await waitHealthy(server);
    assert.deepEqual(await dashboard(server, user.token), user.figures);
    assert.deepEqual((await fileList(server, user.token)).map((f) => f.cid), [user.cid]);
    // the restarted SeaweedFS may take a moment more to serve reads: the
    // kept file comes back (503 until then, never anything else)
    let got;
    for (const deadline = Date.now() + 30_000; ;) {
      got = await request(server, 'GET', link.pathname + link.search);
      if (got.status !== 503 || Date.now() > deadline) break;
      await sleep(250); // real time: the restarted SeaweedFS takes its own time
    }
    assert.equal(got.status, 200, got.text);
    assert.ok(got.raw.equals(kept));
    await uploadFile(server, user.token, rand(1000), { filename: 'after.bin' });
  });
});

describe('SIGTERM during an upload', () => {
  let server;
  after(async () => { await server?.stop(); });

  it('an 8 MB upload at 2 MB/s finishes with 200 after SIGTERM, the server exits 0, the file is there after a restart', async () => {
    server = await startServer({}, { keepDataDir: true });
    const user = await newUserWithToken(server);
    const data = rand(8 * 1000 * 1000);
    const { body, contentType } = multipart([{ name: 'file', filename: 'slow.bin', data }]);
    const url = new URL('/upload_file', server.base);
    const answer = new Promise((resolve, reject) => {
      const req = http.request({
        method: 'POST', hostname: url.hostname, port: url.port, path: url.pathname, agent: false,
        headers: { authorization: user.token, 'content-type': contentType, 'content-length': body.length },
      }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      // 2 MB/s: 200 kB every 100 ms; SIGTERM once a second of it is sent
      let sent = 0;
      const step = 200_000;
      const tick = setInterval(() => {
        req.write(body.subarray(sent, sent + step));
        sent += step;
        if (sent === 2_000_000) server.proc.kill('SIGTERM');
        if (sent >= body.length) { clearInterval(tick); req.end(); }
      }, 100);
    });
    const res = await answer;
    assert.equal(res.status, 200, res.text);
    const exit = await server.waitForExit();
    assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, 'the server drained, then exited 0');
    const again = await startServer({}, { dataDir: server.dataDir });
    server = again;
    const token = (await post(again, '/login', { json: { username: user.username, password: user.password } })).json.token;
    const list = await fileList(again, token);
    assert.equal(list.length, 1);
    assert.equal(list[0].size, data.length);
  });
});
