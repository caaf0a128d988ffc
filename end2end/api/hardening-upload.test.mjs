// Hardening of multipart uploads, on POST /upload_file (token) and the web
// page's server function POST /api/upload_my_file (cookie): an oversized
// text part, an oversized unknown part, an oversized part header and too
// many parts are refused with a 400 that names the problem, nothing is
// stored, and the server's memory stays bounded (its peak RSS, VmHWM, grows
// by less than 48 MiB while a 64 MiB part streams in). A multipart
// Content-Type without a boundary is refused without a panic.
//
// The 64 MiB bodies are streamed (harness.mjs → streamedRequest), so the
// test process never holds them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, post, assertJson, newUserWithToken, dashboard, multipart, fileList, storedObjects,
  serverFn, serverFnMultipart, webLogin, assertFnError, peakRss, resetPeakRss, streamedRequest,
} from './harness.mjs';

const MiB = 1024 * 1024;
const BIG = 64 * MiB;
const RSS_MARGIN = 48 * MiB;

let server;
let user; // { ...creds, token, cookie }
before(async () => {
  server = await startServer();
  user = await newUserWithToken(server);
});
after(async () => { await server?.stop(); });

/** The user's web session cookie, logged in on first use (so only the tests that need it depend on it). */
async function cookie() {
  user.cookie ??= await webLogin(server, user);
  return user.cookie;
}

/** Everything a refused upload must leave as it was. */
async function snapshot() {
  return {
    list: await fileList(server, user.token),
    spaceUsed: (await dashboard(server, user.token)).space_used,
    objects: await storedObjects(server.dataDir),
  };
}

const ENDPOINTS = [
  {
    label: 'POST /upload_file',
    path: '/upload_file',
    headers: async () => ({ authorization: user.token }),
    refused: (res, message) => assertJson(res, 400, { message }),
    send: (parts) => {
      const { body, contentType } = multipart(parts);
      return post(server, '/upload_file', { token: user.token, body, headers: { 'Content-Type': contentType } });
    },
    cidOf: (res) => assertJson(res, 200).web3?.cid,
  },
  {
    label: 'POST /api/upload_my_file',
    path: '/api/upload_my_file',
    headers: async () => ({ cookie: await cookie(), origin: server.base, accept: 'application/json' }),
    refused: (res, message) => assertFnError(res, 400, message),
    send: async (parts) => serverFnMultipart(server, 'upload_my_file', parts, { cookie: await cookie() }),
    cidOf: (res) => {
      assert.equal(res.status, 200, res.text.slice(0, 300));
      return res.json?.cid;
    },
  },
];

const boundary = () => `----pvhard${crypto.randomBytes(8).toString('hex')}`;
/** A complete small `file` part (its delimiter line included). */
const smallFilePart = (b) => `--${b}\r\nContent-Disposition: form-data; name="file"; filename="small.txt"\r\n`
  + `Content-Type: text/plain\r\n\r\nsmall file ${crypto.randomBytes(8).toString('hex')}\r\n`;

/**
 * Streams the body to `ep` and returns the answer and how much the server's
 * peak RSS grew meanwhile.
 */
async function streamed(ep, b, { head, tail }) {
  const headers = { ...await ep.headers(), 'content-type': `multipart/form-data; boundary=${b}` };
  resetPeakRss(server);
  const before = peakRss(server);
  const res = await streamedRequest(server, 'POST', ep.path, {
    headers,
    head, fill: 'a', fillBytes: BIG, tail, timeout: 120_000,
  });
  return { res, grew: peakRss(server) - before };
}

function assertBounded(grew, what) {
  assert.ok(grew < RSS_MARGIN, `${what}: the server's peak RSS grew by ${(grew / MiB).toFixed(1)} MiB (limit ${RSS_MARGIN / MiB} MiB)`);
}

