// File storage: POST /upload_file, /get_file_list, /download_file,
// /delete_file and the signed links GET/HEAD /ipfs/{cid}.
// The CIDs and CARs are compared with `peervault cid` and the real ipfs-car
// (node_modules/.bin/ipfs-car) run on the same bytes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  REPO_ROOT, binaryPath, startServer, request, post, assertJson, MSG, newUserWithToken, dashboard,
  deviceToken, decodeJwt, signJwt, uniqueSuffix, multipart, uploadParts, uploadFile, fileList,
  downloadLink, blobFiles, storedObjects, objectBytes, hasObject, onS3, objectPath, cidBytes, parseCid, carBlocks,
} from './harness.mjs';

const MiB = 1024 * 1024;
const IPFS_CAR = path.join(REPO_ROOT, 'node_modules/.bin/ipfs-car');
const EMPTY_CID = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku';
const CAR_TYPE = 'application/vnd.ipld.car; version=1; order=unk; dups=y';
const LINK_INVALID = { message: 'Download link is invalid or has expired' };
const NOT_STORED = { message: 'Invalid Credentials' };
const NO_FILE = { message: 'No file Selected' };
const FILE_NOT_FOUND = { message: 'File not found' };
const LIST_KEYS = ['_id', 'carCid', 'cid', 'name', 'size', 'type', 'uploaded_at'].sort();
const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const now = () => Math.floor(Date.now() / 1000);

let server;
let work; // scratch dir for reference files and CARs
before(async () => {
  server = await startServer();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-files-'));
});
after(async () => {
  await server?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 16 << 20 }).trim();
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest();
const rand = (n) => crypto.randomBytes(n);

/** The reference answers for `bytes`: ipfs-car's CID, CAR CID and CAR, and `peervault cid`. */
function reference(bytes) {
  const file = path.join(work, `ref-${uniqueSuffix()}.bin`);
  fs.writeFileSync(file, bytes);
  const car = `${file}.car`;
  const cid = run(IPFS_CAR, ['pack', file, '--no-wrap', '-o', car]).split('\n').pop().trim();
  const carCid = run(IPFS_CAR, ['hash', car]);
  const ours = JSON.parse(run(binaryPath(), ['cid', file]));
  return { file, cid, carCid, carFile: car, car: fs.readFileSync(car), ours };
}

/** Path + query of a link, to send to the test server whatever its host. */
const linkPath = (url) => { const u = new URL(url); return u.pathname + u.search; };
const fetchLink = (srv, url, opts = {}) => request(srv, opts.method ?? 'GET', linkPath(url), { timeout: 120_000, ...opts });
/** The same link with a query parameter set. */
function withParam(url, key, value) {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
}

/** Everything a rejected request must leave as it was. */
async function snapshot(srv, token) {
  return {
    list: await fileList(srv, token),
    dashboard: await dashboard(srv, token),
    objects: (await storedObjects(srv.dataDir)),
    staging: blobFiles(srv.dataDir, 'staging'),
  };
}

/**
 * The account's data_downloaded. A download is counted before its last byte
 * is sent, so once a client has read a whole body the count is in: no
 * polling, and a count that arrived late would fail these checks.
 */
async function downloadedNow(srv, token) {
  return (await dashboard(srv, token)).data_downloaded;
}

/** Checks the account's data_downloaded is exactly `expected` now. */
async function expectDownloaded(srv, token, expected) {
  const d = await dashboard(srv, token);
  assert.equal(d.data_downloaded, expected, 'data_downloaded');
  assert.equal(d.bandwidth_used, d.data_uploaded + d.data_downloaded, 'bandwidth_used = data_uploaded + data_downloaded');
  return d;
}

const filePart = (data, filename = 'file.bin', type) => ({ name: 'file', filename, type, data });
const textPart = (name, data) => ({ name, data });

function assertUploaded(res) {
  const body = assertJson(res, 200);
  assert.deepStrictEqual(Object.keys(body).sort(), ['message', 'web3']);
  assert.equal(body.message, 'File uploaded successfully');
  assert.deepStrictEqual(Object.keys(body.web3).sort(), ['carCid', 'cid']);
  assert.match(body.web3.cid, /^baf[ky]/);
  assert.match(body.web3.carCid, /^bagbaiera/);
  return body.web3;
}

// ---------------------------------------------------------------------------
// POST /upload_file
// ---------------------------------------------------------------------------

describe('POST /upload_file: names and types', () => {
  const cases = [
    ['name part after the file part', [filePart(null, 'part.txt'), textPart('name', 'after.txt')], 'after.txt', 'text/plain'],
    ['name part before the file part', [textPart('name', 'before.txt'), filePart(null, 'part.txt')], 'before.txt', 'text/plain'],
    ['`filename` alias after the file part', [filePart(null, 'part.txt'), textPart('filename', 'alias.txt')], 'alias.txt', 'text/plain'],
    ['`filename` alias before the file part', [textPart('filename', 'alias2.txt'), filePart(null, 'part.txt')], 'alias2.txt', 'text/plain'],
    ['no name part: the part\'s file name', [filePart(null, 'default name.txt')], 'default name.txt', 'text/plain'],
    ['a Windows path as the part\'s file name', [filePart(null, 'C:\\fakepath\\report.txt')], 'report.txt', 'text/plain'],
    ['a Unix path as the name', [filePart(null, 'x.bin'), textPart('name', 'dir/sub/notes.txt')], 'notes.txt', 'text/plain'],
    ['a traversal path as the name', [filePart(null, 'x.bin'), textPart('name', '../../etc/passwd')], 'passwd', 'application/octet-stream'],
    ['a Windows path as the name', [textPart('name', 'C:\\fakepath\\a.txt'), filePart(null, 'x.bin')], 'a.txt', 'text/plain'],
    ['control characters in the name', [filePart(null, 'x.bin'), textPart('name', 'a\u0001b\u001f\u007f.txt')], 'ab.txt', 'text/plain'],
    ['a 300-character name (cut to 255)', [filePart(null, 'x.bin'), textPart('name', 'x'.repeat(300))], 'x'.repeat(255), 'application/octet-stream'],
    ['a UTF-8 name', [filePart(null, 'x.bin'), textPart('name', 'résumé ü 日本.txt')], 'résumé ü 日本.txt', 'text/plain'],
    ['unknown parts are ignored', [textPart('comment', 'hi'), filePart(null, 'kept.txt'), { name: 'other', filename: 'other.txt', data: 'not me' }], 'kept.txt', 'text/plain'],
  ];
  for (const [what, parts, name, type] of cases) {
    it(`${what} → stored as ${JSON.stringify(name.length > 40 ? `${name.slice(0, 10)}…(${name.length})` : name)}`, async () => {
      const user = await newUserWithToken(server);
      const data = rand(100);
      const filled = parts.map((p) => (p.name === 'file' ? { ...p, data } : p));
      const web3 = assertUploaded(await uploadParts(server, user.token, filled));
      const list = await fileList(server, user.token);
      assert.equal(list.length, 1);
      assert.equal(list[0].name, name);
      assert.equal(list[0].type, type);
      assert.equal(list[0].size, 100);
      assert.equal(list[0].cid, web3.cid);
      assert.equal(list[0].carCid, web3.carCid);
      // the stored object is the file part's bytes
      assert.ok((await objectBytes(server.dataDir, web3.cid)).equals(data), 'stored object bytes');
    });
  }

  const types = [
    ['declared text/plain', 'text/plain', 'a.txt', 'text/plain'],
    ['no Content-Type, .png', undefined, 'pic.png', 'image/png'],
    ['application/octet-stream, .txt', 'application/octet-stream', 'notes.txt', 'text/plain'],
    ['declared text/csv, .bin name', 'text/csv', 'data.bin', 'text/csv'],
    ['declared image/jpeg, no extension', 'image/jpeg', 'photo', 'image/jpeg'],
    ['no Content-Type, no extension', undefined, 'noext', 'application/octet-stream'],
    ['application/octet-stream, unknown extension', 'application/octet-stream', 'x.zzqq', 'application/octet-stream'],
  ];
  for (const [what, declared, filename, expected] of types) {
    it(`type: ${what} → ${expected}`, async () => {
      const user = await newUserWithToken(server);
      assertUploaded(await uploadParts(server, user.token, [filePart(rand(10), filename, declared)]));
      const [entry] = await fileList(server, user.token);
      assert.equal(entry.type, expected);
    });
  }

  it('type is guessed from the stored name (name part photo.png, file part "blob" as octet-stream) → image/png', async () => {
    const user = await newUserWithToken(server);
    assertUploaded(await uploadParts(server, user.token, [filePart(rand(10), 'blob', 'application/octet-stream'), textPart('name', 'photo.png')]));
    const [entry] = await fileList(server, user.token);
    assert.equal(entry.name, 'photo.png');
    assert.equal(entry.type, 'image/png');
  });
});

