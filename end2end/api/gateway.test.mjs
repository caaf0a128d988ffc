// Open retrieval (issue 14): the trustless gateway (its probe and identity
// CIDs, raw blocks of any block of a stored DAG, CAR responses with
// dag-scope, entity-bytes, car-version/order/dups by query or Accept) and
// share links (POST /share_file: content served to anyone at /ipfs/<cid>,
// every block of its DAG too). Over HTTP against the release build; blocks
// and CARs are compared with ipfs-car's, DAGs read with @ipld/dag-pb.
// Runs on SQLite + local files and on PostgreSQL + S3.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as dagPb from '@ipld/dag-pb';
import {
  startServer, request, assertJson, newUserWithToken, uploadFile, downloadLink, dashboard, ipfsCarCids,
  carBlocks, cidString, cidBytes, parseCid, REPO_ROOT, onPostgres, uniqueIp,
} from './harness.mjs';

const MiB = 1024 * 1024;
const RAW = 'application/vnd.ipld.raw';
const IMMUTABLE = 'public, max-age=29030400, immutable';
const FORBIDDEN = { message: 'Download link is invalid or has expired' };
const NOT_FOUND = { message: 'File not found' };
const CAR = (order, dups) => `application/vnd.ipld.car; version=1; order=${order}; dups=${dups}`;
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest();

let server;
let alice;
let bob;

before(async () => {
  server = await startServer();
  alice = await newUserWithToken(server);
  bob = await newUserWithToken(server);
});

after(async () => {
  await server?.stop();
});

/** The path of a gateway URL for `cid` with the link's token and `params`. */
function gatewayPath(link, cid, params = {}) {
  const url = new URL(link);
  url.pathname = `/ipfs/${cid}`;
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.pathname + url.search;
}

describe('the probe and identity CIDs', () => {
  it('/ipfs/bafkqaaa answers 200 and nothing, to anyone, cacheable; GET and HEAD, bytes, raw and CAR', async () => {
    for (const method of ['GET', 'HEAD']) {
      const res = await request(server, method, '/ipfs/bafkqaaa');
      assert.equal(res.status, 200, `${method}: ${res.text}`);
      assert.equal(res.headers['content-length'], '0');
      assert.equal(res.raw.length, 0);
      assert.equal(res.headers['cache-control'], IMMUTABLE);
      assert.equal(res.headers['x-ipfs-path'], '/ipfs/bafkqaaa');
    }
    const raw = await request(server, 'GET', '/ipfs/bafkqaaa?format=raw');
    assert.equal(raw.status, 200);
    assert.equal(raw.headers['content-type'], RAW);
    assert.equal(raw.headers.etag, '"bafkqaaa.raw"');
    const byAccept = await request(server, 'GET', '/ipfs/bafkqaaa', { headers: { accept: RAW } });
    assert.equal(byAccept.headers['content-type'], RAW);
    // As a CAR: a header naming it, and no block (identity blocks are never put in a CAR).
    const car = await request(server, 'GET', '/ipfs/bafkqaaa?format=car');
    assert.equal(car.status, 200);
    assert.match(car.headers['content-type'], /^application\/vnd\.ipld\.car; version=1/);
    assert.deepEqual(carBlocks(car.raw), []);
    const cbor = Buffer.concat([
      Buffer.from([0xa2, 0x65]), Buffer.from('roots'), Buffer.from([0x81, 0xd8, 0x2a, 0x45, 0x00, 0x01, 0x55, 0x00, 0x00, 0x67]),
      Buffer.from('version'), Buffer.from([0x01]),
    ]);
    assert.ok(car.raw.equals(Buffer.concat([Buffer.from([cbor.length]), cbor])), 'the CAR header of bafkqaaa');
  });

  it('an identity CID with bytes serves them; a bad format is 400', async () => {
    const hello = cidString(Buffer.concat([Buffer.from([0x01, 0x55, 0x00, 5]), Buffer.from('hello')]));
    assert.equal(hello, 'bafkqablimvwgy3y');
    const res = await request(server, 'GET', `/ipfs/${hello}?format=raw`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'hello');
    assertJson(await request(server, 'GET', '/ipfs/bafkqaaa?format=zip'), 400, { message: 'Unsupported format "zip": use car or raw' });
  });
});

