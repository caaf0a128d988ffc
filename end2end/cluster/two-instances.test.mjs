// Two peervault processes behind "one address": they share one PostgreSQL
// database, one S3 bucket prefix and the JWT secret, and nothing else (each
// has its own data dir). Whatever happens through one must be seen through
// the other. Run by `make test-cluster` inside scripts/with-postgres.sh and
// scripts/with-s3.sh, which provide the real servers.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, sharedStorage, onPostgres, onS3, request, post, assertJson, registerUser, loginUser,
  newUserWithToken, uploadFile, fileList, downloadLink, dashboard, uniqueIp, storedObjects, objectBytes,
} from '../api/harness.mjs';

const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const linkPath = (url) => { const u = new URL(url); return u.pathname + u.search; };
const BUDGET = 4;

describe('two instances sharing PostgreSQL, a bucket and the JWT secret', () => {
  let a;
  let b;
  let shared;
  before(async () => {
    assert.ok(onPostgres && onS3, 'run inside scripts/with-postgres.sh and scripts/with-s3.sh (make test-cluster)');
    shared = sharedStorage();
    const env = {
      ...shared,
      PEERVAULT_JWT_SECRET: crypto.randomBytes(32).toString('hex'),
      PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT: BUDGET,
      PEERVAULT_LOGIN_MAX_FAILURES_PER_IP: 1000,
    };
    // Started together: the migrations run once, under PostgreSQL's advisory lock.
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
    assert.notEqual(a.dataDir, b.dataDir);
  });
  after(async () => { await Promise.all([a?.stop(), b?.stop()]); });

  it('an account registered on one instance logs in on the other, and its token works on both', async () => {
    const user = await registerUser(a);
    const token = await loginUser(b, user);
    assert.equal((await dashboard(a, token)).username, user.username);
    assert.equal((await dashboard(b, token)).username, user.username);
  });

  it('upload through one, list, download and fetch the content through the other', async () => {
    const user = await newUserWithToken(a);
    const data = crypto.randomBytes(9 * 1024 * 1024 + 123); // more than one multipart part
    const web3 = await uploadFile(a, user.token, data, { filename: 'shared.bin' });
    const listed = await fileList(b, user.token);
    assert.deepStrictEqual(listed.map((f) => [f.cid, f.name, f.size]), [[web3.cid, 'shared.bin', data.length]]);
    // A link handed out by B, opened on B; a link handed out by A, opened on B.
    for (const [issuer, server] of [[b, b], [a, b]]) {
      const url = await downloadLink(issuer, user.token, web3.cid);
      const got = await request(server, 'GET', linkPath(url), { timeout: 60_000 });
      assert.equal(got.status, 200);
      assert.equal(sha(got.raw), sha(data));
    }
    // A range read through B of what A stored.
    const url = await downloadLink(b, user.token, web3.cid);
    const part = await request(b, 'GET', linkPath(url), { headers: { Range: 'bytes=5000000-5000099' } });
    assert.equal(part.status, 206);
    assert.ok(part.raw.equals(data.subarray(5_000_000, 5_000_100)));
    // The bytes are in the shared bucket under the shared prefix, once.
    assert.ok((await storedObjects(a.dataDir)).some((o) => o.endsWith(web3.cid)));
    assert.ok((await objectBytes(b.dataDir, web3.cid)).equals(data));
  });

  it('a delete through one is seen through the other, and the object leaves the bucket', async () => {
    const user = await newUserWithToken(b);
    const data = crypto.randomBytes(4096);
    const { cid } = await uploadFile(b, user.token, data);
    assertJson(await post(a, '/delete_file', { token: user.token, json: { cid } }), 200);
    assert.deepStrictEqual(await fileList(b, user.token), []);
    assert.equal(await objectBytes(a.dataDir, cid), null);
    const gone = await post(b, '/download_file', { token: user.token, json: { cid } });
    assert.equal(gone.status, 404);
  });

  it('the login throttle counts failures on both instances together', async () => {
    const user = await registerUser(a);
    const from = uniqueIp();
    for (let i = 0; i < BUDGET; i++) {
      const server = i % 2 ? b : a;
      const res = await post(server, '/login', { json: { username: user.username, password: 'wrong-password' }, localAddress: from });
      assert.equal(res.status, 401, `failure ${i + 1} on ${i % 2 ? 'B' : 'A'}`);
    }
    for (const server of [a, b]) {
      const res = await post(server, '/login', { json: { username: user.username, password: user.password }, localAddress: from });
      assert.equal(res.status, 429, 'the budget is used up on both instances');
    }
  });

  it('deleting content on one while another account uploads it on the other never loses the object', async () => {
    const owner = await newUserWithToken(a);
    const other = await newUserWithToken(b);
    for (let round = 0; round < 12; round++) {
      const data = crypto.randomBytes(64 * 1024 + round);
      const { cid } = await uploadFile(a, owner.token, data);
      const [deleted, uploaded] = await Promise.all([
        post(b, '/delete_file', { token: owner.token, json: { cid } }),
        (async () => uploadFile(a, other.token, data))(),
      ]);
      assert.equal(deleted.status, 200);
      assert.equal(uploaded.cid, cid);
      // The other account's copy must be whole, through either instance.
      for (const server of [a, b]) {
        const url = await downloadLink(server, other.token, cid);
        const got = await request(server, 'GET', linkPath(url));
        assert.equal(got.status, 200, `round ${round}: the object is there`);
        assert.equal(sha(got.raw), sha(data));
      }
    }
  });

  it('a restart of one instance keeps everything and removes no live object', async () => {
    const user = await newUserWithToken(a);
    const data = crypto.randomBytes(10_000);
    const { cid } = await uploadFile(b, user.token, data);
    await a.stop();
    a = await startServer({ ...shared, PEERVAULT_JWT_SECRET: b.secret, PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT: BUDGET });
    assert.deepStrictEqual((await fileList(a, user.token)).map((f) => f.cid), [cid]);
    assert.ok((await objectBytes(b.dataDir, cid)).equals(data));
  });
});
