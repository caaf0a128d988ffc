// Uploads to S3 do not wait for each other (issue 11, "locks that fit S3"):
// an object goes up to the bucket without any lock, and the CID's lock is
// taken only to check it is there and commit the rows. A proxy in front of
// the bucket holds every new multipart upload until 8 are in flight at
// once: if uploads were serialised (a lock held across the transfer, or a
// pooled connection per transfer), fewer would arrive and the proxy would
// give up waiting after 20 s, failing the test. Runs in the scaled suite
// (PostgreSQL + SeaweedFS); without a bucket there is nothing to measure.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import {
  startServer, onS3, onPostgres, newUserWithToken, uploadFile, downloadLink, request, freePort,
} from './harness.mjs';

const UPLOADS = 8;
const GIVE_UP_MS = 20_000;

describe(`${UPLOADS} concurrent uploads of different files to one instance on PostgreSQL + S3`, { skip: !(onS3 && onPostgres) && 'needs PostgreSQL and S3 (make test-api-scaled)' }, () => {
  let proxy;
  let server;
  const held = [];
  let most = 0;
  let releasedBy = null;
  let timer;

  const release = (why) => {
    if (releasedBy) return;
    releasedBy = why;
    clearTimeout(timer);
    for (const go of held.splice(0)) go();
  };

  before(async () => {
    const target = new URL(process.env.AWS_ENDPOINT);
    proxy = http.createServer((req, res) => {
      // The Host header is passed on unchanged: the request's signature covers it.
      const forward = () => {
        const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
          res.writeHead(r.statusCode, r.headers);
          r.pipe(res);
        });
        up.on('error', (e) => res.destroy(e));
        req.pipe(up);
      };
      const startsUpload = req.method === 'POST' && /[?&]uploads(=|&|$)/.test(req.url);
      if (!startsUpload || releasedBy) return forward();
      held.push(forward);
      most = Math.max(most, held.length);
      if (held.length >= UPLOADS) release('all in flight');
    });
    const port = await freePort();
    await new Promise((resolve) => proxy.listen(port, '127.0.0.1', resolve));
    server = await startServer({ AWS_ENDPOINT: `http://127.0.0.1:${port}`, PEERVAULT_DB_MAX_CONNECTIONS: 8 });
  });
  after(async () => {
    release('the end');
    await server?.stop();
    await new Promise((resolve) => proxy?.close(resolve));
  });

  it(`all ${UPLOADS} reach the bucket at once and are stored`, async () => {
    const users = await Promise.all(Array.from({ length: UPLOADS / 2 }, () => newUserWithToken(server)));
    const files = Array.from({ length: UPLOADS }, (_, i) => ({ user: users[i % users.length], bytes: crypto.randomBytes(300_000 + i) }));
    timer = setTimeout(() => release('timeout'), GIVE_UP_MS);
    const uploaded = await Promise.all(files.map((f, i) => uploadFile(server, f.user.token, f.bytes, { filename: `f${i}.bin` })));
    assert.equal(releasedBy, 'all in flight', `the bucket saw at most ${most} uploads at once`);
    assert.equal(most, UPLOADS);
    for (const [i, f] of files.entries()) {
      const url = new URL(await downloadLink(server, f.user.token, uploaded[i].cid));
      const got = await request(server, 'GET', url.pathname + url.search);
      assert.equal(got.status, 200);
      assert.ok(got.raw.equals(f.bytes), `file ${i} comes back byte for byte`);
    }
  });
});
