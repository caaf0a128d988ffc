// Downloads read slowly or not at all (an outside review's finding): a
// download's body is read from the store on a thread of the blocking pool
// while its client reads, so ~520 GETs that read nothing used to take every
// thread (argon2 for logins, upload staging) and keep them for ever. Now a
// response its client reads nothing of for PEERVAULT_SEND_TIMEOUT_SECS is
// cut, and the downloads being read at once are limited per client address
// (429) and in all (503); HEAD takes none; a slow but steady reader is
// served to the end. Over real sockets from distinct loopback addresses,
// against the release build, on SQLite + local files and PostgreSQL + S3.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import {
  startServer, request, assertJson, newUserWithToken, registerUser, loginUser, uploadFile, uniqueIp, sleep,
} from './harness.mjs';

const MiB = 1024 * 1024;
// Far more than the socket buffers between a reader that stopped and the server.
const SIZE = 32 * MiB;
const SEND_TIMEOUT_SECS = 3;
const PER_CLIENT = { message: 'Too many downloads at once from this address: let one finish first' };
const ALL = { message: 'Too many downloads at once: try again in a moment' };
const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

let server;
let cid;
let bytes;
const sockets = [];

before(async () => {
  server = await startServer({
    PEERVAULT_SEND_TIMEOUT_SECS: SEND_TIMEOUT_SECS, PEERVAULT_DOWNLOADS_MAX: 5, PEERVAULT_DOWNLOADS_PER_CLIENT: 3,
  });
  const owner = await newUserWithToken(server);
  bytes = crypto.randomBytes(SIZE);
  ({ cid } = await uploadFile(server, owner.token, bytes, { filename: 'big.bin' }));
  const shared = await request(server, 'POST', '/share_file', { token: owner.token, json: { cid, public: true } });
  assert.equal(shared.status, 200, shared.text);
});

after(async () => {
  for (const s of sockets) s.destroy();
  await server?.stop();
});

/**
 * A GET of the shared file from `localAddress` over a raw socket: resolves
 * with the socket, the answer's status and the bytes read so far once the
 * answer began; with `stall`, the socket then reads nothing more.
 */
function open(localAddress, { stall = true } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: server.port, localAddress });
    sockets.push(socket);
    let begun = false;
    socket.on('error', (e) => { if (!begun) reject(e); });
    socket.write(`GET /ipfs/${cid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    socket.once('data', (chunk) => {
      begun = true;
      if (stall) socket.pause();
      resolve({ socket, status: Number(chunk.toString('latin1').split(' ')[1]), first: chunk });
    });
  });
}

/** Reads the rest of `socket` until the server closes it; the bytes of its body read in all. */
function drain({ socket, first }) {
  return new Promise((resolve) => {
    const chunks = [first];
    socket.on('data', (c) => chunks.push(c));
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      resolve(all.subarray(all.indexOf('\r\n\r\n') + 4));
    });
    socket.on('error', () => {});
    socket.resume();
  });
}

describe('downloads nobody reads', () => {
  const a = uniqueIp();
  const b = uniqueIp();
  let fromA = [];
  let fromB = [];

  it('one address holds at most 3 at once (429 past them), every address together at most 5 (503 past them); HEAD takes none; logins go on', async () => {
    fromA = await Promise.all([open(a), open(a), open(a)]);
    assert.deepEqual(fromA.map((d) => d.status), [200, 200, 200]);
    assertJson(await request(server, 'GET', `/ipfs/${cid}`, { localAddress: a }), 429, PER_CLIENT);
    const head = await request(server, 'HEAD', `/ipfs/${cid}`, { localAddress: a });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(SIZE));
    fromB = await Promise.all([open(b), open(b)]);
    assert.deepEqual(fromB.map((d) => d.status), [200, 200]);
    assertJson(await request(server, 'GET', `/ipfs/${cid}`, { localAddress: uniqueIp() }), 503, ALL);
    // what needs the blocking pool besides downloads still has it
    const user = await registerUser(server);
    assert.equal(typeof await loginUser(server, user, { localAddress: uniqueIp() }), 'string');
  });

  it(`each is cut once its client has read nothing for ${SEND_TIMEOUT_SECS} s, and its slots are given back`, async () => {
    assert.equal(fromA.length, 3, 'the downloads of the test above');
    // Within a bounded wait the server cuts them: A can download again.
    let again;
    for (let i = 0; i < 80; i += 1) {
      again = await request(server, 'GET', `/ipfs/${cid}`, { localAddress: a, timeout: 60_000 });
      if (again.status !== 429) break;
      await sleep(250);
    }
    assert.equal(again.status, 200, again.text.slice(0, 200));
    assert.equal(sha(again.raw), sha(bytes));
    // The stalled ones were closed by the server before their end.
    for (const d of [...fromA, ...fromB]) {
      const body = await drain(d);
      assert.ok(body.length < SIZE, `a stalled download was cut (it had ${body.length} of ${SIZE} bytes)`);
    }
    assert.equal((await request(server, 'GET', `/ipfs/${cid}`, { localAddress: uniqueIp(), timeout: 60_000 })).status, 200);
  });
});

describe('a slow but steady reader', () => {
  it(`reading 4 MiB at a time, ${SEND_TIMEOUT_SECS / 6} s apart, is served to the end`, { timeout: 120_000 }, async () => {
    const d = await open(uniqueIp());
    assert.equal(d.status, 200);
    const headLength = d.first.indexOf('\r\n\r\n') + 4;
    const chunks = [d.first];
    let received = d.first.length - headLength;
    let burst = 0;
    let rounds = 0;
    let resting = false;
    const done = new Promise((resolve) => {
      d.socket.on('data', (c) => {
        chunks.push(c);
        received += c.length;
        burst += c.length;
        if (received >= SIZE) {
          resolve();
        } else if (burst >= 4 * MiB && !resting) {
          // a pause longer than a sixth of the send timeout, shorter than it
          resting = true;
          d.socket.pause();
          rounds += 1;
          setTimeout(() => { burst = 0; resting = false; d.socket.resume(); }, (SEND_TIMEOUT_SECS * 1000) / 6);
        }
      });
    });
    d.socket.resume();
    await done;
    const closed = new Promise((resolve) => { d.socket.on('close', resolve); });
    d.socket.end();
    await closed;
    assert.ok(rounds >= 6, `the reader paused ${rounds} times`);
    const all = Buffer.concat(chunks).subarray(headLength);
    assert.equal(all.length, SIZE);
    assert.equal(sha(all), sha(bytes));
  });
});
