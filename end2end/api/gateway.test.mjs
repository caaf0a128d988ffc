// Open retrieval (issue 14), first parts: the trustless gateway's probe and
// identity CIDs, raw blocks of any block of a stored DAG, and share links
// (POST /share_file: a file served to anyone at /ipfs/<cid>). Over HTTP
// against the release build; blocks and CARs are compared with ipfs-car's.
// Runs on SQLite + local files and on PostgreSQL + S3.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, request, assertJson, newUserWithToken, uploadFile, downloadLink, dashboard, ipfsCarCids,
  carBlocks, cidString, parseCid,
} from './harness.mjs';

const MiB = 1024 * 1024;
const RAW = 'application/vnd.ipld.raw';
const IMMUTABLE = 'public, max-age=29030400, immutable';
const FORBIDDEN = { message: 'Download link is invalid or has expired' };
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

  it('a block of another DAG is 404; a block as bytes or CAR, no link, a forged link: 403; nothing is counted', async () => {
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
    // a block in any other format than raw: the link opens only its file's root
    assertJson(await request(server, 'GET', gatewayPath(link, leaf)), 403, FORBIDDEN);
    assertJson(await request(server, 'GET', gatewayPath(link, leaf, { format: 'car' })), 403, FORBIDDEN);
    // no token, a forged one
    assertJson(await request(server, 'GET', `/ipfs/${leaf}?format=raw`), 403, FORBIDDEN);
    const forged = gatewayPath(link, leaf, { format: 'raw', token: `${new URL(link).searchParams.get('token')}x` });
    assertJson(await request(server, 'GET', forged), 403, FORBIDDEN);
    assert.equal((await dashboard(server, alice.token)).data_downloaded, before, 'nothing counted');
  });
});

describe('share links', () => {
  let limited; // 3 requests per shared file per throttle window
  before(async () => {
    limited = await startServer({ PEERVAULT_SHARE_REQUESTS_PER_WINDOW: 3 });
  });
  after(async () => {
    await limited?.stop();
  });

  const share = (srv, token, json) => request(srv, 'POST', '/share_file', { token, json });

  it('shared, a file is served to anyone at /ipfs/<cid>, publicly cacheable and counted to its owner; unshared, at once only links open it', async () => {
    const bytes = crypto.randomBytes(2 * MiB + 3);
    const ref = ipfsCarCids(bytes);
    await uploadFile(server, alice.token, bytes, { filename: 'shared.bin', type: 'application/x-shared' });
    assertJson(await request(server, 'GET', `/ipfs/${ref.cid}`), 403, FORBIDDEN);
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
    const car = await request(server, 'GET', `/ipfs/${ref.cid}?format=car`, { timeout: 60_000 });
    assert.ok(car.raw.equals(ref.car), 'the CAR ipfs-car writes');
    assert.equal(car.headers['cache-control'], IMMUTABLE);
    const after = (await dashboard(server, alice.token)).data_downloaded;
    assert.equal(after - before, bytes.length + ref.car.length, 'what anyone downloaded counts to the owner');

    const off = await share(server, alice.token, { cid: ref.cid, public: false });
    assertJson(off, 200, { cid: ref.cid, public: false });
    assertJson(await request(server, 'GET', `/ipfs/${ref.cid}`), 403, FORBIDDEN);
    const link = await downloadLink(server, alice.token, ref.cid);
    const private_ = await request(server, 'GET', gatewayPath(link, ref.cid), { timeout: 60_000 });
    assert.equal(private_.status, 200);
    assert.equal(private_.headers['cache-control'], 'private, no-cache', 'a signed link never answers with public cache headers');
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
    assertJson(await request(server, 'GET', `/ipfs/${ref.cid}`), 403, FORBIDDEN);
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
    assertJson(await request(server, 'GET', `/ipfs/${ref.cid}`), 403, FORBIDDEN);
  });

  it('a shared file answers a bounded number of requests per window (429 past it, nothing counted); links go on', async () => {
    const user = await newUserWithToken(limited);
    const bytes = crypto.randomBytes(4000);
    const ref = ipfsCarCids(bytes);
    await uploadFile(limited, user.token, bytes, { filename: 'popular.bin' });
    await share(limited, user.token, { cid: ref.cid, public: true });
    for (let i = 0; i < 3; i += 1) assert.equal((await request(limited, 'GET', `/ipfs/${ref.cid}`)).status, 200);
    const before = (await dashboard(limited, user.token)).data_downloaded;
    assertJson(await request(limited, 'GET', `/ipfs/${ref.cid}`), 429, { message: 'This shared file is asked for too often: try again later' });
    assert.equal((await dashboard(limited, user.token)).data_downloaded, before);
    const link = await downloadLink(limited, user.token, ref.cid);
    assert.equal((await request(limited, 'GET', gatewayPath(link, ref.cid))).status, 200, 'the owner\'s links are not limited');
  });
});
