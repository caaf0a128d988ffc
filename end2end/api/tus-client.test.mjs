// Resumable uploads with a real tus client (issue 13): tus-js-client (npm)
// in node uploads files of 0 B, 1 MiB - 1, 1 MiB + 1 and 50 MB to /uploads,
// is aborted at several offsets (picked by a seeded generator, so every run
// aborts at the same places) and resumed each time from the URL it was
// given; the file it ends with has the CID and CAR CID ipfs-car gives the
// same bytes, and downloads byte for byte. Runs on SQLite + local files and
// on PostgreSQL + S3.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as tus from 'tus-js-client';
import { startServer, request, newUserWithToken, fileList, downloadLink, ipfsCarCids } from './harness.mjs';

const MiB = 1024 * 1024;

let server;
let alice;

before(async () => {
  server = await startServer();
  alice = await newUserWithToken(server);
});

after(async () => {
  await server?.stop();
});


/** A seeded generator (mulberry32): the same offsets every run. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One run of tus-js-client: resumes `url` when given, aborts once it has
 * sent `abortAt` bytes. Resolves { url, done, offset, cid, carCid }.
 */
function runClient(bytes, { url, abortAt = Infinity, chunkSize = 4 * MiB, name }) {
  return new Promise((resolve, reject) => {
    const found = {};
    let aborted = false;
    const upload = new tus.Upload(bytes, {
      endpoint: `${server.base}/uploads`,
      uploadUrl: url,
      headers: { Authorization: alice.token },
      metadata: { filename: name, filetype: 'application/x-test' },
      chunkSize,
      retryDelays: [0, 100, 300, 1000],
      storeFingerprintForResuming: false,
      removeFingerprintOnSuccess: false,
      uploadLengthDeferred: false,
      onAfterResponse: (_req, res) => {
        const cid = res.getHeader('Peervault-Cid');
        if (cid) Object.assign(found, { cid, carCid: res.getHeader('Peervault-Car-Cid') });
      },
      onProgress: (sent) => {
        if (!aborted && sent >= abortAt) {
          aborted = true;
          upload.abort().then(() => resolve({ url: upload.url, done: false, sent }));
        }
      },
      onSuccess: () => resolve({ url: upload.url, done: true, ...found }),
      onError: reject,
    });
    upload.start();
  });
}

/** HEAD's offset of `url`. */
async function offsetOf(url) {
  const res = await request(server, 'HEAD', new URL(url).pathname, { token: alice.token, headers: { 'tus-resumable': '1.0.0' } });
  assert.equal(res.status, 200);
  return Number(res.headers['upload-offset']);
}

describe('tus-js-client, aborted and resumed', () => {
  const random = seeded(20261203);
  for (const [label, size, aborts] of [['0 B', 0, 0], ['1 MiB - 1', MiB - 1, 2], ['1 MiB + 1', MiB + 1, 2], ['50 MB', 50_000_000, 4]]) {
    it(`${label}: aborted ${aborts} times at random offsets, resumed each time; ipfs-car's CIDs`, async () => {
      const bytes = crypto.randomBytes(size);
      const name = `tusjs-${size}.bin`;
      // chunks smaller than the file, so an abort can land between PATCHes or inside one
      const chunkSize = size > 10 * MiB ? 8 * MiB : 300_000;
      // Before the last chunk starts: an abort there could come after the last PATCH was answered.
      const offsets = Array.from({ length: aborts }, () => Math.floor(random() * (size - chunkSize))).sort((x, y) => x - y);
      let url;
      let last = -1;
      for (const abortAt of offsets) {
        const run = await runClient(bytes, { url, abortAt, chunkSize, name });
        assert.equal(run.done, false, `aborted at ${abortAt}`);
        url = run.url;
        const offset = await offsetOf(url);
        assert.ok(offset >= last && offset <= size, `offset ${offset} after an abort at ${abortAt}`);
        last = offset;
      }
      const end = await runClient(bytes, { url, chunkSize, name });
      assert.equal(end.done, true);
      const ref = ipfsCarCids(bytes);
      assert.equal(end.cid, ref.cid, 'cid');
      assert.equal(end.carCid, ref.carCid, 'carCid');
      const row = (await fileList(server, alice.token)).find((f) => f.cid === ref.cid);
      assert.equal(row.name, name);
      assert.equal(row.size, size);
      assert.equal(row.type, 'application/x-test');
      const link = new URL(await downloadLink(server, alice.token, ref.cid));
      const got = await request(server, 'GET', link.pathname + link.search, { timeout: 120_000 });
      assert.ok(got.raw.equals(bytes), 'the bytes');
    });
  }
});
