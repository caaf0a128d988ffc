// Open retrieval (issue 14): a real IPFS client fetches shared content
// (files, and files inside shared folders by path) from peervault and
// verifies it. @helia/verified-fetch runs on a Helia node whose
// only block source is peervault's trustless gateway (the trustless-gateway
// block broker of @helia/block-brokers, routed by @helia/routers'
// httpGatewayRouting to peervault alone: no libp2p, no bitswap, no
// delegated routing, no public gateway). The bytes it hands back are
// compared with the uploaded ones; the broker's raw blocks with ipfs-car's.
// Runs on SQLite + local files and on PostgreSQL + S3.
//
// Node here is 20; the Helia stack is built for Node 22: package.json pins
// verified-fetch 4.0.3 with undici 7, and Promise.withResolvers (Node 22) is
// filled in below before the Helia modules load.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, request, newUserWithToken, uploadFile, uploadParts, dashboard, ipfsCarCids, carBlocks, cidString,
} from './harness.mjs';

if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((yes, no) => { resolve = yes; reject = no; });
    return { promise, resolve, reject };
  };
}
const { createVerifiedFetch } = await import('@helia/verified-fetch');
const { Helia } = await import('@helia/utils');
const { trustlessGateway } = await import('@helia/block-brokers');
const { httpGatewayRouting } = await import('@helia/routers');
const { MemoryBlockstore } = await import('blockstore-core');
const { MemoryDatastore } = await import('datastore-core');
const { defaultLogger } = await import('@libp2p/logger');
const { CID } = await import('multiformats/cid');

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

/** A Helia node that gets blocks from peervault's gateway and nowhere else, with an empty store. */
async function heliaOnPeervault() {
  const helia = new Helia({
    blockstore: new MemoryBlockstore(),
    datastore: new MemoryDatastore(),
    logger: defaultLogger(),
    blockBrokers: [trustlessGateway({ allowInsecure: true, allowLocal: true })],
    routers: [httpGatewayRouting({ gateways: [server.base] })],
  });
  await helia.start();
  return helia;
}

/** A block as the blockstore gives it (its bytes, or chunks of them). */
async function bytesOf(result) {
  const value = await result;
  if (value instanceof Uint8Array) return Buffer.from(value);
  const chunks = [];
  for await (const chunk of value) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

const share = (token, cid, pub = true) => request(server, 'POST', '/share_file', { token, json: { cid, public: pub } });

async function uploadShared(bytes, filename) {
  const ref = ipfsCarCids(bytes);
  assert.deepEqual(await uploadFile(server, alice.token, bytes, { filename }), { cid: ref.cid, carCid: ref.carCid });
  assert.equal((await share(alice.token, ref.cid)).status, 200);
  return ref;
}

describe('@helia/verified-fetch with peervault as its only gateway', () => {
  let helia;
  let verifiedFetch;
  before(async () => {
    helia = await heliaOnPeervault();
    verifiedFetch = await createVerifiedFetch(helia);
  });
  after(async () => {
    await verifiedFetch?.stop();
  });

  for (const [label, size] of [['a one-block file', 5000], ['a file of many blocks', 3 * MiB + 777]]) {
    it(`fetches and verifies ${label} shared at ipfs://<cid>`, async () => {
      const bytes = crypto.randomBytes(size);
      const ref = await uploadShared(bytes, `vf-${size}.bin`);
      const before = (await dashboard(server, alice.token)).data_downloaded;
      const res = await verifiedFetch(`ipfs://${ref.cid}`, { signal: AbortSignal.timeout(60_000) });
      assert.equal(res.status, 200);
      const got = Buffer.from(await res.arrayBuffer());
      assert.equal(got.length, bytes.length);
      assert.ok(got.equals(bytes), 'the bytes verified-fetch returns are the file');
      const after = (await dashboard(server, alice.token)).data_downloaded;
      assert.ok(after - before >= bytes.length, 'the blocks came from peervault (counted to the owner)');
    });
  }

  it('fetches and verifies files inside a shared folder at ipfs://<cid>/<path>', async () => {
    const big = crypto.randomBytes(2 * MiB + 5);
    const parts = [
      { name: 'file', filename: 'trip/notes.txt', data: Buffer.from('notes of a trip') },
      { name: 'file', filename: 'trip/photos/big photo.jpg', data: big },
    ];
    const res = await uploadParts(server, alice.token, parts, { timeout: 60_000 });
    assert.equal(res.status, 200, res.text);
    const { cid } = JSON.parse(res.text).web3;
    assert.equal((await share(alice.token, cid)).status, 200);
    const notes = await verifiedFetch(`ipfs://${cid}/notes.txt`, { signal: AbortSignal.timeout(60_000) });
    assert.equal(notes.status, 200);
    assert.equal(await notes.text(), 'notes of a trip');
    const photo = await verifiedFetch(`ipfs://${cid}/photos/big%20photo.jpg`, { signal: AbortSignal.timeout(60_000) });
    assert.equal(photo.status, 200);
    assert.ok(Buffer.from(await photo.arrayBuffer()).equals(big), 'a multi-block file inside the folder, verified');
  });

  it('content that is not shared cannot be fetched', async () => {
    const bytes = crypto.randomBytes(2000);
    const ref = ipfsCarCids(bytes);
    await uploadFile(server, alice.token, bytes, { filename: 'private.bin' });
    const fresh = await createVerifiedFetch(await heliaOnPeervault());
    try {
      const res = await fresh(`ipfs://${ref.cid}`, { signal: AbortSignal.timeout(5_000) }).catch((e) => ({ error: e }));
      assert.ok(res.error || res.status !== 200, `not served: ${res.status}`);
    } finally {
      await fresh.stop();
    }
  });
});

describe('the trustless-gateway block broker', () => {
  it('fetches each block of a shared DAG from peervault, one by one, as ipfs-car made them', async () => {
    const bytes = Buffer.concat([crypto.randomBytes(2 * MiB), Buffer.alloc(MiB + 99)]);
    const ref = await uploadShared(bytes, 'broker.bin');
    const helia = await heliaOnPeervault();
    try {
      for (const block of carBlocks(ref.car)) {
        const cid = CID.decode(block.cid);
        assert.equal(await helia.blockstore.has(cid), false, 'not in the empty store before');
        const got = await bytesOf(helia.blockstore.get(cid, { signal: AbortSignal.timeout(30_000) }));
        assert.ok(got.equals(block.data), `block ${cidString(block.cid)}`);
        assert.equal(await helia.blockstore.has(cid), true, 'kept after being fetched');
      }
    } finally {
      await helia.stop();
    }
  });
});
