// Folder uploads (issue 14): several `file` parts whose file names are
// paths make one folder, a UnixFS directory identical to what
// `ipfs-car pack <dir>` makes of the same files (run on the fly); the
// gateway serves it as a CAR (ipfs-car's byte for byte, or depth first),
// each file by its path (`/ipfs/<cid>/sub/file.txt`, ranges too) and a CAR
// of a path. Every bad input is refused with its message and changes
// nothing. Over HTTP against the release build; on SQLite + local files and
// on PostgreSQL + S3.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as dagPb from '@ipld/dag-pb';
import {
  startServer, request, assertJson, newUserWithToken, uploadParts, fileList, downloadLink, dashboard, carBlocks,
  cidString, parseCid, ipfsCarPack, folderParts, REPO_ROOT,
} from './harness.mjs';

const MiB = 1024 * 1024;
const IPFS_CAR = path.join(REPO_ROOT, 'node_modules/.bin/ipfs-car');
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest();

let server;
let user;

before(async () => {
  server = await startServer();
  user = await newUserWithToken(server);
});

after(async () => {
  await server?.stop();
});

async function uploadFolder(files, opts = {}) {
  const res = await uploadParts(server, user.token, folderParts(files, opts.top, opts.order), { timeout: 120_000 });
  const body = assertJson(res, 200);
  assert.equal(body.message, 'File uploaded successfully');
  return body.web3;
}

/** The account's files and totals, to show a refused upload changed nothing. */
async function snapshot() {
  const d = await dashboard(server, user.token);
  return { files: await fileList(server, user.token), used: d.space_used, uploaded: d.data_uploaded };
}

/** The path of a gateway URL of the link, at `rest` below the CID, with `params`. */
function at(link, rest = '', params = {}) {
  const url = new URL(link);
  url.pathname = `${url.pathname}${rest}`;
  // A folder's link names it as a CAR (format=car): paths below ask for their own format.
  url.searchParams.delete('filename');
  url.searchParams.delete('format');
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.pathname + url.search;
}

const big = crypto.randomBytes(2 * MiB + 333);
const FILES = {
  'README.md': Buffer.from('# a folder\n'),
  'docs/guide.txt': Buffer.from('read me first\n'.repeat(50)),
  'docs/ünïcödé name.txt': Buffer.from('names with spaces and Unicode'),
  'data/big.bin': big,
  'data/copy of big.bin': big,
  'data/empty.txt': Buffer.alloc(0),
  'a.txt': Buffer.from('a file beside a folder a/'),
  'a/inner.txt': Buffer.from('inside a/'),
};

