// Which database and blob store the suite runs on, checked from the
// outside: `make test` runs every file of this suite twice, on SQLite and
// files under the data dir (the default) and on PostgreSQL and an S3 bucket
// (scripts/with-postgres.sh, scripts/with-s3.sh). A registered user must be a
// row in that very database, an upload an object in that very store, and bad
// URLs are refused at start-up with a message that echoes no secret.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import {
  startServer, registerUser, newUserWithToken, uploadFile, objectBytes, objectPath, onPostgres, onS3,
  downloadLink, sleep, fileList, dashboard, blobFiles, request, assertJson, uploadParts,
} from './harness.mjs';
import http from 'node:http';
import net from 'node:net';

/**
 * A TCP proxy on a free loopback port in front of `target` (http://host:port)
 * that can be cut: while down it drops open connections and refuses new ones.
 */
async function cuttableProxy(target) {
  const { hostname, port } = new URL(target);
  const open = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) { client.destroy(); return; }
    const upstream = net.connect(Number(port), hostname);
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      open.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => { open.delete(a); b.destroy(); });
      a.pipe(b);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() { down = true; for (const s of open) s.destroy(); },
    restore() { down = false; },
    close: () => new Promise((resolve) => { for (const s of open) s.destroy(); server.close(resolve); }),
  };
}

/** GETs `url`, pausing `pauseMs` after every `every` bytes; resolves with the status and the body. */
function slowGet(url, { every, pauseMs }) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks = [];
      let got = 0;
      let nextPause = every;
      res.on('data', (chunk) => {
        chunks.push(chunk);
        got += chunk.length;
        if (got >= nextPause) {
          nextPause += every;
          res.pause();
          sleep(pauseMs).then(() => res.resume()); // real time: a slow reader is the subject
        }
      });
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe(`the database (${onPostgres ? 'PostgreSQL' : 'SQLite'})`, () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  it('a registered user is a row in the database this server was given', async () => {
    const user = await registerUser(server);
    if (onPostgres) {
      assert.match(server.databaseUrl, /^postgres:\/\//);
      const sql = `SELECT username FROM users WHERE username = '${user.username}'`;
      const got = execFileSync('psql', [server.databaseUrl, '-qAtX', '-c', sql], { encoding: 'utf8' }).trim();
      assert.equal(got, user.username);
      assert.ok(!fs.existsSync(path.join(server.dataDir, 'peervault.db')), 'no SQLite file next to PostgreSQL');
    } else {
      const db = path.join(server.dataDir, 'peervault.db');
      assert.ok(fs.statSync(db).size > 0, 'the SQLite file exists');
      // The WAL holds the new row until a checkpoint; either file has the name.
      const bytes = Buffer.concat([db, `${db}-wal`].filter(fs.existsSync).map((f) => fs.readFileSync(f)));
      assert.ok(bytes.includes(Buffer.from(user.username)), 'the username is in the SQLite file');
    }
  });
});

describe(`the blob store (${onS3 ? 'S3' : 'files under the data dir'})`, () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  it('an upload is an object in the store this server was given, and only there', async () => {
    const user = await newUserWithToken(server);
    const data = crypto.randomBytes(5000);
    const { cid } = await uploadFile(server, user.token, data);
    assert.ok((await objectBytes(server.dataDir, cid)).equals(data));
    assert.equal(fs.existsSync(objectPath(server.dataDir, cid)), !onS3, 'a local copy exactly when the store is local');
  });

  it('a download drained slowly, with stalls longer than the S3 client\'s request timeout, arrives whole', async () => {
    // AWS_TIMEOUT bounds each request to the bucket: a download must not be
    // one request that lasts as long as the client takes to read it.
    const slow = await startServer({ AWS_TIMEOUT: '1s', RUST_LOG: 'info' });
    try {
      const user = await newUserWithToken(slow);
      const data = crypto.randomBytes(20 * 1024 * 1024 + 5);
      const { cid } = await uploadFile(slow, user.token, data);
      const url = await downloadLink(slow, user.token, cid);
      const got = await slowGet(url, { every: 4 * 1024 * 1024, pauseMs: 1500 });
      assert.equal(got.status, 200);
      assert.equal(got.body.length, data.length);
      assert.ok(got.body.equals(data), 'the same bytes');
      // Not saved by retries either: no read from the bucket failed (a
      // request held open at the client's pace fails at the timeout, and the
      // S3 client's retries of one download run out after 10 retries or 3 minutes).
      const log = slow.stdout() + slow.stderr();
      assert.doesNotMatch(log, /error while reading response body/i);
    } finally {
      await slow.stop();
    }
  });
});