describe('raw blocks of a stored DAG', () => {
  it('a file\'s link opens every block of its DAG raw: ipfs-car\'s blocks, byte for byte, each with its headers', async () => {
    const bytes = crypto.randomBytes(3 * MiB + 12345);
    const ref = ipfsCarCids(bytes);
    assert.deepEqual(await uploadFile(server, alice.token, bytes, { filename: 'blocks.bin' }), { cid: ref.cid, carCid: ref.carCid });
    const link = await downloadLink(server, alice.token, ref.cid);
    const blocks = carBlocks(ref.car);
    assert.equal(blocks.length, 5, 'four leaves and the root');
    const before = (await dashboard(server, alice.token)).data_downloaded;
    let served = 0;
    for (const block of blocks) {
      const cid = cidString(block.cid);
      const path = gatewayPath(link, cid, { format: 'raw' });
      const res = await request(server, 'GET', path, { timeout: 60_000 });
      assert.equal(res.status, 200, `${cid}: ${res.text.slice(0, 200)}`);
      assert.ok(res.raw.equals(block.data), `the bytes of ${cid}`);
      assert.ok(sha256(res.raw).equals(parseCid(block.cid).digest), `${cid} verifies`);
      assert.equal(res.headers['content-type'], RAW);
      assert.equal(res.headers['content-length'], String(block.data.length));
      assert.equal(res.headers['x-ipfs-path'], `/ipfs/${cid}`);
      if (cid !== ref.cid) {
        assert.equal(res.headers.etag, `"${cid}.raw"`);
        assert.match(res.headers['content-disposition'], new RegExp(`^attachment; filename="${cid}\\.bin"`));
      }
      assert.equal(res.headers['cache-control'], 'private, no-cache', 'private content is never publicly cacheable');
      const head = await request(server, 'HEAD', path);
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String(block.data.length));
      assert.equal(head.raw.length, 0);
      served += block.data.length;
    }
    const after = (await dashboard(server, alice.token)).data_downloaded;
    assert.equal(after - before, served, 'the blocks served count to the owner\'s downloads');
  });

  it('a block of another DAG is 404; a block as bytes, a forged link: 403; no link: 404; nothing is counted', async () => {
    const mine = crypto.randomBytes(2 * MiB + 7);
    const theirs = crypto.randomBytes(2 * MiB + 9);
    const refMine = ipfsCarCids(mine);
    const refTheirs = ipfsCarCids(theirs);
    await uploadFile(server, alice.token, mine, { filename: 'mine.bin' });
    await uploadFile(server, bob.token, theirs, { filename: 'theirs.bin' });
    const link = await downloadLink(server, alice.token, refMine.cid);
    const leaf = cidString(carBlocks(refMine.car)[0].cid);
    const foreign = cidString(carBlocks(refTheirs.car)[0].cid);
    const before = (await dashboard(server, alice.token)).data_downloaded;
    // a block of bob's file, with alice's link: not in her file's DAG
    assertJson(await request(server, 'GET', gatewayPath(link, foreign, { format: 'raw' })), 404, { message: 'Block not found' });
    assertJson(await request(server, 'GET', gatewayPath(link, refTheirs.cid, { format: 'raw' })), 404, { message: 'Block not found' });
    assertJson(await request(server, 'GET', gatewayPath(link, foreign, { format: 'car' })), 404, { message: 'Block not found' });
    // a block's bytes: the link opens only its file's root as a file
    assertJson(await request(server, 'GET', gatewayPath(link, leaf)), 403, FORBIDDEN);
    // no token: private content is not told from unknown content; a forged one
    assertJson(await request(server, 'GET', `/ipfs/${leaf}?format=raw`), 404, NOT_FOUND);
    assertJson(await request(server, 'GET', `/ipfs/${refMine.cid}`), 404, NOT_FOUND);
    const forged = gatewayPath(link, leaf, { format: 'raw', token: `${new URL(link).searchParams.get('token')}x` });
    assertJson(await request(server, 'GET', forged), 403, FORBIDDEN);
    assert.equal((await dashboard(server, alice.token)).data_downloaded, before, 'nothing counted');
  });
});