describe('POST /upload_file with a folder', () => {
  let ref;
  let web3;
  let link;
  before(async () => {
    ref = ipfsCarPack(FILES);
    web3 = await uploadFolder(FILES);
    link = await downloadLink(server, user.token, web3.cid);
  });

  it('gives the root CID and carCid ipfs-car gives the same folder; listed as one entry with its size and file count', async () => {
    assert.deepEqual(web3, { cid: ref.cid, carCid: ref.carCid });
    const entry = (await fileList(server, user.token)).find((f) => f.cid === ref.cid);
    assert.equal(entry.name, 'folder');
    assert.equal(entry.type, 'inode/directory');
    assert.equal(entry.files, Object.keys(FILES).length);
    const total = Object.values(FILES).reduce((n, b) => n + b.length, 0);
    assert.equal(entry.size, total);
    const single = (await fileList(server, user.token)).find((f) => f.type !== 'inode/directory');
    assert.equal(single, undefined, 'only the folder so far');
    assert.equal(new URL(link).searchParams.get('format'), 'car', 'a folder\'s download link gives it as a CAR');
  });

  it('the files in another order give the same folder (the bytes are put in ipfs-car\'s order)', async () => {
    const reversed = Object.keys(FILES).reverse();
    const again = await uploadFolder(FILES, { top: 'other-name', order: reversed });
    assert.deepEqual(again, { cid: ref.cid, carCid: ref.carCid });
    const car = await request(server, 'GET', at(await downloadLink(server, user.token, ref.cid), '', { format: 'car', 'car-order': 'unk', 'car-dups': 'y' }), { timeout: 60_000 });
    assert.ok(car.raw.equals(ref.car));
  });

  it('as a CAR: ipfs-car\'s byte for byte (order=unk; dups=y), and depth first each block once, which ipfs-car unpacks to the folder', async () => {
    const exact = await request(server, 'GET', at(link, '', { format: 'car', 'car-order': 'unk', 'car-dups': 'y' }), { timeout: 60_000 });
    assert.equal(exact.status, 200);
    assert.ok(exact.raw.equals(ref.car), 'ipfs-car\'s CAR');
    const dfs = await request(server, 'GET', at(link, '', { format: 'car' }), { timeout: 60_000 });
    assert.equal(dfs.status, 200);
    assert.equal(dfs.headers['content-type'], 'application/vnd.ipld.car; version=1; order=dfs; dups=n');
    assert.equal(dfs.headers['content-length'], String(dfs.raw.length));
    const blocks = carBlocks(dfs.raw);
    assert.equal(cidString(blocks[0].cid), ref.cid, 'the root first');
    const cids = blocks.map((b) => cidString(b.cid));
    assert.equal(new Set(cids).size, cids.length, 'no block twice');
    assert.deepEqual(new Set(cids), new Set(carBlocks(ref.car).map((b) => cidString(b.cid))), 'every block of the folder');
    for (const b of blocks) assert.ok(sha256(b.data).equals(parseCid(b.cid).digest));
    // depth first: every node before the blocks it links
    const place = new Map(cids.map((c, i) => [c, i]));
    for (const b of blocks) {
      if (parseCid(b.cid).codec !== 0x70) continue;
      for (const l of dagPb.decode(b.data).Links) assert.ok(place.get(cidString(b.cid)) < place.get(l.Hash.toString()));
    }
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-unpack-'));
    try {
      fs.writeFileSync(path.join(work, 'in.car'), dfs.raw);
      execFileSync(IPFS_CAR, ['unpack', path.join(work, 'in.car'), '--verify', '-o', path.join(work, 'out')]);
      for (const [rel, bytes] of Object.entries(FILES)) {
        assert.ok(fs.readFileSync(path.join(work, 'out', rel)).equals(bytes), `unpacked ${rel}`);
      }
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  it('each file by its path: its bytes, type and name, one byte range, HEAD; a folder\'s path or a missing one refused', async () => {
    for (const [rel, bytes] of Object.entries(FILES)) {
      const rest = `/${rel.split('/').map(encodeURIComponent).join('/')}`;
      const res = await request(server, 'GET', at(link, rest), { timeout: 60_000 });
      assert.equal(res.status, 200, `${rel}: ${res.text.slice(0, 200)}`);
      assert.ok(res.raw.equals(bytes), rel);
      assert.equal(res.headers['content-length'], String(bytes.length));
      assert.equal(res.headers['cache-control'], 'private, no-cache');
      assert.ok(res.headers['content-disposition'].includes(encodeURIComponent(path.basename(rel))), res.headers['content-disposition']);
      assert.equal(res.headers['x-ipfs-path'], `/ipfs/${ref.cid}${rest}`);
    }
    const guide = await request(server, 'GET', at(link, '/docs/guide.txt'));
    assert.match(guide.headers['content-type'], /^text\/plain/);
    const range = await request(server, 'GET', at(link, '/data/big.bin'), { headers: { range: `bytes=${MiB - 10}-${MiB + 9}` } });
    assert.equal(range.status, 206);
    assert.equal(range.headers['content-range'], `bytes ${MiB - 10}-${MiB + 9}/${big.length}`);
    assert.ok(range.raw.equals(big.subarray(MiB - 10, MiB + 10)));
    const head = await request(server, 'HEAD', at(link, '/data/big.bin'));
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(big.length));
    assertJson(await request(server, 'GET', at(link, '/docs/nope.txt')), 404, { message: 'No such path in this folder' });
    assertJson(await request(server, 'GET', at(link, '/README.md/deeper')), 404, { message: 'No such path in this folder' });
    const folderMsg = { message: 'This is a folder: ask for a file in it (/ipfs/<cid>/<path>) or for format=car' };
    assertJson(await request(server, 'GET', at(link, '/docs')), 400, folderMsg);
    assertJson(await request(server, 'GET', at(link)), 400, folderMsg);
  });

  it('a CAR of a path: the folder nodes on the way, then the file\'s DAG; a raw block at a path', async () => {
    const res = await request(server, 'GET', at(link, '/data/big.bin', { format: 'car' }), { timeout: 60_000 });
    assert.equal(res.status, 200);
    const blocks = carBlocks(res.raw);
    for (const b of blocks) assert.ok(sha256(b.data).equals(parseCid(b.cid).digest));
    assert.equal(cidString(blocks[0].cid), ref.cid, 'the root directory first');
    const data = dagPb.decode(blocks[0].data).Links.find((l) => l.Name === 'data').Hash.toString();
    assert.equal(cidString(blocks[1].cid), data, 'then data/');
    const file = dagPb.decode(blocks[1].data).Links.find((l) => l.Name === 'big.bin').Hash.toString();
    assert.equal(cidString(blocks[2].cid), file, 'then the file\'s root');
    const leaves = blocks.slice(3);
    assert.ok(Buffer.concat(leaves.map((b) => b.data)).equals(big), 'then its leaves, the file in order');
    const etags = new Set();
    for (const p of ['/data/big.bin', '/data/copy%20of%20big.bin']) {
      etags.add((await request(server, 'HEAD', at(link, p, { format: 'car' }))).headers.etag);
    }
    assert.equal(etags.size, 2, 'one ETag per path');
    const raw = await request(server, 'GET', at(link, '/docs/guide.txt', { format: 'raw' }));
    assert.ok(raw.raw.equals(FILES['docs/guide.txt']), 'a one-block file\'s raw block is its bytes');
  });
});

describe('folders past ipfs-car\'s sharding threshold, and refused uploads', () => {
  it('1,001 files in one folder: a HAMT as ipfs-car makes it; files found by path through its shards', async () => {
    const files = {};
    for (let i = 0; i < 1001; i += 1) files[`n${i}.txt`] = Buffer.from(`file ${i}\n`);
    const ref = ipfsCarPack(files, 'wide');
    const web3 = await uploadFolder(files, { top: 'wide' });
    assert.deepEqual(web3, { cid: ref.cid, carCid: ref.carCid });
    const link = await downloadLink(server, user.token, ref.cid);
    for (const i of [0, 7, 500, 1000]) {
      const res = await request(server, 'GET', at(link, `/n${i}.txt`));
      assert.equal(res.status, 200, res.text);
      assert.equal(res.text, `file ${i}\n`);
    }
    assertJson(await request(server, 'GET', at(link, '/n1001.txt')), 404, { message: 'No such path in this folder' });
    const listing = await request(server, 'GET', at(link, '', { format: 'car', 'dag-scope': 'entity' }));
    const blocks = carBlocks(listing.raw);
    assert.ok(blocks.length > 1, 'the root shard and its child shards');
    for (const b of blocks) assert.equal(dagPb.decode(b.data).Data[1], 5, 'only HAMT shards');
  });

  const cases = [
    ['a path going up', { 'x/../y.txt': 'a' }, 'Invalid file path "folder/x/../y.txt": not a relative path of a file'],
    ['an empty name in a path', { 'x//y.txt': 'a', 'z.txt': 'b' }, 'Invalid file path "folder/x//y.txt": not a relative path of a file'],
    ['a name over 255 bytes', { [`${'n'.repeat(256)}.txt`]: 'a', 'z.txt': 'b' }, `Invalid file path "${`folder/${'n'.repeat(256)}`.slice(0, 100)}": a name longer than 255 bytes`],
    // (a CAR of a deeper folder could not be walked)
    ['a path of 41 names', { [`${'d/'.repeat(39)}f.txt`]: 'a', 'z.txt': 'b' },
      `Invalid file path "${`folder/${'d/'.repeat(39)}f.txt`.slice(0, 100)}": deeper than 40 names (its folders and the file)`],
  ];
  for (const [what, files, message] of cases) {
    it(`${what} → 400, nothing stored`, async () => {
      const before = await snapshot();
      assertJson(await uploadParts(server, user.token, folderParts(files)), 400, { message });
      assert.deepEqual(await snapshot(), before);
    });
  }

  it('a path of 40 names is kept, and its folder is served as a CAR ipfs-car unpacks', async () => {
    const files = { [`${'d/'.repeat(38)}deep.txt`]: Buffer.from('40 names down'), 'top.txt': Buffer.from('beside') };
    const ref = ipfsCarPack(files, 'deep');
    const web3 = await uploadFolder(files, { top: 'deep' });
    assert.deepEqual(web3, { cid: ref.cid, carCid: ref.carCid });
    const link = await downloadLink(server, user.token, ref.cid);
    const car = await request(server, 'GET', at(link, '', { format: 'car' }));
    assert.equal(car.status, 200, car.text);
    assert.deepEqual(carBlocks(car.raw).map((b) => cidString(b.cid)).sort(), carBlocks(ref.car).map((b) => cidString(b.cid)).sort());
    const file = await request(server, 'GET', at(link, `/${'d/'.repeat(38)}deep.txt`));
    assert.equal(file.text, '40 names down');
  });

  it('a bad path is refused as its part begins, before its bytes are taken in (400, not the 413 its bytes would earn)', async () => {
    // An account with 3 MiB of room, a bad first path, then 8 MiB: were the
    // bytes taken in before the paths were checked, the answer would be 413.
    const small = await startServer({ PEERVAULT_USER_QUOTA_BYTES: 3 * MiB });
    try {
      const u = await newUserWithToken(small);
      const parts = [{ name: 'file', filename: 'top/../x.txt', data: 'x' }, { name: 'file', filename: 'top/big.bin', data: crypto.randomBytes(8 * MiB) }];
      assertJson(await uploadParts(small, u.token, parts, { timeout: 60_000 }), 400, { message: 'Invalid file path "top/../x.txt": not a relative path of a file' });
      // the same once a second part makes it a folder: its first path is checked then
      const long = 'n'.repeat(300);
      const late = [{ name: 'file', filename: long, data: 'x' }, { name: 'file', filename: 'big.bin', data: crypto.randomBytes(8 * MiB) }];
      assertJson(await uploadParts(small, u.token, late, { timeout: 60_000 }), 400, { message: `Invalid file path "${long.slice(0, 100)}": a name longer than 255 bytes` });
      assert.deepEqual(await fileList(small, u.token), []);
      assert.equal((await dashboard(small, u.token)).space_used, 0);
    } finally {
      await small.stop();
    }
  });

  it('the same path twice, or a name that is a file and a folder → 400, nothing stored', async () => {
    const before = await snapshot();
    const twice = [{ name: 'file', filename: 'f/a.txt', data: 'one' }, { name: 'file', filename: 'f/a.txt', data: 'two' }];
    assertJson(await uploadParts(server, user.token, twice), 400, { message: 'Invalid folder: "a.txt" is given twice, or is also a directory' });
    const both = [{ name: 'file', filename: 'f/a', data: 'one' }, { name: 'file', filename: 'f/a/b.txt', data: 'two' }];
    assertJson(await uploadParts(server, user.token, both), 400, { message: 'Invalid folder: "a" is a file and a directory in "a/b.txt"' });
    assert.deepEqual(await snapshot(), before);
  });

  it('a folder over the account\'s room → 413, nothing stored', async () => {
    const small = await startServer({ PEERVAULT_USER_QUOTA_BYTES: 3 * MiB });
    try {
      const u = await newUserWithToken(small);
      const parts = [0, 1, 2, 3].map((i) => ({ name: 'file', filename: `q/${i}.bin`, data: crypto.randomBytes(MiB) }));
      assertJson(await uploadParts(small, u.token, parts, { timeout: 60_000 }), 413, { message: 'Storage quota exceeded' });
      assert.deepEqual(await fileList(small, u.token), []);
      assert.equal((await dashboard(small, u.token)).space_used, 0);
    } finally {
      await small.stop();
    }
  });

  it('a shared folder: its files by path without a token, publicly cacheable; unshared, 404 again', async () => {
    const files = { 'pub/a.txt': Buffer.from('public a'), 'pub/sub/b.txt': Buffer.from('public b') };
    const web3 = await uploadFolder(files, { top: 'shared' });
    const share = (pub) => request(server, 'POST', '/share_file', { token: user.token, json: { cid: web3.cid, public: pub } });
    assert.equal((await share(true)).status, 200);
    // (the folder all files share, shared/pub, is dropped as ipfs-car drops it)
    const res = await request(server, 'GET', `/ipfs/${web3.cid}/sub/b.txt`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, 'public b');
    assert.equal(res.headers['cache-control'], 'public, max-age=29030400, immutable');
    // without a token `filename` names what is asked for; a signed link's names only its folder
    const named = await request(server, 'GET', `/ipfs/${web3.cid}/sub/b.txt?filename=chosen.html`);
    assert.match(named.headers['content-disposition'], /^attachment; filename="chosen\.html"/);
    assert.equal(named.headers['content-type'], 'text/plain', 'the type is the file\'s, whatever it is called');
    const link = await downloadLink(server, user.token, web3.cid);
    assert.equal(new URL(link).searchParams.get('filename'), 'pub');
    const signed = await request(server, 'GET', at(link, '/sub/b.txt', { filename: 'pub' }));
    assert.match(signed.headers['content-disposition'], /^attachment; filename="b\.txt"/);
    assert.equal((await share(false)).status, 200);
    assertJson(await request(server, 'GET', `/ipfs/${web3.cid}/sub/b.txt`), 404, { message: 'File not found' });
  });
});

describe('a link to one file of a folder (the folder page\'s Download)', () => {
  it('opens that path only (bytes or CAR): not the folder, another path, a folder on the way, or a block', async () => {
    const files = { 'docs/guide.txt': Buffer.from('the guide'), 'secret.txt': Buffer.from('not in the link'), 'big.bin': crypto.randomBytes(MiB + 9) };
    const ref = ipfsCarPack(files, 'scoped');
    const web3 = await uploadFolder(files, { top: 'scoped' });
    const to = await request(server, 'GET', `/files/folder/download?cid=${web3.cid}&path=docs/guide.txt`, { token: user.token });
    assert.equal(to.status, 303, to.text);
    const url = new URL(to.headers.location);
    assert.equal(url.pathname, `/ipfs/${web3.cid}/docs/guide.txt`);
    const got = await request(server, 'GET', url.pathname + url.search);
    assert.equal(got.status, 200, got.text);
    assert.equal(got.text, 'the guide');
    assert.equal((await request(server, 'GET', `${url.pathname}${url.search}&format=car`)).status, 200);
    const token = url.searchParams.get('token');
    const leaf = carBlocks(ref.car).map((b) => cidString(b.cid)).find((c) => c.startsWith('bafkrei'));
    const other = { message: 'This link is for another path in the folder' };
    for (const p of [
      `/ipfs/${web3.cid}?token=${token}&format=car`,
      `/ipfs/${web3.cid}/secret.txt?token=${token}`,
      `/ipfs/${web3.cid}/docs?token=${token}&format=car`,
      `/ipfs/${leaf}?token=${token}&format=raw`,
    ]) {
      assertJson(await request(server, 'GET', p), 403, other);
    }
    // the folder's own link still opens all of it
    const whole = await downloadLink(server, user.token, web3.cid);
    assert.equal((await request(server, 'GET', at(whole, '/secret.txt'))).text, 'not in the link');
  });
});