describe('the bucket out of reach while serving', { skip: !onS3 && 'S3 only' }, () => {
  it('an upload fails with 503 (Retry-After) and leaves no trace; a download fails the same; both work again once it is back', async () => {
    const proxy = await cuttableProxy(process.env.AWS_ENDPOINT);
    const srv = await startServer({ AWS_ENDPOINT: proxy.url });
    try {
      const user = await newUserWithToken(srv);
      const kept = crypto.randomBytes(30_000);
      const { cid: keptCid } = await uploadFile(srv, user.token, kept, { filename: 'kept.bin' });
      const link = new URL(await downloadLink(srv, user.token, keptCid));
      const before = await dashboard(srv, user.token);

      proxy.cut();
      const lost = crypto.randomBytes(40_000);
      const up = await uploadParts(srv, user.token, [{ name: 'file', filename: 'lost.bin', data: lost }], { timeout: 60_000 });
      assertJson(up, 503, { message: 'Service temporarily unavailable' });
      const down = await request(srv, 'GET', link.pathname + link.search, { timeout: 60_000 });
      assertJson(down, 503, { message: 'Service temporarily unavailable' });
      for (const res of [up, down]) assert.equal(res.headers['retry-after'], '5');
      for (const res of [up, down]) assert.ok(!/127\.0\.0\.1|object store|s3/i.test(res.text), res.text);
      // Nothing changed: the list, the counters, no staging file, no object.
      assert.deepStrictEqual((await fileList(srv, user.token)).map((f) => f.cid), [keptCid]);
      const after = await dashboard(srv, user.token);
      for (const k of ['data_uploaded', 'space_used', 'bandwidth_used']) assert.equal(after[k], before[k], k);
      assert.deepStrictEqual(blobFiles(srv.dataDir, 'staging'), [], 'no staging file');

      proxy.restore();
      const again = await request(srv, 'GET', link.pathname + link.search);
      assert.equal(again.status, 200);
      assert.ok(again.raw.equals(kept));
      const { cid: lostCid } = await uploadFile(srv, user.token, lost, { filename: 'lost.bin' });
      assert.ok((await objectBytes(srv.dataDir, lostCid)).equals(lost));
    } finally {
      await srv.stop();
      await proxy.close();
    }
  });
});

describe('a bad PEERVAULT_BLOB_URL stops the start-up with a clear message', () => {
  const cases = [['not s3://', 'file:///tmp/x', /PEERVAULT_BLOB_URL must start with s3:\/\//],
    ['an invalid bucket name', 's3://Not_A_Bucket/x', /"Not_A_Bucket" is not a valid bucket name/],
    // the start-up sweep must never look at a whole bucket
    ['a bucket without a prefix', 's3://some-bucket', /PEERVAULT_BLOB_URL needs a prefix of its own/],
    ['a bucket with an empty prefix', 's3://some-bucket//', /PEERVAULT_BLOB_URL needs a prefix of its own/]];
  if (onS3) {
    cases.push(['a bucket that does not exist', 's3://no-such-bucket-here/x', /cannot reach the bucket no-such-bucket-here/]);
  }
  for (const [label, url, expected] of cases) {
    it(label, async () => {
      await assert.rejects(startServer({ PEERVAULT_BLOB_URL: url }), (e) => {
        assert.match(e.message, expected);
        return true;
      });
    });
  }
  if (onS3) {
    it('wrong S3 credentials (the secret is not echoed)', async () => {
      await assert.rejects(startServer({ AWS_SECRET_ACCESS_KEY: 'hunter2-wrong-secret-key' }), (e) => {
        assert.match(e.message, /cannot reach the bucket/);
        assert.ok(!e.message.includes('hunter2'), e.message);
        return true;
      });
    });
  }
});

describe('a bad DATABASE_URL stops the start-up with a clear message', () => {
  for (const [label, url, expected] of [
    ['an unknown scheme', 'mysql://root:hunter2secret@127.0.0.1/x', /unsupported DATABASE_URL scheme "mysql"/],
    ['PostgreSQL that is not there', 'postgres://pv:hunter2secret@127.0.0.1:1/x', /cannot connect to PostgreSQL/],
  ]) {
    it(label, async () => {
      await assert.rejects(startServer({ DATABASE_URL: url }), (e) => {
        assert.match(e.message, expected);
        assert.ok(!e.message.includes('hunter2secret'), `the password is not echoed: ${e.message}`);
        return true;
      });
    });
  }
});