describe('POST /upload_file: bad input changes nothing', () => {
  let user;
  before(async () => {
    user = await newUserWithToken(server);
    await uploadFile(server, user.token, rand(50), { filename: 'existing.bin' }); // so the list is not empty
  });

  const noFile = {
    'only a name part': [textPart('name', 'a.txt')],
    'no parts at all (closing boundary only)': [],
    'a file part without a filename attribute': [{ name: 'file', data: 'hello' }],
    'a file part with filename=""': [{ name: 'file', filename: '', data: 'hello' }],
    'a file part whose filename is only a directory ("dir/")': [{ name: 'file', filename: 'dir/', data: 'hello' }],
    'the file under another part name ("upload")': [{ name: 'upload', filename: 'a.txt', data: 'hello' }],
  };
  for (const [what, parts] of Object.entries(noFile)) {
    it(`${what} → 400 "No file Selected"`, async () => {
      const before = await snapshot(server, user.token);
      assertJson(await uploadParts(server, user.token, parts), 400, NO_FILE);
      assert.deepStrictEqual(await snapshot(server, user.token), before);
    });
  }

  const notMultipart = {
    'application/json': { headers: { 'Content-Type': 'application/json' }, body: '{"file":"x"}' },
    'text/plain': { headers: { 'Content-Type': 'text/plain' }, body: 'hello' },
    'application/x-www-form-urlencoded': { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'file=x' },
    'no Content-Type': { body: 'hello' },
    'multipart/form-data without a boundary': { headers: { 'Content-Type': 'multipart/form-data' }, body: multipart([filePart('x', 'a.txt')]).body },
  };
  for (const [what, opts] of Object.entries(notMultipart)) {
    it(`not multipart (${what}) → 415`, async () => {
      const before = await snapshot(server, user.token);
      assertJson(await post(server, '/upload_file', { token: user.token, ...opts }), 415, { message: 'Content-Type must be multipart/form-data' });
      assert.deepStrictEqual(await snapshot(server, user.token), before);
    });
  }

  it('a body that is not multipart at all, under a multipart Content-Type → 400 "Malformed multipart body"', async () => {
    const before = await snapshot(server, user.token);
    const res = await post(server, '/upload_file', {
      token: user.token, body: 'this is not a multipart body', headers: { 'Content-Type': 'multipart/form-data; boundary=XyZ123' },
    });
    assertJson(res, 400, { message: 'Malformed multipart body' });
    assert.deepStrictEqual(await snapshot(server, user.token), before);
  });

  it('a multipart body cut off inside the file part (no closing boundary) → 400 "Malformed multipart body"', async () => {
    const before = await snapshot(server, user.token);
    const { body, contentType } = multipart([filePart(rand(5000), 'cut.bin')], { close: false });
    const cut = body.subarray(0, body.length - 2); // not even the CRLF after the data
    const res = await post(server, '/upload_file', { token: user.token, body: cut, headers: { 'Content-Type': contentType } });
    assertJson(res, 400, { message: 'Malformed multipart body' });
    assert.deepStrictEqual(await snapshot(server, user.token), before);
  });

  it('without a token → 401 "Token is missing"; with a garbage token → 401 "Token is invalid"', async () => {
    const before = await snapshot(server, user.token);
    assertJson(await uploadParts(server, undefined, [filePart(rand(10), 'a.txt')]), 401, MSG.tokenMissing);
    assertJson(await uploadParts(server, 'Bearer not.a.jwt', [filePart(rand(10), 'a.txt')]), 401, MSG.tokenInvalid);
    assert.deepStrictEqual(await snapshot(server, user.token), before);
  });
});

