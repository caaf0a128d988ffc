// Resumable uploads (issue 13): the tus 1.0.0 protocol at /uploads, each
// extension (creation, creation-with-upload, creation-defer-length,
// termination, expiration, checksum) over HTTP against the release build,
// every error case with its status, its JSON message and a check that it
// changed nothing. The stored file (cid, carCid, name, type, size, bytes)
// is the one POST /upload_file stores for the same bytes, and the CIDs are
// ipfs-car's. Runs on SQLite + local files and on PostgreSQL + S3.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import {
  startServer, request, assertJson, newUserWithToken, uploadFile, fileList, downloadLink, advanceClock, TEST_CLOCK, sleep,
  webLogin, serverFn, ipfsCarCids, storedObjects, objectBytes, onS3, onPostgres, unfinishedMultipartUploads,
} from './harness.mjs';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const MiB = 1024 * 1024;
const TUS = { 'tus-resumable': '1.0.0' };
const OCTETS = { ...TUS, 'content-type': 'application/offset+octet-stream' };
const NOT_FOUND = { message: 'Upload not found' };
const b64 = (s) => Buffer.from(s).toString('base64');
const meta = (name, type) => `filename ${b64(name)}${type ? `,filetype ${b64(type)}` : ''}`;

let server;
let small; // quota 3 MiB, files at most 2 MiB, uploads expire in an hour, a movable clock
let alice;
let bob;

before(async () => {
  [server, small] = await Promise.all([
    startServer(),
    startServer({
      ...TEST_CLOCK, PEERVAULT_USER_QUOTA_BYTES: 3 * MiB, PEERVAULT_MAX_FILE_BYTES: 2 * MiB, PEERVAULT_UPLOAD_EXPIRY_SECS: 3600,
    }),
  ]);
  alice = await newUserWithToken(server);
  bob = await newUserWithToken(server);
});

after(async () => {
  await Promise.all([server?.stop(), small?.stop()]);
});


const create = (srv, token, headers = {}, body) => request(srv, 'POST', '/uploads', { token, headers: { ...TUS, ...headers }, body });
const head = (srv, token, loc, headers = TUS) => request(srv, 'HEAD', loc, { token, headers });
const patch = (srv, token, loc, offset, body, headers = {}) => request(srv, 'PATCH', loc, {
  token, body, headers: { ...OCTETS, 'upload-offset': String(offset), ...headers },
});

/** Creates an upload of `length` bytes named `name`; returns its location. */
async function created(srv, token, length, name = 'f.bin', type) {
  const res = await create(srv, token, { 'upload-length': String(length), 'upload-metadata': meta(name, type) });
  assert.equal(res.status, 201, res.text);
  assert.match(res.headers.location, /^\/uploads\/[0-9a-f]{32}$/);
  return res.headers.location;
}

/** HEAD's offset, asserting 200. */
async function offsetOf(srv, token, loc) {
  const res = await head(srv, token, loc);
  assert.equal(res.status, 200, `HEAD ${loc}: ${res.status}`);
  return Number(res.headers['upload-offset']);
}

/** Asserts an error answer: status, exact JSON message, the tus header. */
function refused(res, status, message) {
  assertJson(res, status, { message });
  assert.equal(res.headers['tus-resumable'], '1.0.0');
}

