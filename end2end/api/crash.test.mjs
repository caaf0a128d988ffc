// Crash safety of uploads: the server is SIGKILLed in the middle of a large
// upload (and, best effort, right after its body was received), restarted
// on the same data dir, and must show only what it acknowledged, with no
// staging leftovers, no orphan objects, and every earlier file intact.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  binaryPath, startServer, request, newUserWithToken, dashboard, uploadFile, fileList, downloadLink,
  blobFiles, storedObjects, objectBytes, hasObject, stagingDir, sleep,
} from './harness.mjs';

const MiB = 1024 * 1024;
const BIG = 64 * MiB;
const secret = crypto.randomBytes(32).toString('hex');
const ENV = { PEERVAULT_JWT_SECRET: secret };

let server; // the server currently running on `dataDir`
let dataDir;
let work;
let user; // { token, ... } — the same secret across restarts keeps the token valid
/** Uploads acknowledged so far: [{ cid, bytes, name }] */
const acked = [];

before(async () => {
  server = await startServer(ENV, { keepDataDir: true });
  dataDir = server.dataDir;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-crash-'));
});
after(async () => {
  await server?.stop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const linkPath = (url) => { const u = new URL(url); return u.pathname + u.search; };

/** Largest staging file now (bytes), or -1 when there is none. */
function stagingSize() {
  const dir = stagingDir(dataDir);
  let max = -1;
  for (const f of fs.readdirSync(dir)) {
    try { max = Math.max(max, fs.statSync(path.join(dir, f)).size); } catch { /* removed meanwhile */ }
  }
  return max;
}

/**
 * Streams a one-file multipart upload of `data` over node:http in pieces,
 * pausing `delayMs` after each. Resolves `done` with { status, text } or { error }.
 */
function streamUpload(srv, token, data, { piece = 256 * 1024, delayMs = 0, filename = 'big.bin' } = {}) {
  const boundary = `----pvcrash${crypto.randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n`
    + 'Content-Type: application/octet-stream\r\n\r\n');
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const url = new URL('/upload_file', srv.base);
  const state = { sent: 0, bodySent: false, answered: false, failed: null };
  let req;
  const done = new Promise((resolve) => {
    req = http.request({
      method: 'POST',
      hostname: url.hostname,
      port: url.port,
      path: url.pathname,
      agent: false,
      headers: {
        authorization: token,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(head.length + data.length + tail.length),
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', (e) => { state.failed = e; resolve({ error: e }); });
      res.on('end', () => {
        state.answered = true;
        resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('error', (e) => { state.failed = e; resolve({ error: e }); });
  });
  const waitDrain = () => new Promise((resolve) => {
    const done = () => { req.off('drain', done); req.off('close', done); resolve(); };
    req.on('drain', done);
    req.on('close', done);
  });
  (async () => {
    if (!req.write(head)) await waitDrain();
    for (let off = 0; off < data.length; off += piece) {
      if (state.failed || req.destroyed) return;
      const ok = req.write(data.subarray(off, off + piece));
      state.sent = Math.min(data.length, off + piece);
      if (!ok) await waitDrain();
      if (delayMs) await sleep(delayMs); // real time: a slow upload is the subject
    }
    if (state.failed || req.destroyed) return;
    req.end(tail, () => { state.bodySent = true; });
  })();
  return { done, state };
}

/** SIGKILL the running server and wait until it is gone. */
async function kill() {
  server.proc.kill('SIGKILL');
  const exit = await server.waitForExit();
  assert.equal(exit.signal, 'SIGKILL');
}

async function restart() {
  server = await startServer(ENV, { dataDir, keepDataDir: true });
}

/** Downloads `cid` through a fresh link; returns the body. */
async function download(cid) {
  const url = await downloadLink(server, user.token, cid);
  const res = await request(server, 'GET', linkPath(url), { timeout: 120_000 });
  assert.equal(res.status, 200, `GET ${cid}: ${res.text.slice(0, 200)}`);
  return res.raw;
}

/** Every invariant of a consistent store, given the files acknowledged so far. */
async function assertConsistent() {
  const list = await fileList(server, user.token);
  assert.deepStrictEqual(list.map((f) => f.cid), acked.map((f) => f.cid), 'file list: exactly the acknowledged uploads, newest first');
  assert.deepStrictEqual(blobFiles(dataDir, 'staging'), [], 'staging is empty after the restart');
  const objects = await storedObjects(dataDir);
  const wanted = [...new Set(list.map((f) => f.cid))].map((cid) => path.join(cid.slice(-2), cid)).sort();
  assert.deepStrictEqual(objects, wanted, 'objects on disk: exactly the listed CIDs (no partial or orphan object)');
  for (const f of acked) {
    const body = await download(f.cid);
    assert.equal(body.length, f.bytes.length, `${f.name} length`);
    assert.equal(sha(body), sha(f.bytes), `${f.name} bytes`);
    assert.ok((await objectBytes(dataDir, f.cid)).equals(f.bytes), `${f.name} object on disk`);
  }
}

describe('crash safety of uploads (SIGKILL, restart on the same data dir)', () => {
  it('killed in the middle of a 64 MiB upload: only the earlier uploads exist afterwards', { timeout: 300_000 }, async () => {
    user = await newUserWithToken(server);
    for (const [name, size] of [['empty.txt', 0], ['one.bin', 1], ['small.txt', 4321], ['mib.bin', MiB + 1], ['three.bin', 3 * MiB + 7]]) {
      const bytes = crypto.randomBytes(size);
      const { cid } = await uploadFile(server, user.token, bytes, { filename: name });
      acked.unshift({ cid, bytes, name }); // newest first, like the list
    }
    const figures = await dashboard(server, user.token);
    const listBefore = await fileList(server, user.token);

    const data = crypto.randomBytes(BIG);
    const up = streamUpload(server, user.token, data, { piece: 256 * 1024, delayMs: 10 });
    const deadline = Date.now() + 120_000;
    while (stagingSize() < 8 * MiB) {
      assert.ok(!up.state.answered && !up.state.failed, `the upload ended before the kill: ${JSON.stringify(up.state)}`);
      assert.ok(Date.now() < deadline, `no staging file reached 8 MiB (largest: ${stagingSize()})`);
      await sleep(5); // real time: waiting for the server process to reach the crash point
    }
    await kill();
    const outcome = await up.done;
    assert.ok(outcome.error, `the client saw the connection fail, not an answer: ${JSON.stringify(outcome)}`);
    assert.ok(up.state.sent < BIG, 'killed before the whole body was sent');
    // the crash left a partial staging file behind (the sweep below is really tested)
    assert.ok(stagingSize() > 0, 'a staging file was left by the crash');

    await restart();
    assert.deepStrictEqual(await fileList(server, user.token), listBefore, 'file list unchanged by the crashed upload');
    assert.deepStrictEqual(await dashboard(server, user.token), figures, 'dashboard unchanged by the crashed upload');
    await assertConsistent();

    // a new upload works, and downloads byte-identical
    const fresh = crypto.randomBytes(5 * MiB + 3);
    const { cid } = await uploadFile(server, user.token, fresh, { filename: 'after-crash.bin' });
    acked.unshift({ cid, bytes: fresh, name: 'after-crash.bin' });
    await assertConsistent();
  });

  it('killed once the whole 64 MiB body has arrived, before (best effort) the answer: all or nothing', { timeout: 300_000 }, async (t) => {
    assert.ok(user, 'the first test ran');
    const data = crypto.randomBytes(BIG);
    const file = path.join(work, 'big.bin');
    fs.writeFileSync(file, data);
    const expected = JSON.parse(execFileSync(binaryPath(), ['cid', file], { encoding: 'utf8' }));
    assert.equal(expected.size, BIG);

    const up = streamUpload(server, user.token, data, { piece: MiB });
    const deadline = Date.now() + 120_000;
    while (stagingSize() < BIG && !up.state.answered && !up.state.failed) {
      assert.ok(Date.now() < deadline, `the upload did not complete (staging ${stagingSize()} bytes)`);
      await sleep(2); // real time: waiting for the server process to reach the crash point
    }
    const answeredBeforeKill = up.state.answered;
    await kill();
    const outcome = await up.done;
    t.diagnostic(answeredBeforeKill
      ? 'missed the window: the answer came before the kill'
      : `killed after the body arrived, before the answer (client saw ${outcome.error ? outcome.error.code ?? outcome.error.message : outcome.status})`);
    if (outcome.status !== undefined) {
      assert.equal(outcome.status, 200, `the answer before the kill: ${outcome.text}`);
      assert.deepStrictEqual(JSON.parse(outcome.text).web3, { cid: expected.cid, carCid: expected.carCid });
    }

    await restart();
    const list = await fileList(server, user.token);
    const listed = list.filter((f) => f.cid === expected.cid);
    if (outcome.status === 200) assert.equal(listed.length, 1, 'an acknowledged upload survives the crash');
    t.diagnostic(listed.length ? 'outcome: the file is there' : 'outcome: the file is absent');
    if (listed.length) {
      assert.equal(listed.length, 1);
      assert.equal(listed[0].size, BIG);
      assert.equal(listed[0].carCid, expected.carCid);
      assert.ok((await hasObject(dataDir, expected.cid)), 'its object exists');
      const body = await download(expected.cid);
      assert.equal(body.length, BIG);
      assert.equal(sha(body), sha(data), '64 MiB file downloads byte-identical');
      acked.unshift({ cid: expected.cid, bytes: data, name: 'big.bin' });
    } else {
      assert.ok(!(await hasObject(dataDir, expected.cid)), 'no object for an upload that is not listed');
    }
    await assertConsistent();

    // and the server still takes uploads
    const again = crypto.randomBytes(1000);
    const { cid } = await uploadFile(server, user.token, again, { filename: 'last.txt' });
    acked.unshift({ cid, bytes: again, name: 'last.txt' });
    await assertConsistent();
  });

  it('killed at several points between the arrival of the body and the answer: every time all or nothing', { timeout: 300_000 }, async (t) => {
    assert.ok(user, 'the first test ran');
    const SIZE = 16 * MiB;
    /** Uploads fresh random bytes; resolves once the staging file holds the whole body. */
    const begin = () => {
      const data = crypto.randomBytes(SIZE);
      const file = path.join(work, `sweep-${crypto.randomBytes(4).toString('hex')}.bin`);
      fs.writeFileSync(file, data);
      const expected = JSON.parse(execFileSync(binaryPath(), ['cid', file], { encoding: 'utf8' }));
      fs.rmSync(file);
      const up = streamUpload(server, user.token, data, { piece: MiB, filename: 'sweep.bin' });
      const arrived = (async () => {
        const deadline = Date.now() + 60_000;
        while (stagingSize() < SIZE && !up.state.answered && !up.state.failed) {
          assert.ok(Date.now() < deadline, 'the body did not arrive');
          await sleep(1); // real time: waiting for the server process to reach the crash point
        }
        return Date.now();
      })();
      return { data, expected, up, arrived };
    };
    // how long the server takes from the body's arrival to its answer
    const probe = begin();
    const t0 = await probe.arrived;
    const answer = await probe.up.done;
    assert.equal(answer.status, 200, JSON.stringify(answer));
    const span = Math.max(1, Date.now() - t0);
    acked.unshift({ cid: probe.expected.cid, bytes: probe.data, name: 'sweep.bin' });
    t.diagnostic(`answer ${span} ms after the body arrived`);

    for (const fraction of [0.3, 0.6, 0.8, 0.9, 0.95, 1.0, 1.05]) {
      const run = begin();
      await run.arrived;
      await sleep(Math.round(span * fraction)); // real time: the kill lands part-way through
      await kill();
      const outcome = await run.up.done;
      await restart();
      const listed = (await fileList(server, user.token)).filter((f) => f.cid === run.expected.cid);
      t.diagnostic(`kill at ${fraction} × ${span} ms: client saw ${outcome.status ?? outcome.error?.code}; file ${listed.length ? 'present' : 'absent'}`);
      if (outcome.status !== undefined) {
        assert.equal(outcome.status, 200, outcome.text);
        assert.equal(listed.length, 1, 'an acknowledged upload survives the crash');
      }
      if (listed.length) {
        assert.equal(listed.length, 1);
        acked.unshift({ cid: run.expected.cid, bytes: run.data, name: 'sweep.bin' });
      } else {
        assert.ok(!(await hasObject(dataDir, run.expected.cid)), 'no object for an upload that is not listed');
      }
      await assertConsistent();
    }
  });
});