describe('POST /upload_file: CIDs equal `peervault cid` and ipfs-car', () => {
  const sizes = { '0 bytes': 0, '1 byte': 1, '1 MiB + 1': MiB + 1, '3 MiB + 12345': 3 * MiB + 12345 };
  for (const [what, size] of Object.entries(sizes)) {
    it(`a file of ${what}: answer, list entry, object on disk, download and CAR`, async () => {
      const user = await newUserWithToken(server);
      const bytes = rand(size);
      const ref = reference(bytes);
      assert.deepStrictEqual(ref.ours, { cid: ref.cid, carCid: ref.carCid, size }, '`peervault cid` agrees with ipfs-car');
      if (size === 0) assert.equal(ref.cid, EMPTY_CID);

      const objectsBefore = (await storedObjects(server.dataDir));
      const res = await uploadParts(server, user.token, [filePart(bytes, `f${size}.bin`)]);
      assertJson(res, 200, { message: 'File uploaded successfully', web3: { carCid: ref.carCid, cid: ref.cid } });

      const [entry] = await fileList(server, user.token);
      assert.deepStrictEqual({ ...entry, _id: null, uploaded_at: null }, {
        _id: null, name: `f${size}.bin`, cid: ref.cid, carCid: ref.carCid, type: 'application/octet-stream', size, uploaded_at: null,
      });
      // stored once, as the raw bytes, at objects/<last 2>/<cid>; nothing left in staging
      const objectsAfter = (await storedObjects(server.dataDir));
      const rel = path.join(ref.cid.slice(-2), ref.cid);
      assert.deepStrictEqual(objectsAfter, [...new Set([...objectsBefore, rel])].sort());
      assert.ok((await objectBytes(server.dataDir, ref.cid)).equals(bytes), 'object bytes');
      assert.deepStrictEqual(blobFiles(server.dataDir, 'staging'), []);

      const d = await dashboard(server, user.token);
      assert.equal(d.data_uploaded, size);
      assert.equal(d.space_used, size);

      const url = await downloadLink(server, user.token, ref.cid);
      const got = await fetchLink(server, url);
      assert.equal(got.status, 200);
      assert.equal(got.headers['content-length'], String(size));
      assert.ok(got.raw.equals(bytes), 'downloaded bytes');

      // ipfs-car's CAR: order=unk; dups=y (the default is depth first, each block once: gateway.test)
      const car = await fetchLink(server, withParam(withParam(withParam(url, 'format', 'car'), 'car-order', 'unk'), 'car-dups', 'y'));
      assert.equal(car.status, 200);
      assert.equal(car.headers['content-type'], CAR_TYPE);
      assert.equal(car.headers.etag, `"${ref.cid}.car.all.unk.y"`);
      assert.equal(car.raw.length, ref.car.length, 'CAR length');
      assert.ok(car.raw.equals(ref.car), 'CAR bytes equal ipfs-car\'s');
      const carFile = path.join(work, `got-${uniqueSuffix()}.car`);
      fs.writeFileSync(carFile, car.raw);
      assert.equal(run(IPFS_CAR, ['hash', carFile]), ref.carCid, 'ipfs-car hash of the served CAR');
      const out = path.join(work, `unpacked-${uniqueSuffix()}`);
      run(IPFS_CAR, ['unpack', carFile, '--verify', '-o', out]);
      assert.ok(fs.readFileSync(out).equals(bytes), 'ipfs-car unpack --verify of the served CAR restores the bytes');

      const byAccept = await fetchLink(server, url, { headers: { Accept: 'application/vnd.ipld.car; order=unk; dups=y' } });
      assert.equal(byAccept.status, 200);
      assert.equal(byAccept.headers['content-type'], CAR_TYPE);
      assert.ok(byAccept.raw.equals(ref.car), 'CAR by Accept header');

      const raw = await fetchLink(server, withParam(url, 'format', 'raw'));
      assert.equal(raw.status, 200);
      assert.match(String(raw.headers['content-type']), /^application\/vnd\.ipld\.raw\b/);
      const root = parseCid(cidBytes(ref.cid));
      assert.equal(root.hashCode, 0x12, 'sha2-256');
      assert.ok(sha256(raw.raw).equals(root.digest), 'sha256 of the raw block is the CID digest');
      const rootBlock = carBlocks(ref.car).find((b) => b.cid.equals(cidBytes(ref.cid)));
      assert.ok(rootBlock, 'root block in ipfs-car\'s CAR');
      assert.ok(raw.raw.equals(rootBlock.data), 'raw block equals the root block of ipfs-car\'s CAR');
      if (size <= MiB) {
        assert.equal(root.codec, 0x55, 'raw codec for a single-chunk file');
        assert.ok(raw.raw.equals(bytes), 'a single-chunk file\'s raw block is its bytes');
      } else {
        assert.equal(root.codec, 0x70, 'dag-pb root for a multi-chunk file');
      }
      const rawByAccept = await fetchLink(server, url, { headers: { Accept: 'application/vnd.ipld.raw' } });
      assert.equal(rawByAccept.status, 200);
      assert.ok(rawByAccept.raw.equals(rootBlock.data), 'raw block by Accept header');

      await expectDownloaded(server, user.token, size + 2 * ref.car.length + 2 * rootBlock.data.length);
    });
  }

  it('a zero-byte file is valid: 200 with the empty-file CID, size 0, downloads as 0 bytes', async () => {
    const user = await newUserWithToken(server);
    const web3 = assertUploaded(await uploadParts(server, user.token, [filePart(Buffer.alloc(0), 'empty.txt', 'text/plain')]));
    assert.equal(web3.cid, EMPTY_CID);
    const [entry] = await fileList(server, user.token);
    assert.equal(entry.size, 0);
    assert.equal(entry.cid, EMPTY_CID);
    const got = await fetchLink(server, await downloadLink(server, user.token, EMPTY_CID));
    assert.equal(got.status, 200);
    assert.equal(got.headers['content-length'], '0');
    assert.equal(got.raw.length, 0);
  });
});