describe('discovery and the protocol version', () => {
  it('OPTIONS says the version, the extensions, the size limit and the checksums, without a token', async () => {
    for (const p of ['/uploads', '/uploads/0123456789abcdef0123456789abcdef']) {
      const res = await request(server, 'OPTIONS', p);
      assert.equal(res.status, 204);
      assert.equal(res.headers['tus-version'], '1.0.0');
      assert.equal(res.headers['tus-resumable'], '1.0.0');
      assert.deepEqual(res.headers['tus-extension'].split(',').sort(),
        ['checksum', 'creation', 'creation-defer-length', 'creation-with-upload', 'expiration', 'termination']);
      assert.equal(res.headers['tus-checksum-algorithm'], 'sha1,sha256');
      assert.match(res.headers['tus-max-size'], /^\d+$/);
    }
    assert.equal((await request(small, 'OPTIONS', '/uploads')).headers['tus-max-size'], String(2 * MiB));
  });

  it('a request without Tus-Resumable: 1.0.0 is refused with 412 and the version spoken, and creates nothing', async () => {
    const loc = await created(server, alice.token, 10);
    for (const version of [undefined, '0.2.2', '1.0']) {
      const headers = version ? { 'tus-resumable': version } : {};
      const res = await request(server, 'POST', '/uploads', { token: alice.token, headers: { ...headers, 'upload-length': '5', 'upload-metadata': meta('x') } });
      refused(res, 412, 'Tus-Resumable: 1.0.0 is required');
      assert.equal(res.headers['tus-version'], '1.0.0');
      const p = await request(server, 'PATCH', loc, { token: alice.token, body: 'hello', headers: { ...headers, 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' } });
      refused(p, 412, 'Tus-Resumable: 1.0.0 is required');
    }
    assert.equal(await offsetOf(server, alice.token, loc), 0);
  });

  it('no token, a forged token: 401, nothing created', async () => {
    const before = await fileList(server, alice.token);
    refused(await create(server, undefined, { 'upload-length': '5', 'upload-metadata': meta('x') }), 401, 'Token is missing');
    const forged = `${alice.token.slice(0, -3)}abc`;
    assert.equal((await create(server, forged, { 'upload-length': '5', 'upload-metadata': meta('x') })).status, 401);
    assert.deepEqual(await fileList(server, alice.token), before);
  });
});

describe('creation', () => {
  it('201 with a Location, an expiry a day ahead; HEAD gives offset, length and metadata back, not cached', async () => {
    const res = await create(server, alice.token, { 'upload-length': '12', 'upload-metadata': `${meta('a.txt', 'text/plain')},note` });
    assert.equal(res.status, 201, res.text);
    const expires = Date.parse(res.headers['upload-expires']);
    assert.ok(Math.abs(expires - (Date.now() + 86_400_000)) < 60_000, res.headers['upload-expires']);
    const h = await head(server, alice.token, res.headers.location);
    assert.equal(h.status, 200);
    assert.equal(h.headers['upload-offset'], '0');
    assert.equal(h.headers['upload-length'], '12');
    assert.equal(h.headers['upload-metadata'], `${meta('a.txt', 'text/plain')},note`);
    assert.equal(h.headers['cache-control'], 'no-store');
    assert.equal(h.headers['tus-resumable'], '1.0.0');
    assert.equal(h.raw.length, 0);
  });

  it('bad creations are refused with 400 and create nothing', async () => {
    const cases = [
      [{ 'upload-metadata': meta('x') }, 'Send either Upload-Length or Upload-Defer-Length: 1'],
      [{ 'upload-length': '5', 'upload-defer-length': '1', 'upload-metadata': meta('x') }, 'Send either Upload-Length or Upload-Defer-Length: 1'],
      [{ 'upload-length': '-1', 'upload-metadata': meta('x') }, 'upload-length must be a non-negative integer'],
      [{ 'upload-length': '1e3', 'upload-metadata': meta('x') }, 'upload-length must be a non-negative integer'],
      [{ 'upload-length': '99999999999999999999', 'upload-metadata': meta('x') }, 'upload-length must be a non-negative integer'],
      [{ 'upload-defer-length': '2', 'upload-metadata': meta('x') }, 'Upload-Defer-Length must be 1'],
      [{ 'upload-length': '5', 'upload-metadata': 'filename !!notbase64' }, 'Upload-Metadata must be comma-separated keys, each with an optional base64 value'],
      [{ 'upload-length': '5', 'upload-metadata': `${meta('x')},filename ${b64('y')}` }, 'Upload-Metadata must be comma-separated keys, each with an optional base64 value'],
      [{ 'upload-length': '5', 'upload-metadata': `k ${'A'.repeat(5000)}` }, 'Upload-Metadata is too long'],
      [{ 'upload-length': '5' }, 'Upload-Metadata must name the file (filename)'],
      [{ 'upload-length': '5', 'upload-metadata': `filename ${b64('/')}` }, 'Upload-Metadata must name the file (filename)'],
    ];
    const before = await fileList(server, alice.token);
    for (const [headers, message] of cases) {
      const res = await create(server, alice.token, headers);
      refused(res, 400, message);
      assert.equal(res.headers.location, undefined);
    }
    assert.deepEqual(await fileList(server, alice.token), before);
  });

  it('past the size limit: 413 "File too large"; past the quota: 413 "Storage quota exceeded"', async () => {
    const carol = await newUserWithToken(small);
    refused(await create(small, carol.token, { 'upload-length': String(2 * MiB + 1), 'upload-metadata': meta('x') }), 413, 'File too large');
    await uploadFile(small, carol.token, crypto.randomBytes(2 * MiB));
    refused(await create(small, carol.token, { 'upload-length': String(MiB + 1), 'upload-metadata': meta('x') }), 413, 'Storage quota exceeded');
    assert.equal((await create(small, carol.token, { 'upload-length': String(MiB), 'upload-metadata': meta('x') })).status, 201);
  });

  it('a file type that is not a media type is not stored: the type is guessed from the name', async () => {
    for (const type of ['text/html\r\nSet-Cookie: a=b', 'not a type', '<script>/x']) {
      const name = `typed-${crypto.randomBytes(3).toString('hex')}.txt`;
      const res = await create(server, alice.token, { 'upload-length': '2', 'upload-metadata': meta(name, type) });
      assert.equal(res.status, 201, res.text);
      assert.equal((await patch(server, alice.token, res.headers.location, 0, 'hi')).status, 204);
      const row = (await fileList(server, alice.token)).find((f) => f.name === name);
      assert.equal(row.type, 'text/plain', type);
    }
  });

  it('an upload of 0 bytes is stored as it is created', async () => {
    const res = await create(server, alice.token, { 'upload-length': '0', 'upload-metadata': meta('empty.txt') });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.headers['upload-offset'], '0');
    const ref = ipfsCarCids(Buffer.alloc(0));
    assert.equal(res.headers['peervault-cid'], ref.cid);
    assert.equal(res.headers['peervault-car-cid'], ref.carCid);
    const h = await head(server, alice.token, res.headers.location);
    assert.equal(h.headers['upload-offset'], '0');
    assert.equal(h.headers['peervault-cid'], ref.cid);
  });
});

describe('core: PATCH', () => {
  it('PATCHes of any size, split anywhere, make the file POST /upload_file makes of the same bytes (ipfs-car\'s CIDs)', async () => {
    for (const size of [1, MiB - 1, MiB, MiB + 1, 3 * MiB + 12345]) {
      const bytes = crypto.randomBytes(size);
      const loc = await created(server, alice.token, size, `tus-${size}.bin`, 'application/x-test');
      let offset = 0;
      let last;
      // uneven pieces: a leaf split across PATCHes, several leaves in one
      for (const piece of [700_000, 1, 1_500_000, 5, Infinity]) {
        if (offset >= size) break;
        const end = Math.min(size, offset + piece);
        last = await patch(server, alice.token, loc, offset, bytes.subarray(offset, end));
        assert.equal(last.status, 204, last.text);
        assert.equal(last.headers['upload-offset'], String(end));
        assert.ok(last.headers['upload-expires']);
        offset = end;
      }
      const ref = ipfsCarCids(bytes);
      assert.equal(last.headers['peervault-cid'], ref.cid, `cid of ${size} bytes`);
      assert.equal(last.headers['peervault-car-cid'], ref.carCid, `carCid of ${size} bytes`);
      const plain = await uploadFile(server, bob.token, bytes, { filename: `tus-${size}.bin`, type: 'application/x-test' });
      assert.deepEqual(plain, { cid: ref.cid, carCid: ref.carCid });
      const row = (await fileList(server, alice.token)).find((f) => f.cid === ref.cid);
      const plainRow = (await fileList(server, bob.token)).find((f) => f.cid === ref.cid);
      for (const key of ['name', 'type', 'size', 'cid', 'carCid']) assert.equal(row[key], plainRow[key], key);
      const url = new URL(await downloadLink(server, alice.token, ref.cid));
      const got = await request(server, 'GET', url.pathname + url.search, { timeout: 60_000 });
      assert.ok(got.raw.equals(bytes), 'the bytes');
      // HEAD after the end: complete, with its CID
      const h = await head(server, alice.token, loc);
      assert.equal(h.headers['upload-offset'], String(size));
      assert.equal(h.headers['peervault-cid'], ref.cid);
    }
  });

  it('many MiB in uneven PATCHes: leaves too few for an S3 part wait as part objects, then go into the multipart object; the file is ipfs-car\'s and nothing of the upload is left', async () => {
    const bytes = crypto.randomBytes(23 * MiB + 12345);
    const open = await unfinishedMultipartUploads(server.dataDir);
    const loc = await created(server, alice.token, bytes.length, 'many.bin');
    const id = loc.split('/').pop();
    const partObjects = async () => (await storedObjects(server.dataDir)).filter((k) => path.basename(k).startsWith(`tus${id}`));
    let offset = 0;
    let last;
    // 2 + 2 leaves wait as part objects (under S3's 5 MiB); + 3 make a part
    // of 7; 9 leaves are a part of their own; 1 more leaf waits; the end
    // (with a tail of 12345 bytes) goes in as the last part.
    const pieces = [2 * MiB, 2 * MiB + 100, 3 * MiB - 100, 9 * MiB, MiB + 5, Infinity];
    const waiting = [1, 2, 0, 0, 1, 0];
    for (const [i, piece] of pieces.entries()) {
      const end = Math.min(bytes.length, offset + piece);
      last = await patch(server, alice.token, loc, offset, bytes.subarray(offset, end));
      assert.equal(last.status, 204, last.text);
      offset = end;
      if (i < pieces.length - 1) {
        // Locally the leaves go straight into the upload's multipart object.
        assert.equal((await partObjects()).length, onS3 ? waiting[i] : 0, `part objects after PATCH ${i + 1}`);
      }
    }
    const ref = ipfsCarCids(bytes);
    assert.equal(last.headers['peervault-cid'], ref.cid);
    assert.equal(last.headers['peervault-car-cid'], ref.carCid);
    assert.deepEqual(await partObjects(), [], 'no part object, no multipart object left');
    assert.ok((await objectBytes(server.dataDir, ref.cid)).equals(bytes), 'the stored object');
    const url = new URL(await downloadLink(server, alice.token, ref.cid));
    const got = await request(server, 'GET', url.pathname + url.search, { timeout: 60_000 });
    assert.ok(got.raw.equals(bytes), 'the bytes downloaded');
    assert.deepEqual(await unfinishedMultipartUploads(server.dataDir), open, 'no multipart object left open');
  });

  it('DELETE of an upload with parts sent: its multipart object and part objects are gone', async () => {
    const bytes = crypto.randomBytes(9 * MiB);
    const open = await unfinishedMultipartUploads(server.dataDir);
    const loc = await created(server, alice.token, bytes.length, 'deleted.bin');
    const id = loc.split('/').pop();
    assert.equal((await patch(server, alice.token, loc, 0, bytes.subarray(0, 6 * MiB))).status, 204);
    assert.equal((await patch(server, alice.token, loc, 6 * MiB, bytes.subarray(6 * MiB, 8 * MiB))).status, 204);
    assert.equal((await unfinishedMultipartUploads(server.dataDir)).filter((u) => !open.includes(u)).length, 1, 'the parts are held');
    assert.equal((await request(server, 'DELETE', loc, { token: alice.token, headers: TUS })).status, 204);
    assert.deepEqual((await storedObjects(server.dataDir)).filter((k) => path.basename(k).startsWith(`tus${id}`)), []);
    assert.deepEqual(await unfinishedMultipartUploads(server.dataDir), open, 'the multipart object is aborted');
  });

  it('bad PATCHes are refused and change nothing: wrong offset (409), content type (415), no offset (400), past the length (413)', async () => {
    const loc = await created(server, alice.token, 10);
    assert.equal((await patch(server, alice.token, loc, 0, 'abcd')).status, 204);
    refused(await patch(server, alice.token, loc, 0, 'efgh'), 409, 'Upload-Offset does not match the upload\'s offset');
    refused(await patch(server, alice.token, loc, 5, 'efgh'), 409, 'Upload-Offset does not match the upload\'s offset');
    refused(await patch(server, alice.token, loc, 4, 'efgh', { 'content-type': 'application/octet-stream' }), 415, 'Content-Type must be application/offset+octet-stream');
    refused(await request(server, 'PATCH', loc, { token: alice.token, body: 'efgh', headers: OCTETS }), 400, 'Upload-Offset is required');
    refused(await patch(server, alice.token, loc, 'x4', 'efgh'), 400, 'upload-offset must be a non-negative integer');
    refused(await patch(server, alice.token, loc, 4, 'efghijklmnop'), 413, 'The body goes past Upload-Length');
    refused(await patch(server, alice.token, loc, 4, 'efgh', { 'upload-length': '11' }), 400, 'Upload-Length cannot change');
    assert.equal(await offsetOf(server, alice.token, loc), 4);
    refused(await patch(server, alice.token, '/uploads/0123456789abcdef0123456789abcdef', 0, 'x'), 404, NOT_FOUND.message);
    refused(await patch(server, alice.token, '/uploads/not-an-id', 0, 'x'), 404, NOT_FOUND.message);
    const done = await patch(server, alice.token, loc, 4, 'efghij');
    assert.equal(done.status, 204);
    assert.ok(done.headers['peervault-cid']);
  });

  it('a link dropped mid-PATCH keeps what arrived; the upload resumes from the offset HEAD gives', async () => {
    const bytes = crypto.randomBytes(3 * MiB);
    const loc = await created(server, alice.token, bytes.length, 'dropped.bin');
    // announce the whole body, send 1.5 MiB, then drop the connection
    await new Promise((resolve) => {
      const url = new URL(loc, server.base);
      const req = http.request({
        method: 'PATCH', hostname: url.hostname, port: url.port, path: url.pathname,
        headers: { ...OCTETS, authorization: alice.token, 'upload-offset': '0', 'content-length': bytes.length },
      });
      req.on('error', () => {});
      req.write(bytes.subarray(0, 1.5 * MiB), () => setTimeout(() => { req.destroy(); resolve(); }, 300));
    });
    let offset = 0;
    for (let i = 0; i < 100 && offset === 0; i += 1) {
      await sleep(100); // the server notices the drop on its own
      offset = await offsetOf(server, alice.token, loc);
    }
    assert.equal(offset, 1.5 * MiB, 'every byte that arrived is kept');
    const res = await patch(server, alice.token, loc, offset, bytes.subarray(offset));
    assert.equal(res.status, 204);
    assert.equal(res.headers['peervault-cid'], ipfsCarCids(bytes).cid);
  });
});

describe('X-HTTP-Method-Override', () => {
  it('a POST naming PATCH, HEAD or DELETE is taken as that method; another name is 400 and changes nothing', async () => {
    const bytes = crypto.randomBytes(MiB + 10);
    const loc = await created(server, alice.token, bytes.length, 'override.bin');
    const post = (method, body, headers = {}) => request(server, 'POST', loc, {
      token: alice.token, body, headers: { ...TUS, 'x-http-method-override': method, ...headers },
    });
    const first = await post('PATCH', bytes.subarray(0, MiB), { 'content-type': OCTETS['content-type'], 'upload-offset': '0' });
    assert.equal(first.status, 204, first.text);
    assert.equal(first.headers['upload-offset'], String(MiB));
    const h = await post('HEAD');
    assert.equal(h.status, 200);
    assert.equal(h.headers['upload-offset'], String(MiB));
    assert.equal(h.text, '');
    for (const bad of ['GET', 'PUT', 'POST', 'OPTIONS', '']) {
      refused(await post(bad, 'x', { 'content-type': OCTETS['content-type'], 'upload-offset': String(MiB) }), 400,
        'X-HTTP-Method-Override must be PATCH, DELETE or HEAD');
    }
    // without Tus-Resumable the override changes nothing: 412
    const old = await request(server, 'POST', loc, { token: alice.token, headers: { 'x-http-method-override': 'DELETE' } });
    assert.equal(old.status, 412);
    assert.equal(await offsetOf(server, alice.token, loc), MiB);
    // another account's upload stays out of reach through an override too
    refused(await request(server, 'POST', loc, { token: bob.token, headers: { ...TUS, 'x-http-method-override': 'DELETE' } }), 404, NOT_FOUND.message);
    const last = await post('PATCH', bytes.subarray(MiB), { 'content-type': OCTETS['content-type'], 'upload-offset': String(MiB) });
    assert.equal(last.status, 204, last.text);
    assert.equal(last.headers['peervault-cid'], ipfsCarCids(bytes).cid);
    const gone = await created(server, alice.token, 5, 'gone.bin');
    assert.equal((await request(server, 'POST', gone, { token: alice.token, headers: { ...TUS, 'x-http-method-override': 'delete' } })).status, 204);
    assert.equal((await head(server, alice.token, gone)).status, 404);
  });
});

describe('creation-with-upload and creation-defer-length', () => {
  it('POST with the first bytes: 201 with their offset', async () => {
    const bytes = crypto.randomBytes(MiB + 300);
    const res = await create(server, alice.token, {
      'upload-length': String(bytes.length), 'upload-metadata': meta('cwu.bin'), 'content-type': 'application/offset+octet-stream',
    }, bytes.subarray(0, 1000));
    assert.equal(res.status, 201, res.text);
    assert.equal(res.headers['upload-offset'], '1000');
    const end = await patch(server, alice.token, res.headers.location, 1000, bytes.subarray(1000));
    assert.equal(end.headers['peervault-cid'], ipfsCarCids(bytes).cid);
  });

  it('a deferred length: HEAD says Upload-Defer-Length: 1 until a PATCH sets it; a smaller length than received is refused', async () => {
    const bytes = crypto.randomBytes(2 * MiB + 7);
    const res = await create(server, alice.token, { 'upload-defer-length': '1', 'upload-metadata': meta('deferred.bin') });
    assert.equal(res.status, 201);
    const loc = res.headers.location;
    assert.equal((await patch(server, alice.token, loc, 0, bytes.subarray(0, MiB + 3))).status, 204);
    const h = await head(server, alice.token, loc);
    assert.equal(h.headers['upload-defer-length'], '1');
    assert.equal(h.headers['upload-length'], undefined);
    refused(await patch(server, alice.token, loc, MiB + 3, Buffer.alloc(0), { 'upload-length': String(MiB) }), 400, 'Upload-Length is less than the bytes received');
    refused(await patch(server, alice.token, loc, MiB + 3, Buffer.alloc(0), { 'upload-length': 'many' }), 400, 'upload-length must be a non-negative integer');
    const end = await patch(server, alice.token, loc, MiB + 3, bytes.subarray(MiB + 3), { 'upload-length': String(bytes.length) });
    assert.equal(end.status, 204, end.text);
    assert.equal(end.headers['peervault-cid'], ipfsCarCids(bytes).cid);
    assert.equal((await head(server, alice.token, loc)).headers['upload-length'], String(bytes.length));
  });
});

describe('checksum', () => {
  it('a PATCH whose bytes match its sha1 or sha256 is taken; a mismatch is 460 and keeps nothing of it', async () => {
    const bytes = crypto.randomBytes(MiB + 10);
    const loc = await created(server, alice.token, bytes.length, 'sum.bin');
    const digest = (alg, b) => crypto.createHash(alg).update(b).digest('base64');
    const first = bytes.subarray(0, 600_000);
    refused(await patch(server, alice.token, loc, 0, first, { 'upload-checksum': `sha256 ${digest('sha256', Buffer.from('other'))}` }), 460, 'Checksum mismatch');
    refused(await patch(server, alice.token, loc, 0, first, { 'upload-checksum': `sha1 ${digest('sha1', first.subarray(1))}` }), 460, 'Checksum mismatch');
    assert.equal(await offsetOf(server, alice.token, loc), 0);
    refused(await patch(server, alice.token, loc, 0, first, { 'upload-checksum': `md5 ${digest('md5', first)}` }), 400, 'Unsupported checksum algorithm: sha1 and sha256 are');
    refused(await patch(server, alice.token, loc, 0, first, { 'upload-checksum': 'sha256 !!' }), 400, 'Upload-Checksum must be an algorithm (sha1 or sha256) and a base64 digest');
    refused(await patch(server, alice.token, loc, 0, first, { 'upload-checksum': `sha256 ${digest('sha1', first)}` }), 400, 'Upload-Checksum must be an algorithm (sha1 or sha256) and a base64 digest');
    assert.equal(await offsetOf(server, alice.token, loc), 0);
    assert.equal((await patch(server, alice.token, loc, 0, first, { 'upload-checksum': `sha1 ${digest('sha1', first)}` })).status, 204);
    const rest = bytes.subarray(600_000);
    const end = await patch(server, alice.token, loc, 600_000, rest, { 'upload-checksum': `sha256 ${digest('sha256', rest)}` });
    assert.equal(end.status, 204);
    assert.equal(end.headers['peervault-cid'], ipfsCarCids(bytes).cid);
  });
});

describe('termination and other accounts', () => {
  it('another account can neither see, resume nor delete an upload: 404, and it is unchanged', async () => {
    const loc = await created(server, alice.token, 100);
    assert.equal((await patch(server, alice.token, loc, 0, 'x'.repeat(10))).status, 204);
    assert.equal((await head(server, bob.token, loc)).status, 404); // (HEAD: no body)
    refused(await patch(server, bob.token, loc, 10, 'y'.repeat(10)), 404, NOT_FOUND.message);
    refused(await request(server, 'DELETE', loc, { token: bob.token, headers: TUS }), 404, NOT_FOUND.message);
    assert.equal(await offsetOf(server, alice.token, loc), 10);
  });

  it('DELETE ends an upload: 204, then 404 for HEAD, PATCH and DELETE', async () => {
    const loc = await created(server, alice.token, 3 * MiB);
    assert.equal((await patch(server, alice.token, loc, 0, crypto.randomBytes(2 * MiB))).status, 204);
    const res = await request(server, 'DELETE', loc, { token: alice.token, headers: TUS });
    assert.equal(res.status, 204);
    assert.equal(res.headers['tus-resumable'], '1.0.0');
    assert.equal((await head(server, alice.token, loc)).status, 404);
    refused(await patch(server, alice.token, loc, 2 * MiB, 'x'), 404, NOT_FOUND.message);
    refused(await request(server, 'DELETE', loc, { token: alice.token, headers: TUS }), 404, NOT_FOUND.message);
  });
});

describe('an account deleted with unfinished uploads', () => {
  it('takes what they received with it: part objects and multipart objects', async () => {
    const carol = await newUserWithToken(server);
    const open = await unfinishedMultipartUploads(server.dataDir);
    const bytes = crypto.randomBytes(12 * MiB);
    const big = await created(server, carol.token, bytes.length, 'big.bin');
    assert.equal((await patch(server, carol.token, big, 0, bytes.subarray(0, 7 * MiB))).status, 204);
    const small = await created(server, carol.token, bytes.length, 'small.bin');
    assert.equal((await patch(server, carol.token, small, 0, bytes.subarray(0, 2 * MiB))).status, 204);
    const ids = [big, small].map((loc) => loc.split('/').pop());
    const ofCarol = async () => (await storedObjects(server.dataDir)).filter((k) => ids.some((id) => path.basename(k).startsWith(`tus${id}`)));
    assert.ok((await unfinishedMultipartUploads(server.dataDir)).length > open.length, 'a multipart object is held');
    const cookie = await webLogin(server, carol);
    const del = await serverFn(server, 'delete_account', { confirm: carol.username }, { cookie });
    assert.equal(del.status, 200, del.text.slice(0, 300));
    assert.deepEqual(await ofCarol(), []);
    assert.deepEqual(await unfinishedMultipartUploads(server.dataDir), open);
    assert.equal((await head(server, alice.token, big)).status, 404);
  });
});

describe('expiration and limits across resumes', () => {
  it('an upload not finished in time (UPLOAD_EXPIRY_SECS) expires: 410 for HEAD and PATCH, and its room is free again', async () => {
    const dave = await newUserWithToken(small);
    const loc = await created(small, dave.token, 2 * MiB);
    assert.equal((await patch(small, dave.token, loc, 0, crypto.randomBytes(MiB + 5))).status, 204);
    refused(await create(small, dave.token, { 'upload-length': String(2 * MiB), 'upload-metadata': meta('x') }), 413, 'Storage quota exceeded');
    await advanceClock(small, 3_600_000 + 1000);
    assert.equal((await head(small, dave.token, loc)).status, 410);
    refused(await patch(small, dave.token, loc, MiB + 5, 'x'), 410, 'Upload expired');
    assert.equal((await create(small, dave.token, { 'upload-length': String(2 * MiB), 'upload-metadata': meta('x') })).status, 201);
  });

  it('a deferred upload cannot pass the quota by being split: 413 and the offset stays', async () => {
    const erin = await newUserWithToken(small);
    const a = await created(small, erin.token, 2 * MiB);
    const res = await create(small, erin.token, { 'upload-defer-length': '1', 'upload-metadata': meta('d.bin') });
    const b = res.headers.location;
    assert.equal((await patch(small, erin.token, b, 0, crypto.randomBytes(MiB - 10))).status, 204);
    refused(await patch(small, erin.token, b, MiB - 10, crypto.randomBytes(20)), 413, 'Storage quota exceeded');
    assert.equal(await offsetOf(small, erin.token, b), MiB - 10);
    assert.equal(await offsetOf(small, erin.token, a), 0);
  });
});

describe('the web session\'s cookie', () => {
  it('authenticates an upload from this site; another site\'s page is refused (403), and a form cannot send Tus-Resumable', async () => {
    const cookie = await webLogin(server, alice);
    const headers = { ...TUS, cookie, origin: server.base, 'upload-length': '3', 'upload-metadata': meta('web.txt') };
    const res = await request(server, 'POST', '/uploads', { headers });
    assert.equal(res.status, 201, res.text);
    const p = await request(server, 'PATCH', res.headers.location, { body: 'abc', headers: { ...OCTETS, cookie, origin: server.base, 'upload-offset': '0' } });
    assert.equal(p.status, 204);
    assert.equal(p.headers['peervault-cid'], ipfsCarCids(Buffer.from('abc')).cid);
    // from another site: refused before anything is made
    const evil = await newUserWithToken(server);
    const evilHeaders = { ...headers, origin: 'https://evil.example' };
    assertJson(await request(server, 'POST', '/uploads', { headers: evilHeaders }), 403, { message: 'Cross-site request refused' });
    assertJson(await request(server, 'POST', '/uploads', { headers: { ...TUS, cookie, 'sec-fetch-site': 'cross-site', 'upload-length': '3', 'upload-metadata': meta('x') } }),
      403, { message: 'Cross-site request refused' });
    // a plain form post (no Tus-Resumable header possible)
    refused(await request(server, 'POST', '/uploads', { headers: { cookie, origin: server.base, 'content-type': 'application/x-www-form-urlencoded' }, body: 'upload-length=3' }),
      412, 'Tus-Resumable: 1.0.0 is required');
    // neither a cookie nor a token: 401
    refused(await request(server, 'POST', '/uploads', { headers: { ...TUS, 'upload-length': '3', 'upload-metadata': meta('x') } }), 401, 'Token is missing');
    assert.equal((await fileList(server, evil.token)).length, 0);
  });
});

/** Starts a PATCH of `announced` bytes, sends `first` and stalls; returns a function that drops it. */
async function stalledPatch(srv, token, loc, offset, first, announced) {
  const url = new URL(loc, srv.base);
  const req = http.request({
    method: 'PATCH', hostname: url.hostname, port: url.port, path: url.pathname,
    headers: { ...OCTETS, authorization: token, 'upload-offset': String(offset), 'content-length': announced },
  });
  req.on('error', () => {});
  await new Promise((resolve) => req.write(first, resolve));
  await sleep(300); // the server has the request and holds the upload
  return () => req.destroy();
}

describe('concurrency', () => {
  it('a second PATCH while one is under way waits, then gets 423; HEAD answers meanwhile', async () => {
    const loc = await created(server, alice.token, 4 * MiB, 'busy.bin');
    const drop = await stalledPatch(server, alice.token, loc, 0, crypto.randomBytes(1000), 4 * MiB);
    const t0 = Date.now();
    refused(await patch(server, alice.token, loc, 0, 'x'), 423, 'Another request is working on this upload');
    assert.ok(Date.now() - t0 >= 4000, 'it waited for the first');
    assert.equal(await offsetOf(server, alice.token, loc), 0);
    drop();
    // the dropped PATCH keeps what arrived; then the upload is free again
    let offset = 0;
    for (let i = 0; i < 50 && offset === 0; i += 1) {
      await sleep(100);
      offset = await offsetOf(server, alice.token, loc);
    }
    assert.equal(offset, 1000);
    assert.equal((await patch(server, alice.token, loc, 1000, 'y')).status, 204);
  });

  it('stalled PATCHes on many uploads hold no database connection: other uploads and calls go on', async () => {
    const drops = [];
    for (let i = 0; i < 12; i += 1) {
      const loc = await created(server, bob.token, MiB, `stall-${i}.bin`);
      drops.push(await stalledPatch(server, bob.token, loc, 0, Buffer.alloc(10), MiB));
    }
    try {
      // (were each holding a pooled connection, these would wait for one and fail with 503)
      const bytes = crypto.randomBytes(2 * MiB + 1);
      const plain = await uploadFile(server, alice.token, bytes);
      const loc = await created(server, alice.token, bytes.length, 'during.bin');
      const end = await patch(server, alice.token, loc, 0, bytes);
      assert.equal(end.status, 204);
      assert.equal(end.headers['peervault-cid'], plain.cid);
    } finally {
      for (const drop of drops) drop();
    }
  });

  it('at most 100 unfinished uploads per account: the next is 429 until one is finished or deleted', async () => {
    const carol = await newUserWithToken(server);
    const locs = [];
    for (let i = 0; i < 100; i += 1) locs.push(await created(server, carol.token, 10, `n${i}`));
    refused(await create(server, carol.token, { 'upload-length': '10', 'upload-metadata': meta('x') }), 429,
      'Too many unfinished uploads: finish or delete one first');
    assert.equal((await request(server, 'DELETE', locs[0], { token: carol.token, headers: TUS })).status, 204);
    assert.equal((await create(server, carol.token, { 'upload-length': '10', 'upload-metadata': meta('x') })).status, 201);
  });
});

describe('start-up after a crash', () => {
  it('the multipart object (local) and part objects of an upload that is gone are removed at start-up; a live upload keeps its own and finishes', { timeout: 180_000 }, async () => {
    const srv = await startServer({}, { keepDataDir: true });
    let again;
    try {
      const user = await newUserWithToken(srv);
      const open = await unfinishedMultipartUploads(srv.dataDir);
      const live = crypto.randomBytes(9 * MiB + 7);
      const gone = crypto.randomBytes(9 * MiB + 7);
      const liveLoc = await created(srv, user.token, live.length, 'live.bin');
      const goneLoc = await created(srv, user.token, gone.length, 'gone.bin');
      for (const [loc, bytes] of [[liveLoc, live], [goneLoc, gone]]) {
        assert.equal((await patch(srv, user.token, loc, 0, bytes.subarray(0, 6 * MiB))).status, 204);
        // (on S3 these 2 MiB wait as a part object, under S3's least part size)
        assert.equal((await patch(srv, user.token, loc, 6 * MiB, bytes.subarray(6 * MiB, 8 * MiB))).status, 204);
      }
      const ours = async () => (await unfinishedMultipartUploads(srv.dataDir)).filter((u) => !open.includes(u));
      assert.equal((await ours()).length, 2, 'each upload holds a multipart object');
      const objectsOf = async (loc) => (await storedObjects(srv.dataDir)).filter((k) => path.basename(k).startsWith(`tus${loc.split('/').pop()}`));
      const liveObjects = await objectsOf(liveLoc);
      assert.equal((await objectsOf(goneLoc)).length, onS3 ? 1 : 0, 'a part object waits on S3');

      // The crash: SIGKILL, with the gone upload's row removed and its
      // objects not (as a crash between the two would leave them).
      srv.proc.kill('SIGKILL');
      await srv.waitForExit();
      const sql = `DELETE FROM uploads WHERE id = '${goneLoc.split('/').pop()}'`;
      if (onPostgres) execFileSync('psql', [srv.databaseUrl, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
      else execFileSync('sqlite3', [path.join(srv.dataDir, 'peervault.db'), sql]);
      again = await startServer({ PEERVAULT_JWT_SECRET: srv.secret }, { dataDir: srv.dataDir });

      // (An S3 bucket's unfinished multipart uploads cannot be listed
      // through object_store: they are left to the bucket's lifecycle rule.)
      assert.equal((await ours()).length, onS3 ? 2 : 1, 'only the live upload\'s multipart object is left');
      assert.deepEqual(await objectsOf(goneLoc), [], 'the gone upload\'s part objects are removed');
      assert.deepEqual(await objectsOf(liveLoc), liveObjects, 'the live upload\'s are kept');
      assert.equal((await head(again, user.token, goneLoc)).status, 404);
      // The live upload resumes where it was and makes ipfs-car's file.
      assert.equal(await offsetOf(again, user.token, liveLoc), 8 * MiB);
      const last = await patch(again, user.token, liveLoc, 8 * MiB, live.subarray(8 * MiB));
      assert.equal(last.status, 204, last.text);
      assert.equal(last.headers['peervault-cid'], ipfsCarCids(live).cid);
      const url = new URL(await downloadLink(again, user.token, last.headers['peervault-cid']));
      const got = await request(again, 'GET', url.pathname + url.search, { timeout: 60_000 });
      assert.ok(got.raw.equals(live), 'the bytes downloaded');
      assert.equal((await ours()).length, onS3 ? 1 : 0, 'nothing of either upload is left open');
    } finally {
      if (again) {
        await again.stop();
      } else {
        await srv.stop();
        fs.rmSync(srv.dataDir, { recursive: true, force: true });
      }
    }
  });
});