for (const ep of ENDPOINTS) {
  describe(`${ep.label}: bounded multipart reading`, () => {
    it('a 64 MiB "name" part → 400 "The name field is too long", nothing stored, memory bounded', async () => {
      const before = await snapshot();
      const b = boundary();
      const { res, grew } = await streamed(ep, b, {
        head: `${smallFilePart(b)}--${b}\r\nContent-Disposition: form-data; name="name"\r\n\r\n`,
        tail: `\r\n--${b}--\r\n`,
      });
      ep.refused(res, 'The name field is too long');
      assertBounded(grew, 'a 64 MiB name part');
      assert.deepStrictEqual(await snapshot(), before);
    });

    it('a 64 MiB unknown part "junk" → 400 "The junk field is too long", nothing stored, memory bounded', async () => {
      const before = await snapshot();
      const b = boundary();
      const { res, grew } = await streamed(ep, b, {
        head: `${smallFilePart(b)}--${b}\r\nContent-Disposition: form-data; name="junk"\r\n\r\n`,
        tail: `\r\n--${b}--\r\n`,
      });
      ep.refused(res, 'The junk field is too long');
      assertBounded(grew, 'a 64 MiB unknown part');
      assert.deepStrictEqual(await snapshot(), before);
    });

    it('a part whose header line is 64 MiB long → 400 "Part headers too large", nothing stored, memory bounded', async () => {
      const before = await snapshot();
      const b = boundary();
      const { res, grew } = await streamed(ep, b, {
        head: `--${b}\r\nContent-Disposition: form-data; name="file"; filename="`,
        tail: `.bin"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--${b}--\r\n`,
      });
      ep.refused(res, 'Part headers too large');
      assertBounded(grew, 'a 64 MiB part header');
      assert.deepStrictEqual(await snapshot(), before);
    });

    it('100 small unknown parts next to a file → 400 "Too many fields in the upload", nothing stored', async () => {
      const before = await snapshot();
      const parts = [{ name: 'file', filename: 'many.txt', type: 'text/plain', data: crypto.randomBytes(500) }];
      for (let i = 0; i < 100; i += 1) parts.push({ name: `extra${i}`, data: `value ${i}` });
      ep.refused(await ep.send(parts), 'Too many fields in the upload');
      assert.deepStrictEqual(await snapshot(), before);
    });

    it('a small unknown part ("note") next to a valid file is ignored: 200, the file is stored', async () => {
      const data = crypto.randomBytes(1500);
      const res = await ep.send([{ name: 'note', data: 'hi' }, { name: 'file', filename: 'noted.bin', data }]);
      const cid = ep.cidOf(res);
      assert.match(String(cid), /^baf/, res.text.slice(0, 300));
      const listed = (await fileList(server, user.token)).find((f) => f.cid === cid);
      assert.ok(listed, `the uploaded file ${cid} is not listed`);
      assert.equal(listed.name, 'noted.bin');
      assert.equal(listed.size, data.length);
    });
  });
}

describe('POST /api/upload_my_file without a multipart boundary', () => {
  it('→ 415 or 400 with a JSON message, nothing stored, no panic', async () => {
    const before = await snapshot();
    const { body } = multipart([{ name: 'file', filename: 'a.txt', data: 'hello' }]);
    const res = await post(server, '/api/upload_my_file', {
      body, headers: { 'content-type': 'multipart/form-data', cookie: await cookie(), origin: server.base, accept: 'application/json' },
    });
    const ctx = `${res.status} ${res.text.slice(0, 300)}`;
    assert.ok(res.status === 415 || res.status === 400, ctx);
    assert.ok(res.json && typeof res.json.message === 'string' && res.json.message.length > 0, ctx);
    assert.deepStrictEqual(await snapshot(), before);
    assert.ok(!server.stderr().includes('panicked'), server.stderr().split('\n').filter((l) => l.includes('panicked')).join('\n'));
  });

  it('and the server still serves afterwards', async () => {
    const res = await serverFn(server, 'account_info', {}, { cookie: await cookie() });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.equal(res.json?.username, user.username);
  });
});