describe('share links', () => {
  let limited; // 5 requests per shared file per throttle window, 3 per client
  before(async () => {
    limited = await startServer({ PEERVAULT_SHARE_REQUESTS_PER_WINDOW: 5, PEERVAULT_SHARE_REQUESTS_PER_CLIENT: 3 });
  });
  after(async () => {
    await limited?.stop();
  });

  const share = (srv, token, json) => request(srv, 'POST', '/share_file', { token, json });

  it('shared, a file is served to anyone at /ipfs/<cid>, publicly cacheable and counted to its owner; unshared, at once only links open it', async () => {
    const bytes = crypto.randomBytes(2 * MiB + 3);
    const ref = ipfsCarCids(bytes);
    await uploadFile(server, alice.token, bytes, { filename: 'shared.bin', type: 'application/x-shared' });
    assertJson(await request(server, 'GET', `/ipfs/${ref.cid}`), 404, NOT_FOUND);
    const on = await share(server, alice.token, { cid: ref.cid, public: true });
    assertJson(on, 200, { cid: ref.cid, public: true, url: `${server.base}/ipfs/${ref.cid}` });
    const before = (await dashboard(server, alice.token)).data_downloaded;
    const got = await request(server, 'GET', `/ipfs/${ref.cid}`, { timeout: 60_000 });
    assert.equal(got.status, 200);
    assert.ok(got.raw.equals(bytes));
    assert.equal(got.headers['cache-control'], IMMUTABLE);
    assert.equal(got.headers['content-type'], 'application/x-shared');
    assert.match(got.headers['content-disposition'], /filename="shared\.bin"/);
    const head = await request(server, 'HEAD', `/ipfs/${ref.cid}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(bytes.length));
    const car = await request(server, 'GET', `/ipfs/${ref.cid}?format=car&car-order=unk&car-dups=y`, { timeout: 60_000 });
    assert.ok(car.raw.equals(ref.car), 'the CAR ipfs-car writes');
    assert.equal(car.headers['cache-control'], IMMUTABLE);
    assert.match(car.headers['content-disposition'], new RegExp(`^attachment; filename="${ref.cid}\\.car"`));
    // every block of its DAG, by itself, raw, to anyone
    let blockBytes = 0;
    for (const block of carBlocks(ref.car)) {
      const res = await request(server, 'GET', `/ipfs/${cidString(block.cid)}`, { headers: { accept: RAW } });
      assert.equal(res.status, 200, res.text.slice(0, 200));
      assert.ok(res.raw.equals(block.data));
      assert.equal(res.headers['cache-control'], IMMUTABLE);
      assert.equal(res.headers['content-location'], `/ipfs/${cidString(block.cid)}?format=raw`);
      blockBytes += block.data.length;
    }
    const after = (await dashboard(server, alice.token)).data_downloaded;
    assert.equal(after - before, bytes.length + ref.car.length + blockBytes, 'what anyone downloaded counts to the owner');

    const off = await share(server, alice.token, { cid: ref.cid, public: false });
    assertJson(off, 200, { cid: ref.cid, public: false });
    assertJson(await request(server, 'GET', `/ipfs/${ref.cid}`), 404, NOT_FOUND);
    const leaf = cidString(carBlocks(ref.car)[0].cid);
    assertJson(await request(server, 'GET', `/ipfs/${leaf}?format=raw`), 404, NOT_FOUND);
    const link = await downloadLink(server, alice.token, ref.cid);
    const private_ = await request(server, 'GET', gatewayPath(link, ref.cid), { timeout: 60_000 });
    assert.equal(private_.status, 200);
    assert.equal(private_.headers['cache-control'], 'private, no-cache', 'a signed link never answers with public cache headers');
  });

  it('content shared before its blocks were recorded (an upgraded database) has them recorded at start-up', async () => {
    const srv = await startServer({}, { keepDataDir: true });
    let again;
    try {
      const user = await newUserWithToken(srv);
      const bytes = crypto.randomBytes(2 * MiB + 11);
      const ref = ipfsCarCids(bytes);
      await uploadFile(srv, user.token, bytes, { filename: 'old-share.bin' });
      assert.equal((await share(srv, user.token, { cid: ref.cid, public: true })).status, 200);
      const leaf = cidString(carBlocks(ref.car)[1].cid);
      assert.equal((await request(srv, 'GET', `/ipfs/${leaf}?format=raw`)).status, 200);
      await srv.stop();
      // as a database from before migration 0015 would be: shared, no blocks recorded
      const sql = 'DELETE FROM dag_blocks';
      if (onPostgres) execFileSync('psql', [srv.databaseUrl, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
      else execFileSync('sqlite3', [path.join(srv.dataDir, 'peervault.db'), sql]);
      again = await startServer({ PEERVAULT_JWT_SECRET: srv.secret }, { dataDir: srv.dataDir });
      let res;
      for (let i = 0; i < 50; i += 1) {
        res = await request(again, 'GET', `/ipfs/${leaf}?format=raw`);
        if (res.status === 200) break;
        await new Promise((r) => { setTimeout(r, 100); });
      }
      assert.equal(res.status, 200, res.text);
      assert.ok(res.raw.equals(carBlocks(ref.car)[1].data));
    } finally {
      await again?.stop();
      fs.rmSync(srv.dataDir, { recursive: true, force: true });
    }
  });

  it('bad requests are refused with their message and share nothing', async () => {
    const bytes = crypto.randomBytes(1000);
    const ref = ipfsCarCids(bytes);
    await uploadFile(server, alice.token, bytes, { filename: 'private.bin' });
    assertJson(await share(server, undefined, { cid: ref.cid, public: true }), 401, { message: 'Token is missing' });
    assertJson(await share(server, alice.token, { public: true }), 400, { message: 'Missing cid field in request body' });
    assertJson(await share(server, alice.token, { cid: 'nope', public: true }), 400, { message: 'Invalid CID: not a valid CID' });
    assertJson(await share(server, alice.token, { cid: ref.cid }), 400, { message: 'Missing public field in request body' });
    assertJson(await share(server, alice.token, { cid: ref.cid, public: 'yes' }), 400, { message: 'public must be true or false' });
    assertJson(await share(server, alice.token, { cid: ref.cid, public: 1 }), 400, { message: 'public must be true or false' });
    // bob does not store it: he cannot share alice's file
    assertJson(await share(server, bob.token, { cid: ref.cid, public: true }), 404, { message: 'File not found' });
    assertJson(await request(server, 'GET', `/ipfs/${ref.cid}`), 404, NOT_FOUND);
  });

  it('sharing is of the content: another account\'s file of the same bytes keeps its name and type private', async () => {
    const bytes = crypto.randomBytes(5000);
    const ref = ipfsCarCids(bytes);
    await uploadFile(server, bob.token, bytes, { filename: 'bob-diary.txt', type: 'text/plain' });
    await uploadFile(server, alice.token, bytes, { filename: 'alice-copy.bin', type: 'application/x-alice' });
    await share(server, alice.token, { cid: ref.cid, public: true });
    const got = await request(server, 'GET', `/ipfs/${ref.cid}`);
    assert.equal(got.status, 200);
    assert.ok(got.raw.equals(bytes));
    assert.match(got.headers['content-disposition'], /alice-copy\.bin/);
    assert.equal(got.headers['content-type'], 'application/x-alice');
    assert.ok(!JSON.stringify(got.headers).includes('bob-diary'), 'bob\'s file name never shows');
    const bobBefore = (await dashboard(server, bob.token)).data_downloaded;
    await request(server, 'GET', `/ipfs/${ref.cid}`);
    assert.equal((await dashboard(server, bob.token)).data_downloaded, bobBefore, 'nothing counted to bob');
    // alice stops sharing: bob's private file of the same content is not served
    await share(server, alice.token, { cid: ref.cid, public: false });
    assertJson(await request(server, 'GET', `/ipfs/${ref.cid}`), 404, NOT_FOUND);
  });

  it('a shared file answers a bounded number of requests per window, per client and in all (429 past them, nothing counted); links go on', async () => {
    const user = await newUserWithToken(limited);
    const bytes = crypto.randomBytes(4000);
    const ref = ipfsCarCids(bytes);
    await uploadFile(limited, user.token, bytes, { filename: 'popular.bin' });
    await share(limited, user.token, { cid: ref.cid, public: true });
    const from = (localAddress, path = `/ipfs/${ref.cid}`) => request(limited, 'GET', path, { localAddress });
    const [a, b, c, d] = [uniqueIp(), uniqueIp(), uniqueIp(), uniqueIp()];
    for (let i = 0; i < 3; i += 1) assert.equal((await from(a)).status, 200);
    const before = (await dashboard(limited, user.token)).data_downloaded;
    // one client past its 3: refused, by CID, by block or as a CAR, and takes nothing from the others
    for (const path of [`/ipfs/${ref.cid}`, `/ipfs/${ref.cid}?format=car`, `/ipfs/${cidString(carBlocks(ref.car)[0].cid)}?format=raw`]) {
      for (let i = 0; i < 3; i += 1) assertJson(await from(a, path), 429, { message: 'You asked for this shared file too often: try again later' });
    }
    assert.equal((await from(b)).status, 200);
    assert.equal((await from(c)).status, 200);
    // 5 in all: everyone is refused now
    assertJson(await from(d), 429, { message: 'This shared file is asked for too often: try again later' });
    assert.equal((await dashboard(limited, user.token)).data_downloaded, before + 2 * bytes.length);
    const link = await downloadLink(limited, user.token, ref.cid);
    assert.equal((await request(limited, 'GET', gatewayPath(link, ref.cid))).status, 200, 'the owner\'s links are not limited');
  });

  it('one client may still fetch a shared DAG block by block twice, whatever its per-client budget; a third time it is refused', async () => {
    const srv = await startServer({ PEERVAULT_SHARE_REQUESTS_PER_CLIENT: 3 });
    try {
      const user = await newUserWithToken(srv);
      const bytes = crypto.randomBytes(5 * MiB);
      const ref = ipfsCarCids(bytes);
      await uploadFile(srv, user.token, bytes, { filename: 'five.bin' });
      assert.equal((await share(srv, user.token, { cid: ref.cid, public: true })).status, 200);
      const blocks = carBlocks(ref.car).map((b) => cidString(b.cid));
      assert.equal(blocks.length, 6, 'five leaves and the root');
      const a = uniqueIp();
      for (let pass = 0; pass < 2; pass += 1) {
        for (const block of blocks) {
          const res = await request(srv, 'GET', `/ipfs/${block}?format=raw`, { localAddress: a });
          assert.equal(res.status, 200, `pass ${pass + 1}, ${block}: ${res.text.slice(0, 100)}`);
        }
      }
      assertJson(await request(srv, 'GET', `/ipfs/${blocks[0]}?format=raw`, { localAddress: a }), 429,
        { message: 'You asked for this shared file too often: try again later' });
      assert.equal((await request(srv, 'GET', `/ipfs/${blocks[0]}?format=raw`, { localAddress: uniqueIp() })).status, 200);
    } finally {
      await srv.stop();
    }
  });
});

// --- CAR responses --------------------------------------------------------

/** The DAG of an ipfs-car CAR: blocks by CID string, links, content lengths. */
function dagOf(car) {
  const blocks = new Map();
  for (const b of carBlocks(car)) blocks.set(cidString(b.cid), b.data);
  const links = (cid) => (parseCid(cidBytes(cid)).codec === 0x70 ? dagPb.decode(blocks.get(cid)).Links.map((l) => l.Hash.toString()) : []);
  const lengths = new Map();
  const lengthOf = (cid) => {
    if (!lengths.has(cid)) {
      const children = links(cid);
      lengths.set(cid, children.length === 0 ? blocks.get(cid).length : children.reduce((n, c) => n + lengthOf(c), 0));
    }
    return lengths.get(cid);
  };
  return { blocks, links, lengthOf };
}

/**
 * What the trustless gateway spec asks a CAR of `start` to hold, in order:
 * depth first, each node before its children; with a byte range only what
 * covers it; without dups each block once. [cid strings]
 */
function expectedWalk(dag, start, { dups = false, range = null, scope = 'all' } = {}) {
  const out = [];
  const seen = new Set();
  const emit = (cid) => {
    if (dups || !seen.has(cid)) out.push(cid);
    seen.add(cid);
  };
  if (scope === 'block') return [start];
  const walk = (cid, base) => {
    emit(cid);
    let offset = base;
    for (const child of dag.links(cid)) {
      const len = dag.lengthOf(child);
      const meets = range === null || (len > 0 && offset <= range[1] && offset + len > range[0]);
      if (meets) {
        if (dag.links(child).length === 0) emit(child);
        else walk(child, offset);
      }
      offset += len;
    }
  };
  walk(start, 0);
  return out;
}

const served = (car) => carBlocks(car).map((b) => cidString(b.cid));

/** The bytes `ipfs-car unpack --verify` restores from a CAR (throws if it does not verify). */
function unpack(car) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-unpack-'));
  try {
    fs.writeFileSync(path.join(dir, 'in.car'), car);
    execFileSync(path.join(REPO_ROOT, 'node_modules/.bin/ipfs-car'), ['unpack', path.join(dir, 'in.car'), '--verify', '-o', path.join(dir, 'out')]);
    return fs.readFileSync(path.join(dir, 'out'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('CAR responses (trustless gateway)', () => {
  // 5 MiB + a bit: two identical 1 MiB chunks of zeros, then random bytes; six leaves under one root.
  const bytes = Buffer.concat([Buffer.alloc(2 * MiB), crypto.randomBytes(3 * MiB + 4321)]);
  let ref;
  let dag;
  let link;
  before(async () => {
    ref = ipfsCarCids(bytes);
    dag = dagOf(ref.car);
    await uploadFile(server, alice.token, bytes, { filename: 'car.bin' });
    link = await downloadLink(server, alice.token, ref.cid);
  });
  const get = (params, opts = {}) => request(server, opts.method ?? 'GET', gatewayPath(link, ref.cid, params), { timeout: 60_000, ...opts });

  it('by default: the whole DAG depth first, each block once, order=dfs; dups=n; ipfs-car unpacks it to the file', async () => {
    const res = await get({ format: 'car' });
    assert.equal(res.status, 200, res.text.slice(0, 200));
    assert.equal(res.headers['content-type'], CAR('dfs', 'n'));
    assert.equal(res.headers.etag, `"${ref.cid}.car.all.dfs.n"`);
    assert.equal(res.headers['accept-ranges'], 'none');
    assert.equal(res.headers['content-length'], String(res.raw.length));
    assert.match(res.headers['content-disposition'], /^attachment; filename="car\.bin\.car"/);
    assert.equal(res.headers['content-location'], undefined, 'nothing came from Accept');
    const cids = served(res.raw);
    assert.deepEqual(cids, expectedWalk(dag, ref.cid));
    assert.equal(cids[0], ref.cid, 'the root first');
    assert.equal(new Set(cids).size, cids.length, 'no block twice');
    assert.equal(cids.length, dag.blocks.size, 'every block of the DAG');
    assert.ok(cids.length < carBlocks(ref.car).length, 'the repeated chunk is sent once');
    for (const b of carBlocks(res.raw)) assert.ok(sha256(b.data).equals(parseCid(b.cid).digest), 'each block verifies');
    assert.ok(unpack(res.raw).equals(bytes), 'ipfs-car unpack --verify restores the file');
    const head = await get({ format: 'car' }, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(res.raw.length));
    assert.equal(head.headers.etag, res.headers.etag);
  });

  it('car-dups=y sends a repeated block every time; car-order=unk with dups=y is ipfs-car\'s CAR byte for byte', async () => {
    const dups = await get({ format: 'car', 'car-dups': 'y' });
    assert.equal(dups.headers['content-type'], CAR('dfs', 'y'));
    assert.equal(dups.headers.etag, `"${ref.cid}.car.all.dfs.y"`);
    assert.deepEqual(served(dups.raw), expectedWalk(dag, ref.cid, { dups: true }));
    assert.equal(served(dups.raw).length, carBlocks(ref.car).length, 'as many blocks as ipfs-car writes');
    const ipfsCar = await get({ format: 'car', 'car-order': 'unk', 'car-dups': 'y' });
    assert.equal(ipfsCar.headers['content-type'], CAR('unk', 'y'));
    assert.equal(ipfsCar.headers.etag, `"${ref.cid}.car.all.unk.y"`);
    assert.ok(ipfsCar.raw.equals(ref.car), 'ipfs-car\'s CAR');
    // unk without dups: any order will do, so depth-first, and said so
    const unk = await get({ format: 'car', 'car-order': 'unk' });
    assert.equal(unk.headers['content-type'], CAR('dfs', 'n'));
    assert.deepEqual(served(unk.raw), expectedWalk(dag, ref.cid));
  });

  it('dag-scope: block is the root alone, entity and all the file\'s DAG; each scope its own ETag', async () => {
    const block = await get({ format: 'car', 'dag-scope': 'block' });
    assert.equal(block.status, 200);
    assert.deepEqual(served(block.raw), [ref.cid]);
    assert.equal(block.headers.etag, `"${ref.cid}.car.block.dfs.n"`);
    const entity = await get({ format: 'car', 'dag-scope': 'entity' });
    assert.deepEqual(served(entity.raw), expectedWalk(dag, ref.cid));
    assert.equal(entity.headers.etag, `"${ref.cid}.car.entity.dfs.n"`);
    const all = await get({ format: 'car', 'dag-scope': 'all' });
    assert.ok(all.raw.equals(entity.raw));
    const etags = new Set([block, entity, all].map((r) => r.headers.etag).concat([
      (await get({ format: 'raw' })).headers.etag, (await get({})).headers.etag]));
    assert.equal(etags.size, 5, 'one ETag per format and scope');
    // a conditional request for one variant is not answered with another's
    assert.equal((await get({ format: 'car', 'dag-scope': 'block' }, { headers: { 'if-none-match': block.headers.etag } })).status, 304);
    assert.equal((await get({ format: 'car' }, { headers: { 'if-none-match': block.headers.etag } })).status, 200);
  });

  it('entity-bytes: only the blocks that verify the range, from either end; past the end 400; empty is the root alone', async () => {
    const size = bytes.length;
    const cases = [
      ['0:*', [0, size - 1]],
      [`${MiB + 5}:${2 * MiB}`, [MiB + 5, 2 * MiB]],
      ['-10:*', [size - 10, size - 1]],
      [`499:-${MiB}`, [499, size - MiB]],
      ['-99999999:3', [0, 3]],
      [`${3 * MiB}:99999999999`, [3 * MiB, size - 1]],
    ];
    for (const [param, range] of cases) {
      const res = await get({ format: 'car', 'entity-bytes': param });
      assert.equal(res.status, 200, `${param}: ${res.text.slice(0, 200)}`);
      assert.equal(res.headers['content-type'], CAR('dfs', 'n'));
      assert.equal(res.headers.etag, `"${ref.cid}.car.entity.dfs.n.${param}"`);
      assert.deepEqual(served(res.raw), expectedWalk(dag, ref.cid, { range }), param);
      const head = await get({ format: 'car', 'entity-bytes': param }, { method: 'HEAD' });
      assert.equal(head.headers['content-length'], String(res.raw.length), `HEAD ${param}`);
    }
    const partial = await get({ format: 'car', 'entity-bytes': `${MiB + 5}:${2 * MiB}` });
    assert.equal(served(partial.raw).length, 1 + 2, 'the root and the two leaves the range touches');
    for (const empty of ['10:5', `0:-${size + 5}`]) {
      const res = await get({ format: 'car', 'entity-bytes': empty });
      assert.deepEqual(served(res.raw), [ref.cid], `${empty}: the root block alone`);
    }
    assertJson(await get({ format: 'car', 'entity-bytes': `${size}:*` }), 400, { message: 'entity-bytes starts past the end of the file' });
    for (const bad of ['abc', '1', '1:2:3', ':5', '5:', '*:5', '1.5:2']) {
      assertJson(await get({ format: 'car', 'entity-bytes': bad }), 400, { message: `Invalid entity-bytes ${JSON.stringify(bad)}: use from:to (integers, to may be *)` });
    }
  });

  it('Accept: the CAR parameters it names, query parameters first, and Content-Location naming the variant served', async () => {
    const accept = 'application/vnd.ipld.car; version=1; order=dfs; dups=y';
    const byAccept = await get({}, { headers: { accept } });
    assert.equal(byAccept.status, 200);
    assert.equal(byAccept.headers['content-type'], CAR('dfs', 'y'));
    const location = new URL(byAccept.headers['content-location'], server.base);
    assert.equal(location.pathname, `/ipfs/${ref.cid}`);
    assert.equal(location.searchParams.get('format'), 'car');
    assert.equal(location.searchParams.get('car-version'), '1');
    assert.equal(location.searchParams.get('car-order'), 'dfs');
    assert.equal(location.searchParams.get('car-dups'), 'y');
    assert.equal(location.searchParams.get('token'), new URL(link).searchParams.get('token'));
    // the Content-Location serves the same bytes
    const again = await request(server, 'GET', location.pathname + location.search, { timeout: 60_000 });
    assert.ok(again.raw.equals(byAccept.raw));
    assert.equal(again.headers.etag, byAccept.headers.etag);
    // query beats Accept
    const query = await get({ format: 'car', 'car-dups': 'n' }, { headers: { accept } });
    assert.equal(query.headers['content-type'], CAR('dfs', 'n'));
    const q = new URL(query.headers['content-location'], server.base).searchParams;
    assert.deepEqual(q.getAll('car-dups'), ['n']);
    assert.equal(q.get('car-order'), 'dfs');
    // several choices: the best the gateway can give
    const choice = await get({}, { headers: { accept: 'application/vnd.ipld.car; order=foo, application/vnd.ipld.car; order=unk; dups=y; q=0.5' } });
    assert.equal(choice.headers['content-type'], CAR('unk', 'y'));
    assert.ok(choice.raw.equals(ref.car));
    assertJson(await get({}, { headers: { accept: 'application/vnd.ipld.car; order=foo' } }), 406,
      { message: 'Not Acceptable: this gateway gives CARs of version 1, order dfs or unk, dups y or n' });
    assertJson(await get({}, { headers: { accept: 'application/vnd.ipld.car; version=2' } }), 406,
      { message: 'Not Acceptable: this gateway gives CARs of version 1, order dfs or unk, dups y or n' });
    // an explicit format is never turned into a 406 by Accept: it only adds what it can
    const raw = await get({ format: 'raw' }, { headers: { accept: 'application/vnd.ipld.car; version=2' } });
    assert.equal(raw.status, 200, raw.text);
    assert.equal(raw.headers['content-type'], RAW);
    assert.ok(raw.raw.equals(carBlocks(ref.car).find((b) => cidString(b.cid) === ref.cid).data));
    const car = await get({ format: 'car' }, { headers: { accept: 'application/vnd.ipld.car; order=foo' } });
    assert.equal(car.status, 200, car.text);
    assert.equal(car.headers['content-type'], CAR('dfs', 'n'));
  });

  it('unsupported parameters are 400 with their message; nothing is counted', async () => {
    const before = (await dashboard(server, alice.token)).data_downloaded;
    const cases = [
      [{ 'car-version': '2' }, 'Unsupported car-version "2": use 1'],
      [{ 'car-order': 'bfs' }, 'Unsupported car-order "bfs": use dfs or unk'],
      [{ 'car-dups': 'maybe' }, 'Unsupported car-dups "maybe": use y or n'],
      [{ 'dag-scope': 'everything' }, 'Unsupported dag-scope "everything": use block, entity or all'],
    ];
    for (const [params, message] of cases) {
      assertJson(await get({ format: 'car', ...params }), 400, { message });
    }
    // an empty parameter is as if absent
    const empty = await get({ format: 'car', 'car-order': '', 'car-dups': '', 'dag-scope': '', 'entity-bytes': '', 'car-version': '' }, { method: 'HEAD' });
    assert.equal(empty.status, 200);
    assert.equal(empty.headers['content-type'], CAR('dfs', 'n'));
    assert.equal((await dashboard(server, alice.token)).data_downloaded, before);
  });

  it('any block of the DAG as a CAR of its own sub-DAG; a raw leaf is its own entity', async () => {
    const inner = [...dag.blocks.keys()].find((c) => c !== ref.cid && dag.links(c).length === 0);
    const res = await request(server, 'GET', gatewayPath(link, inner, { format: 'car' }));
    assert.equal(res.status, 200);
    assert.deepEqual(served(res.raw), [inner]);
    assert.equal(res.headers['x-ipfs-path'], `/ipfs/${inner}`);
    assert.match(res.headers['content-disposition'], new RegExp(`^attachment; filename="${inner}\\.car"`));
    assertJson(await request(server, 'GET', gatewayPath(link, inner, { format: 'car', 'entity-bytes': `${MiB}:*` })), 400,
      { message: 'entity-bytes starts past the end of the file' });
  });

  it('an unknown root is 404 (412 with only-if-cached), with or without a format', async () => {
    const unknown = ipfsCarCids(crypto.randomBytes(100)).cid;
    for (const format of [undefined, 'raw', 'car']) {
      const q = format ? `?format=${format}` : '';
      assertJson(await request(server, 'GET', `/ipfs/${unknown}${q}`), 404, NOT_FOUND);
      assert.equal((await request(server, 'HEAD', `/ipfs/${unknown}${q}`)).status, 404);
    }
    assertJson(await request(server, 'GET', `/ipfs/${unknown}?format=raw`, { headers: { 'cache-control': 'only-if-cached' } }), 412,
      { message: 'Not in this gateway\'s store' });
  });
});