describe('POST /upload_file: counters and de-duplication', () => {
  it('identical content twice: two list entries, data_uploaded twice, space_used once, one object on disk', async () => {
    const user = await newUserWithToken(server);
    const bytes = rand(20_000);
    const objectsBefore = (await storedObjects(server.dataDir));
    const a = await uploadFile(server, user.token, bytes, { filename: 'first.bin' });
    const b = await uploadFile(server, user.token, bytes, { filename: 'second.bin' });
    assert.deepStrictEqual(a, b);
    const list = await fileList(server, user.token);
    assert.deepStrictEqual(list.map((f) => f.name), ['second.bin', 'first.bin']);
    assert.notEqual(list[0]._id, list[1]._id);
    const d = await dashboard(server, user.token);
    assert.equal(d.data_uploaded, 40_000);
    assert.equal(d.space_used, 20_000);
    assert.equal(d.bandwidth_used, 40_000 + d.data_downloaded);
    assert.deepStrictEqual((await storedObjects(server.dataDir)), [...objectsBefore, path.join(a.cid.slice(-2), a.cid)].sort());
    assert.deepStrictEqual(blobFiles(server.dataDir, 'staging'), []);
  });

  it('identical content from two users is stored once; each user\'s space_used counts it', async () => {
    const alice = await newUserWithToken(server);
    const bob = await newUserWithToken(server);
    const bytes = rand(7_777);
    const objectsBefore = (await storedObjects(server.dataDir));
    const a = await uploadFile(server, alice.token, bytes, { filename: 'a.bin' });
    const b = await uploadFile(server, bob.token, bytes, { filename: 'b.bin' });
    assert.deepStrictEqual(a, b);
    assert.deepStrictEqual((await storedObjects(server.dataDir)), [...objectsBefore, path.join(a.cid.slice(-2), a.cid)].sort());
    for (const u of [alice, bob]) {
      const d = await dashboard(server, u.token);
      assert.equal(d.space_used, 7_777);
      assert.equal(d.data_uploaded, 7_777);
    }
  });

  it('space_used sums distinct content; data_uploaded sums every upload', async () => {
    const user = await newUserWithToken(server);
    const x = rand(1000);
    const y = rand(2345);
    await uploadFile(server, user.token, x);
    await uploadFile(server, user.token, y);
    await uploadFile(server, user.token, x);
    await uploadFile(server, user.token, Buffer.alloc(0));
    const d = await dashboard(server, user.token);
    assert.equal(d.space_used, 3345);
    assert.equal(d.data_uploaded, 4345);
    assert.equal(d.data_downloaded, 0);
    assert.equal(d.bandwidth_used, 4345);
  });

  it('works with the Bearer form and with a device token (the file shows in the account\'s list)', async () => {
    const user = await newUserWithToken(server);
    const device = await deviceToken(server, user);
    const a = await uploadFile(server, `Bearer ${user.token}`, rand(10), { filename: 'bearer.txt' });
    const b = await uploadFile(server, device, rand(11), { filename: 'device.txt' });
    const list = await fileList(server, user.token);
    assert.deepStrictEqual(list.map((f) => [f.name, f.cid]), [['device.txt', b.cid], ['bearer.txt', a.cid]]);
    assert.deepStrictEqual(await fileList(server, device), list);
    assert.deepStrictEqual(await fileList(server, `Bearer ${user.token}`), list);
    assert.match(await downloadLink(server, device, a.cid), /\/ipfs\//);
  });
});

// ---------------------------------------------------------------------------
// POST /get_file_list
// ---------------------------------------------------------------------------

describe('POST /get_file_list', () => {
  it('a new account has an empty list []', async () => {
    const user = await newUserWithToken(server);
    const res = await post(server, '/get_file_list', { token: user.token });
    assertJson(res, 200, []);
  });

  it('lists newest first with exactly _id, name, cid, carCid, type, size, uploaded_at', async () => {
    const user = await newUserWithToken(server);
    const t0 = Date.now();
    const uploads = [];
    for (const [i, name] of ['one.txt', 'two.png', 'three'].entries()) {
      const bytes = rand(100 + i);
      const web3 = await uploadFile(server, user.token, bytes, { filename: name });
      uploads.push({ name, size: bytes.length, ...web3 });
    }
    const t1 = Date.now();
    const list = await fileList(server, user.token);
    assert.equal(list.length, 3);
    assert.deepStrictEqual(list.map((f) => f.name), ['three', 'two.png', 'one.txt']);
    const types = { 'one.txt': 'text/plain', 'two.png': 'image/png', three: 'application/octet-stream' };
    for (const f of list) {
      assert.deepStrictEqual(Object.keys(f).sort(), LIST_KEYS);
      const u = uploads.find((x) => x.name === f.name);
      assert.equal(typeof f._id, 'string');
      assert.ok(f._id.length > 0);
      assert.equal(f.cid, u.cid);
      assert.equal(f.carCid, u.carCid);
      assert.equal(f.size, u.size);
      assert.equal(f.type, types[f.name]);
      assert.match(f.uploaded_at, RFC3339_MS);
      const t = Date.parse(f.uploaded_at);
      assert.ok(t >= t0 - 2000 && t <= t1 + 2000, `uploaded_at ${f.uploaded_at} outside the test's time`);
    }
    assert.equal(new Set(list.map((f) => f._id)).size, 3, '_id values are distinct');
    const times = list.map((f) => Date.parse(f.uploaded_at));
    assert.ok(times[0] >= times[1] && times[1] >= times[2], `not newest first: ${list.map((f) => f.uploaded_at)}`);
  });

  it('shows each account its own files only', async () => {
    const alice = await newUserWithToken(server);
    const bob = await newUserWithToken(server);
    const a = await uploadFile(server, alice.token, rand(10), { filename: 'alice.txt' });
    assert.deepStrictEqual((await fileList(server, alice.token)).map((f) => f.cid), [a.cid]);
    assert.deepStrictEqual(await fileList(server, bob.token), []);
  });
});

// ---------------------------------------------------------------------------
// POST /download_file
// ---------------------------------------------------------------------------

const cidInputs = {
  'no cid field': [{}, 400, { message: 'Missing cid field in request body' }],
  'cid is a number': [{ cid: 5 }, 400, { message: 'cid must be a string' }],
  'cid is null': [{ cid: null }, 400, null],
  'cid is not a CID': [{ cid: 'hello' }, 400, { message: 'Invalid CID: not a valid CID' }],
  'a CIDv0 (Qm…)': [{ cid: 'QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR' }, 400, { message: 'Invalid CID: only CIDv1 is supported' }],
};

describe('POST /download_file', () => {
  let user;
  let file; // { cid, carCid, name }
  before(async () => {
    user = await newUserWithToken(server);
    file = { ...(await uploadFile(server, user.token, rand(1234), { filename: 'report 1.txt' })), name: 'report 1.txt' };
  });

  for (const [what, [json, status, body]] of Object.entries(cidInputs)) {
    it(`${what} → ${status}${body ? ` ${JSON.stringify(body)}` : ''}`, async () => {
      const before = await snapshot(server, user.token);
      const got = assertJson(await post(server, '/download_file', { token: user.token, json }), status, body ?? undefined);
      assert.equal(typeof got.message, 'string');
      assert.deepStrictEqual(await snapshot(server, user.token), before);
    });
  }

  it('a valid CID nobody stores → 404 "Invalid Credentials"', async () => {
    const { cid } = reference(rand(33));
    assertJson(await post(server, '/download_file', { token: user.token, json: { cid } }), 404, NOT_STORED);
  });

  it('another user\'s CID → 404 "Invalid Credentials"', async () => {
    const other = await newUserWithToken(server);
    assertJson(await post(server, '/download_file', { token: other.token, json: { cid: file.cid } }), 404, NOT_STORED);
  });

  it('200 {"url"}: <base>/ipfs/<cid>?filename=<percent-encoded>&token=<JWT signed with the server secret>', async () => {
    const t = now();
    const res = await post(server, '/download_file', { token: user.token, json: { cid: file.cid } });
    const body = assertJson(res, 200);
    assert.deepStrictEqual(Object.keys(body), ['url']);
    const m = body.url.match(/^http:\/\/127\.0\.0\.1:(\d+)\/ipfs\/([a-z2-7]+)\?filename=([^&]+)&token=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/);
    assert.ok(m, `link shape: ${body.url}`);
    assert.equal(Number(m[1]), server.port);
    assert.equal(m[2], file.cid);
    assert.equal(m[3], 'report%201.txt');
    const jwt = decodeJwt(m[4]);
    assert.equal(jwt.header.alg, 'HS256');
    // non + ver: the account's nonce and token version (a password change revokes the link)
    assert.deepStrictEqual(Object.keys(jwt.payload).sort(), ['cid', 'exp', 'iat', 'kind', 'non', 'sub', 'ver']);
    assert.equal(jwt.payload.non, decodeJwt(user.token).payload.non);
    assert.equal(jwt.payload.kind, 'download');
    assert.equal(jwt.payload.cid, file.cid);
    assert.equal(String(jwt.payload.sub), String(decodeJwt(user.token).payload.sub));
    assert.ok(Math.abs(jwt.payload.iat - t) <= 5, `iat ${jwt.payload.iat} vs now ${t}`);
    assert.equal(jwt.payload.exp - jwt.payload.iat, 3600, 'default lifetime 1 hour');
    const [h, p, s] = m[4].split('.');
    assert.equal(crypto.createHmac('sha256', server.secret).update(`${h}.${p}`).digest('base64url'), s, 'HS256 with the server secret');
  });

  it('percent-encodes a name with spaces, UTF-8 and reserved characters', async () => {
    const name = 'Ünïcode & spaces #1?=.txt';
    const { cid } = await uploadFile(server, user.token, rand(77), { filename: 'x.bin', name });
    const url = await downloadLink(server, user.token, cid);
    assert.match(url, /^[\x21-\x7e]+$/, 'the link is plain ASCII without spaces');
    const query = url.slice(url.indexOf('?') + 1);
    const [fname, tok, ...rest] = query.split('&');
    assert.deepStrictEqual(rest, []);
    assert.match(fname, /^filename=[A-Za-z0-9%._~-]+$/);
    assert.equal(decodeURIComponent(fname.slice('filename='.length)), name);
    assert.match(tok, /^token=/);
  });

  it('without a token → 401 "Token is missing"', async () => {
    assertJson(await post(server, '/download_file', { json: { cid: file.cid } }), 401, MSG.tokenMissing);
  });
});

describe('links with PEERVAULT_PUBLIC_URL and PEERVAULT_DOWNLOAD_LINK_TTL_SECS', () => {
  let pub;
  before(async () => {
    pub = await startServer({ PEERVAULT_PUBLIC_URL: 'https://x.example', PEERVAULT_DOWNLOAD_LINK_TTL_SECS: 120 });
  });
  after(async () => { await pub?.stop(); });

  it('the link starts with the public URL, lives the configured time and works', async () => {
    const user = await newUserWithToken(pub);
    const bytes = rand(500);
    const { cid } = await uploadFile(pub, user.token, bytes, { filename: 'pub.txt' });
    const url = await downloadLink(pub, user.token, cid);
    const m = url.match(/^https:\/\/x\.example\/ipfs\/([a-z2-7]+)\?filename=pub\.txt&token=([^&]+)$/);
    assert.ok(m, `link: ${url}`);
    assert.equal(m[1], cid);
    const { payload } = decodeJwt(m[2]);
    assert.equal(payload.exp - payload.iat, 120);
    const got = await fetchLink(pub, url);
    assert.equal(got.status, 200);
    assert.ok(got.raw.equals(bytes));
  });
});

// ---------------------------------------------------------------------------
// GET / HEAD /ipfs/{cid}
// ---------------------------------------------------------------------------

describe('GET /ipfs/{cid}', () => {
  let user;
  let small; // { cid, bytes, url, name }
  let other; // another file of the same user
  before(async () => {
    user = await newUserWithToken(server);
    const bytes = rand(10_000);
    small = { bytes, name: 'report 1.txt', ...(await uploadFile(server, user.token, bytes, { filename: 'report 1.txt', type: 'text/plain' })) };
    small.url = await downloadLink(server, user.token, small.cid);
    const obytes = rand(3000);
    other = { bytes: obytes, ...(await uploadFile(server, user.token, obytes, { filename: 'other.bin' })) };
    other.url = await downloadLink(server, user.token, other.cid);
  });

  it('returns the exact bytes with Content-Type, Content-Disposition, Content-Length, ETag, Accept-Ranges, nosniff; counts them', async () => {
    const base = await downloadedNow(server, user.token);
    const res = await fetchLink(server, small.url);
    assert.equal(res.status, 200);
    assert.ok(res.raw.equals(small.bytes), 'body bytes');
    assert.equal(res.headers['content-type'], 'text/plain');
    assert.equal(res.headers['content-disposition'], 'attachment; filename="report 1.txt"; filename*=UTF-8\'\'report%201.txt');
    assert.equal(res.headers['content-length'], '10000');
    assert.equal(res.headers.etag, `"${small.cid}"`);
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    await expectDownloaded(server, user.token, base + 10_000);
  });

  it('Content-Disposition of a UTF-8 name: an ASCII filename= and the exact name in filename*=UTF-8\'\'', async () => {
    const name = 'résumé ü.txt';
    const bytes = rand(20);
    const { cid } = await uploadFile(server, user.token, bytes, { filename: 'x.bin', name });
    const res = await fetchLink(server, await downloadLink(server, user.token, cid));
    assert.equal(res.status, 200);
    assert.ok(res.raw.equals(bytes));
    const m = String(res.headers['content-disposition']).match(/^attachment; filename="([\x20\x21\x23-\x5b\x5d-\x7e]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]+)$/);
    assert.ok(m, `Content-Disposition: ${res.headers['content-disposition']}`);
    assert.ok(m[1].length > 0);
    assert.equal(decodeURIComponent(m[2]), name);
    assert.equal(res.headers['content-type'], 'text/plain');
  });

  it('HEAD: same headers, no body, not counted in data_downloaded', async () => {
    const base = await downloadedNow(server, user.token);
    const get = await fetchLink(server, small.url);
    const head = await fetchLink(server, small.url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.raw.length, 0);
    for (const h of ['content-type', 'content-disposition', 'content-length', 'etag', 'accept-ranges', 'x-content-type-options']) {
      assert.equal(head.headers[h], get.headers[h], `HEAD ${h}`);
    }
    await fetchLink(server, small.url, { method: 'HEAD', headers: { Range: 'bytes=0-9' } });
    await fetchLink(server, withParam(small.url, 'format', 'car'), { method: 'HEAD' });
    await expectDownloaded(server, user.token, base + 10_000); // the GET only
  });

  it('If-None-Match: "<cid>" → 304 with no body, not counted', async () => {
    const base = await downloadedNow(server, user.token);
    const res = await fetchLink(server, small.url, { headers: { 'If-None-Match': `"${small.cid}"` } });
    assert.equal(res.status, 304);
    assert.equal(res.raw.length, 0);
    const other304 = await fetchLink(server, small.url, { headers: { 'If-None-Match': '"something-else"' } });
    assert.equal(other304.status, 200);
    assert.ok(other304.raw.equals(small.bytes));
    await expectDownloaded(server, user.token, base + 10_000);
  });

  const ranges = [
    ['bytes=0-9', 0, 9],
    ['bytes=100-199', 100, 199],
    ['bytes=9990-', 9990, 9999],
    ['bytes=-10', 9990, 9999],
    ['bytes=5000-99999 (end past the size)', 5000, 9999],
    ['bytes=-20000 (more than the size)', 0, 9999],
    ['bytes=9999-9999', 9999, 9999],
  ];
  for (const [spec, a, b] of ranges) {
    it(`Range: ${spec} → 206, Content-Range bytes ${a}-${b}/10000, those bytes, counted`, async () => {
      const header = spec.split(' ')[0];
      const base = await downloadedNow(server, user.token);
      const res = await fetchLink(server, small.url, { headers: { Range: header } });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes ${a}-${b}/10000`);
      assert.equal(res.headers['content-length'], String(b - a + 1));
      assert.ok(res.raw.equals(small.bytes.subarray(a, b + 1)), 'range bytes');
      await expectDownloaded(server, user.token, base + (b - a + 1));
    });
  }

  it('Range starting at or past the end → 416 with Content-Range: bytes */10000', async () => {
    for (const header of ['bytes=10000-', 'bytes=20000-20010']) {
      const res = await fetchLink(server, small.url, { headers: { Range: header } });
      assert.equal(res.status, 416, header);
      assert.equal(res.headers['content-range'], 'bytes */10000', header);
    }
  });

  it('several ranges → 200 with the whole file', async () => {
    const res = await fetchLink(server, small.url, { headers: { Range: 'bytes=0-9,20-29' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '10000');
    assert.ok(res.raw.equals(small.bytes));
  });

  it('Range within a multi-chunk file crossing the 1 MiB boundary', async () => {
    const u = await newUserWithToken(server);
    const bytes = rand(2 * MiB + 3);
    const { cid } = await uploadFile(server, u.token, bytes, { filename: 'two.bin' });
    const url = await downloadLink(server, u.token, cid);
    const res = await fetchLink(server, url, { headers: { Range: `bytes=${MiB - 5}-${MiB + 4}` } });
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-range'], `bytes ${MiB - 5}-${MiB + 4}/${2 * MiB + 3}`);
    assert.ok(res.raw.equals(bytes.subarray(MiB - 5, MiB + 5)));
    await expectDownloaded(server, u.token, 10);
  });

  it('a stored block that no longer matches its CID is never sent: the body stops short; ranges elsewhere still work', { skip: onS3 && 'edits the object on local disk' }, async () => {
    const u = await newUserWithToken(server);
    const bytes = rand(2 * MiB + 3);
    const { cid } = await uploadFile(server, u.token, bytes, { filename: 'rot.bin' });
    const url = await downloadLink(server, u.token, cid);
    // one flipped bit in the second chunk, as a failing disk would leave it
    const file = objectPath(server.dataDir, cid);
    const stored = fs.readFileSync(file);
    stored[MiB + 10] ^= 0x01;
    fs.writeFileSync(file, stored);
    const before = await downloadedNow(server, u.token);
    for (const [label, target, headers] of [
      ['the whole file', url, {}],
      ['a range in the damaged chunk', url, { Range: `bytes=${MiB}-${MiB + 20}` }],
      ['the CAR', withParam(url, 'format', 'car'), {}],
    ]) {
      const got = await fetchLink(server, target, { headers }).then((r) => r, (e) => ({ error: e }));
      if (got.error) continue; // the connection was cut before the damaged block
      assert.fail(`${label}: answered ${got.status} with ${got.raw.length} bytes instead of stopping short`);
    }
    // the first chunk is intact: a range inside it is served (and verified)
    const head = await fetchLink(server, url, { headers: { Range: 'bytes=0-99' } });
    assert.equal(head.status, 206);
    assert.ok(head.raw.equals(bytes.subarray(0, 100)));
    // a cut-short download never counts its full length
    const after = await downloadedNow(server, u.token);
    assert.ok(after - before < 2 * bytes.length, `counted ${after - before} bytes`);
  });

  it('?format=xyz → 400 JSON', async () => {
    const res = await fetchLink(server, withParam(small.url, 'format', 'xyz'));
    assert.equal(typeof assertJson(res, 400).message, 'string');
  });

  it('a link works for its own CID only: a token for another CID → 403', async () => {
    const token = new URL(small.url).searchParams.get('token');
    const res = await fetchLink(server, withParam(other.url, 'token', token));
    assertJson(res, 403, LINK_INVALID);
  });

  it('a token we sign with the server secret and the link claims works (control for the forgeries below)', async () => {
    const { payload } = decodeJwt(new URL(small.url).searchParams.get('token'));
    const claims = { sub: payload.sub, non: payload.non, ver: payload.ver, cid: small.cid, iat: now(), exp: now() + 600, kind: 'download' };
    const res = await fetchLink(server, withParam(small.url, 'token', signJwt(server.secret, claims)));
    assert.equal(res.status, 200);
    assert.ok(res.raw.equals(small.bytes));
  });

  it('no token → 404 "File not found" in every format: unshared content is not told apart from content nobody stores', async () => {
    const base = await downloadedNow(server, user.token);
    const u = new URL(small.url);
    u.searchParams.delete('token');
    for (const url of [u.toString(), withParam(u.toString(), 'format', 'car'), withParam(u.toString(), 'format', 'raw')]) {
      assertJson(await fetchLink(server, url), 404, { message: 'File not found' });
      assert.equal((await fetchLink(server, url, { method: 'HEAD' })).status, 404, 'HEAD');
    }
    await expectDownloaded(server, user.token, base);
  });

  const forged = {
    'an empty token': () => withParam(small.url, 'token', ''),
    'one character of the signature changed': () => {
      const token = new URL(small.url).searchParams.get('token');
      const dot = token.lastIndexOf('.');
      const i = dot + 1 + 10; // in the middle: every bit of that character counts
      const c = token[i] === 'A' ? 'B' : 'A';
      return withParam(small.url, 'token', token.slice(0, i) + c + token.slice(i + 1));
    },
    'an expired token (signed with the server secret)': () => {
      const { payload } = decodeJwt(new URL(small.url).searchParams.get('token'));
      return withParam(small.url, 'token', signJwt(server.secret, { ...payload, iat: now() - 7200, exp: now() - 3600 }));
    },
    'a link without the account nonce (signed with the server secret)': () => {
      const { payload } = decodeJwt(new URL(small.url).searchParams.get('token'));
      const { non, ...rest } = payload;
      return withParam(small.url, 'token', signJwt(server.secret, { ...rest, iat: now(), exp: now() + 600 }));
    },
    'a link with an older token version (signed with the server secret)': () => {
      const { payload } = decodeJwt(new URL(small.url).searchParams.get('token'));
      return withParam(small.url, 'token', signJwt(server.secret, { ...payload, ver: payload.ver + 1, iat: now(), exp: now() + 600 }));
    },
    'a token signed with another secret': () => {
      const { payload } = decodeJwt(new URL(small.url).searchParams.get('token'));
      return withParam(small.url, 'token', signJwt('x'.repeat(64), { ...payload, iat: now(), exp: now() + 600 }));
    },
    'alg none': () => {
      const { payload } = decodeJwt(new URL(small.url).searchParams.get('token'));
      return withParam(small.url, 'token', signJwt(server.secret, { ...payload, iat: now(), exp: now() + 600 }, { alg: 'none' }));
    },
    'the account\'s login token': () => withParam(small.url, 'token', user.token),
    'a link-shaped token of kind "user"': () => {
      const { payload } = decodeJwt(new URL(small.url).searchParams.get('token'));
      return withParam(small.url, 'token', signJwt(server.secret, { ...payload, iat: now(), exp: now() + 600, kind: 'user' }));
    },
  };
  for (const [what, make] of Object.entries(forged)) {
    it(`${what} → 403 "Download link is invalid or has expired", nothing counted`, async () => {
      const base = await downloadedNow(server, user.token);
      const url = make();
      assertJson(await fetchLink(server, url), 403, LINK_INVALID);
      const head = await fetchLink(server, url, { method: 'HEAD' });
      assert.equal(head.status, 403, 'HEAD');
      assertJson(await fetchLink(server, withParam(url, 'format', 'car')), 403, LINK_INVALID);
      await fetchLink(server, small.url); // a good download, to show the counter moved by it only
      await expectDownloaded(server, user.token, base + 10_000);
    });
  }

  it('a device token used as the link token → 403', async () => {
    const device = await deviceToken(server, user);
    assertJson(await fetchLink(server, withParam(small.url, 'token', device)), 403, LINK_INVALID);
  });
});

// ---------------------------------------------------------------------------
// Size limit and quota
// ---------------------------------------------------------------------------

describe('413: PEERVAULT_MAX_FILE_BYTES and PEERVAULT_USER_QUOTA_BYTES', () => {
  const MAX = 200_000;
  const QUOTA = 500_000;
  let lim;
  before(async () => {
    lim = await startServer({ PEERVAULT_MAX_FILE_BYTES: MAX, PEERVAULT_USER_QUOTA_BYTES: QUOTA });
  });
  after(async () => { await lim?.stop(); });

  it(`a file of exactly the maximum (${MAX} bytes) is accepted`, async () => {
    const user = await newUserWithToken(lim);
    await uploadFile(lim, user.token, rand(MAX));
    assert.equal((await dashboard(lim, user.token)).space_used, MAX);
  });

  for (const size of [MAX + 1, 3 * MAX, 4 * MiB]) {
    it(`a file of ${size} bytes → 413 "File too large", no object, no staging file, no row, no counter change`, async () => {
      const user = await newUserWithToken(lim);
      await uploadFile(lim, user.token, rand(1000), { filename: 'keep.bin' });
      const before = await snapshot(lim, user.token);
      const res = await uploadParts(lim, user.token, [filePart(rand(size), 'big.bin')], { timeout: 60_000 });
      assertJson(res, 413, { message: 'File too large' });
      assert.deepStrictEqual(await snapshot(lim, user.token), before);
    });
  }

  it('quota: uploads fit up to the quota exactly; one byte over → 413 "Storage quota exceeded" with no trace', async () => {
    const user = await newUserWithToken(lim);
    const a = rand(MAX);
    await uploadFile(lim, user.token, a, { filename: 'a.bin' });
    await uploadFile(lim, user.token, rand(MAX), { filename: 'b.bin' });
    const before = await snapshot(lim, user.token);
    assert.equal(before.dashboard.space_used, 2 * MAX);
    const res = await uploadParts(lim, user.token, [filePart(rand(QUOTA - 2 * MAX + 1), 'c.bin')]);
    assertJson(res, 413, { message: 'Storage quota exceeded' });
    assert.deepStrictEqual(await snapshot(lim, user.token), before);

    await uploadFile(lim, user.token, rand(QUOTA - 2 * MAX), { filename: 'c.bin' });
    const full = await snapshot(lim, user.token);
    assert.equal(full.dashboard.space_used, QUOTA);
    // full: even one byte is refused
    assertJson(await uploadParts(lim, user.token, [filePart(rand(1), 'd.bin')]), 413, { message: 'Storage quota exceeded' });
    // the quota check while streaming is conservative: content already stored must still fit on top
    assertJson(await uploadParts(lim, user.token, [filePart(a, 'a-again.bin')]), 413, { message: 'Storage quota exceeded' });
    assert.deepStrictEqual(await snapshot(lim, user.token), full);

    // another account has its own quota
    const other = await newUserWithToken(lim);
    await uploadFile(lim, other.token, rand(MAX));
  });

  it('quota: re-uploading stored content that fits adds to data_uploaded, not to space_used', async () => {
    const user = await newUserWithToken(lim);
    const a = rand(MAX);
    await uploadFile(lim, user.token, a, { filename: 'a.bin' });
    const d1 = await dashboard(lim, user.token);
    const again = await uploadFile(lim, user.token, a, { filename: 'a2.bin' });
    const d2 = await dashboard(lim, user.token);
    assert.equal(d2.space_used, d1.space_used);
    assert.equal(d2.data_uploaded, d1.data_uploaded + MAX);
    assert.equal((await fileList(lim, user.token)).filter((f) => f.cid === again.cid).length, 2);
  });
});

// ---------------------------------------------------------------------------
// POST /delete_file
// ---------------------------------------------------------------------------

describe('POST /delete_file', () => {
  let user;
  let kept;
  before(async () => {
    user = await newUserWithToken(server);
    kept = await uploadFile(server, user.token, rand(321), { filename: 'kept.bin' });
  });

  for (const [what, [json, status, body]] of Object.entries(cidInputs)) {
    it(`${what} → ${status}${body ? ` ${JSON.stringify(body)}` : ''}, nothing deleted`, async () => {
      const before = await snapshot(server, user.token);
      const got = assertJson(await post(server, '/delete_file', { token: user.token, json }), status, body ?? undefined);
      assert.equal(typeof got.message, 'string');
      assert.deepStrictEqual(await snapshot(server, user.token), before);
    });
  }

  it('a CID nobody stores → 404 "Invalid Credentials"', async () => {
    const before = await snapshot(server, user.token);
    const { cid } = reference(rand(34));
    assertJson(await post(server, '/delete_file', { token: user.token, json: { cid } }), 404, NOT_STORED);
    assert.deepStrictEqual(await snapshot(server, user.token), before);
  });

  it('another user\'s CID → 404 "Invalid Credentials", their file untouched', async () => {
    const other = await newUserWithToken(server);
    const before = await snapshot(server, user.token);
    assertJson(await post(server, '/delete_file', { token: other.token, json: { cid: kept.cid } }), 404, NOT_STORED);
    assert.deepStrictEqual(await snapshot(server, user.token), before);
  });

  it('without a token → 401 "Token is missing"', async () => {
    assertJson(await post(server, '/delete_file', { json: { cid: kept.cid } }), 401, MSG.tokenMissing);
    assert.ok((await hasObject(server.dataDir, kept.cid)));
  });

  it('200: all the account\'s entries of that CID go, space_used drops, the object goes, old links answer 404 "File not found"', async () => {
    const u = await newUserWithToken(server);
    const bytes = rand(4321);
    const keep = await uploadFile(server, u.token, rand(1000), { filename: 'stay.bin' });
    const { cid } = await uploadFile(server, u.token, bytes, { filename: 'gone.bin' });
    await uploadFile(server, u.token, bytes, { filename: 'gone-again.bin' });
    const url = await downloadLink(server, u.token, cid);
    assert.equal((await fetchLink(server, url)).status, 200);
    await expectDownloaded(server, u.token, 4321);
    const before = await dashboard(server, u.token);
    assert.equal(before.space_used, 5321);

    assertJson(await post(server, '/delete_file', { token: u.token, json: { cid } }), 200, { message: 'File deleted successfully' });

    assert.deepStrictEqual((await fileList(server, u.token)).map((f) => f.name), ['stay.bin']);
    const after = await dashboard(server, u.token);
    assert.equal(after.space_used, 1000);
    assert.equal(after.data_uploaded, before.data_uploaded, 'data_uploaded keeps the accepted uploads');
    assert.equal(after.data_downloaded, before.data_downloaded);
    assert.ok(!(await hasObject(server.dataDir, cid)), 'object removed');
    assert.ok((await hasObject(server.dataDir, keep.cid)), 'other object kept');
    assert.deepStrictEqual(blobFiles(server.dataDir, 'staging'), []);

    assertJson(await fetchLink(server, url), 404, FILE_NOT_FOUND);
    assertJson(await fetchLink(server, withParam(url, 'format', 'car')), 404, FILE_NOT_FOUND);
    assertJson(await post(server, '/download_file', { token: u.token, json: { cid } }), 404, NOT_STORED);
    assertJson(await post(server, '/delete_file', { token: u.token, json: { cid } }), 404, NOT_STORED);
    await expectDownloaded(server, u.token, 4321);
  });

  it('the object stays while another account references it, and goes with the last reference', async () => {
    const alice = await newUserWithToken(server);
    const bob = await newUserWithToken(server);
    const bytes = rand(9999);
    const { cid } = await uploadFile(server, alice.token, bytes, { filename: 'shared.bin' });
    await uploadFile(server, bob.token, bytes, { filename: 'mine.bin' });
    const aliceUrl = await downloadLink(server, alice.token, cid);
    const bobUrl = await downloadLink(server, bob.token, cid);

    assertJson(await post(server, '/delete_file', { token: alice.token, json: { cid } }), 200, { message: 'File deleted successfully' });
    assert.ok((await hasObject(server.dataDir, cid)), 'object kept for bob');
    assert.equal((await dashboard(server, alice.token)).space_used, 0);
    assert.equal((await dashboard(server, bob.token)).space_used, 9999);
    assertJson(await fetchLink(server, aliceUrl), 404, FILE_NOT_FOUND);
    const got = await fetchLink(server, bobUrl);
    assert.equal(got.status, 200);
    assert.ok(got.raw.equals(bytes));

    assertJson(await post(server, '/delete_file', { token: bob.token, json: { cid } }), 200, { message: 'File deleted successfully' });
    assert.ok(!(await hasObject(server.dataDir, cid)), 'object removed with the last reference');
    assert.equal((await dashboard(server, bob.token)).space_used, 0);
    assertJson(await fetchLink(server, bobUrl), 404, FILE_NOT_FOUND);

    // and the same content can be uploaded again afterwards
    await uploadFile(server, alice.token, bytes, { filename: 'back.bin' });
    assert.ok((await objectBytes(server.dataDir, cid)).equals(bytes));
    assert.ok((await fetchLink(server, await downloadLink(server, alice.token, cid))).raw.equals(bytes));
  });
});

// ---------------------------------------------------------------------------
// Auth on every files route
// ---------------------------------------------------------------------------

describe('files routes require a token', () => {
  const routes = {
    '/get_file_list': undefined,
    '/download_file': { cid: EMPTY_CID },
    '/delete_file': { cid: EMPTY_CID },
  };
  for (const [route, json] of Object.entries(routes)) {
    it(`${route} without a token → 401 "Token is missing"; garbage token → 401 "Token is invalid"`, async () => {
      assertJson(await post(server, route, { json }), 401, MSG.tokenMissing);
      assertJson(await post(server, route, { json, token: 'Bearer not.a.jwt' }), 401, MSG.tokenInvalid);
    });
  }
  it('/upload_file without a token → 401 "Token is missing"', async () => {
    const objects = (await storedObjects(server.dataDir));
    assertJson(await uploadParts(server, undefined, [filePart(rand(100), 'a.txt')]), 401, MSG.tokenMissing);
    assert.deepStrictEqual((await storedObjects(server.dataDir)), objects);
    assert.deepStrictEqual(blobFiles(server.dataDir, 'staging'), []);
  });
  it('an expired login token → 401 "Token is invalid" on every files route', async () => {
    const user = await newUserWithToken(server);
    const { payload } = decodeJwt(user.token);
    const expired = signJwt(server.secret, { ...payload, iat: now() - 7200, exp: now() - 3600 });
    for (const [route, json] of Object.entries(routes)) {
      assertJson(await post(server, route, { json, token: expired }), 401, MSG.tokenInvalid);
    }
    assertJson(await uploadParts(server, expired, [filePart(rand(100), 'a.txt')]), 401, MSG.tokenInvalid);
  });
});
