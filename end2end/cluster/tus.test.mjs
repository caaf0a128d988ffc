// Resumable uploads across instances (issue 13): two instances share one
// PostgreSQL database, one bucket and the JWT secret. PATCHes of one upload
// sent to both at once are serialised (one is taken, the other is told the
// offset moved); an upload started on A, with A killed by SIGKILL in the
// middle of a PATCH, is finished on B (completing the S3 multipart object A
// began), and the file is ipfs-car's. Run by
// `make test-cluster` (PostgreSQL + S3).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import {
  startServer, sharedStorage, onPostgres, onS3, request, newUserWithToken, fileList, downloadLink, storedObjects, ipfsCarCids,
  unfinishedMultipartUploads,
} from '../api/harness.mjs';

const MiB = 1024 * 1024;
const TUS = { 'tus-resumable': '1.0.0' };
const OCTETS = { ...TUS, 'content-type': 'application/offset+octet-stream' };

let a;
let b;
let alice;

before(async () => {
  assert.ok(onPostgres && onS3, 'run inside scripts/with-postgres.sh and scripts/with-s3.sh (make test-cluster)');
  const env = { ...sharedStorage(), PEERVAULT_JWT_SECRET: crypto.randomBytes(32).toString('hex') };
  [a, b] = await Promise.all([startServer(env), startServer(env)]);
  alice = await newUserWithToken(a);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});


const create = async (srv, length, name) => {
  const res = await request(srv, 'POST', '/uploads', {
    token: alice.token, headers: { ...TUS, 'upload-length': String(length), 'upload-metadata': `filename ${Buffer.from(name).toString('base64')}` },
  });
  assert.equal(res.status, 201, res.text);
  return res.headers.location;
};
const patch = (srv, loc, offset, body) => request(srv, 'PATCH', loc, {
  token: alice.token, body, headers: { ...OCTETS, 'upload-offset': String(offset) }, timeout: 60_000,
});
const offsetOf = async (srv, loc) => {
  const res = await request(srv, 'HEAD', loc, { token: alice.token, headers: TUS });
  assert.equal(res.status, 200);
  return Number(res.headers['upload-offset']);
};

describe('one upload, two instances', () => {
  it('PATCHes at the same offset sent to both at once: one is taken, the other gets 409; nothing is taken twice', async () => {
    const bytes = crypto.randomBytes(6 * MiB);
    const loc = await create(a, bytes.length, 'race.bin');
    for (let round = 0; round < 3; round += 1) {
      const at = round * 2 * MiB;
      const piece = bytes.subarray(at, at + 2 * MiB);
      const answers = await Promise.all([patch(a, loc, at, piece), patch(b, loc, at, piece)]);
      const statuses = answers.map((r) => r.status).sort();
      assert.deepEqual(statuses, [204, 409], `round ${round}: ${answers.map((r) => r.text).join(' | ')}`);
      assert.equal(await offsetOf(b, loc), at + 2 * MiB);
    }
    const ref = ipfsCarCids(bytes);
    const row = (await fileList(b, alice.token)).find((f) => f.name === 'race.bin');
    assert.equal(row.cid, ref.cid);
    assert.equal(row.carCid, ref.carCid);
  });

  it('started on A, A killed with SIGKILL mid-PATCH, finished on B: ipfs-car\'s file, every byte; no part left behind', async () => {
    const bytes = crypto.randomBytes(9 * MiB + 123);
    const open = await unfinishedMultipartUploads(a.dataDir);
    const loc = await create(a, bytes.length, 'moved.bin');
    // 6 leaves: A sends them as the first part of the upload's S3 multipart object.
    const first = 6 * MiB + 5;
    assert.equal((await patch(a, loc, 0, bytes.subarray(0, first))).status, 204);
    // A PATCH to A that announces the rest, sends 2 MiB of it and stalls; A dies under it.
    const url = new URL(loc, a.base);
    const req = http.request({
      method: 'PATCH', hostname: url.hostname, port: url.port, path: url.pathname,
      headers: { ...OCTETS, authorization: alice.token, 'upload-offset': String(first), 'content-length': bytes.length - first },
    });
    req.on('error', () => {});
    await new Promise((resolve) => req.write(bytes.subarray(first, first + 2 * MiB), resolve));
    a.proc.kill('SIGKILL');
    await a.waitForExit();
    req.destroy();
    // B sees the upload where A last recorded it (the cut PATCH was not), and
    // takes the rest once A's hold on it has run out (423 until then, as a
    // tus client retries), completing the multipart object A began.
    const offset = await offsetOf(b, loc);
    assert.equal(offset, first);
    let end;
    for (let i = 0; i < 5; i += 1) {
      end = await patch(b, loc, offset, bytes.subarray(offset));
      if (end.status !== 423) break;
      assert.deepEqual(end.json, { message: 'Another request is working on this upload' });
    }
    assert.equal(end.status, 204, end.text);
    const ref = ipfsCarCids(bytes);
    assert.equal(end.headers['peervault-cid'], ref.cid);
    assert.equal(end.headers['peervault-car-cid'], ref.carCid);
    const link = new URL(await downloadLink(b, alice.token, ref.cid));
    const got = await request(b, 'GET', link.pathname + link.search, { timeout: 60_000 });
    assert.ok(got.raw.equals(bytes), 'every byte');
    const id = loc.split('/').pop();
    assert.deepEqual((await storedObjects(b.dataDir)).filter((o) => o.includes(`tus${id}`)), [], 'the parts are gone');
    assert.deepEqual(await unfinishedMultipartUploads(b.dataDir), open, 'no multipart object left open');
  });
});
