// Golden vectors: `peervault cid` / `peervault car` against the real
// ipfs-car (npm, 3.x) run on the same bytes, compared on the fly.
//   node --test end2end/content/
// PEERVAULT_BIG_CONTENT_TEST=0 skips the >1024-chunk file (about 1 GiB).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.PEERVAULT_BIN || path.join(root, 'target/release/peervault');
const IPFS_CAR = path.join(root, 'node_modules/.bin/ipfs-car');
const REFERENCE = path.join(root, 'end2end/content/reference-car.mjs');
const MiB = 1024 * 1024;

let dir;
before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-cid-')); });
after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 20 }).trim();

/** Writes `size` bytes made by `fill(buffer, offset)` in 1 MiB pieces. */
function makeFile(name, size, fill) {
  const file = path.join(dir, name);
  const fd = fs.openSync(file, 'w');
  for (let off = 0; off < size; off += MiB) {
    const piece = Buffer.alloc(Math.min(MiB, size - off));
    fill(piece, off);
    fs.writeSync(fd, piece);
  }
  fs.closeSync(fd);
  return file;
}
const random = (piece) => randomBytes(piece.length).copy(piece);

/** Compares our CAR and CIDs with ipfs-car's for `file`. */
function compareWithIpfsCar(file) {
  const refCar = `${file}.ref.car`;
  const ourCar = `${file}.our.car`;
  const refRoot = run(IPFS_CAR, ['pack', file, '--no-wrap', '-o', refCar]).split('\n').pop();
  const refCarCid = run(IPFS_CAR, ['hash', refCar]);
  const ourRoot = run(BIN, ['car', file, '-o', ourCar]);
  const ours = JSON.parse(run(BIN, ['cid', file]));
  assert.equal(ourRoot, refRoot, 'root CID of `peervault car`');
  assert.deepEqual(ours, { cid: refRoot, carCid: refCarCid, size: fs.statSync(file).size });
  // Byte-identical CARs, compared by digest and length (files can be large).
  const digest = (f) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  assert.equal(fs.statSync(ourCar).size, fs.statSync(refCar).size, 'CAR length');
  assert.equal(digest(ourCar), digest(refCar), 'CAR bytes');
  fs.rmSync(refCar);
  fs.rmSync(ourCar);
}

describe('peervault cid/car equal ipfs-car pack --no-wrap + ipfs-car hash', () => {
  const sizes = {
    '0 bytes': 0,
    '1 byte': 1,
    '1 MiB - 1': MiB - 1,
    '1 MiB': MiB,
    '1 MiB + 1': MiB + 1,
    '2 MiB': 2 * MiB,
    'several MiB (7 MiB + 12345)': 7 * MiB + 12345,
  };
  for (const [name, size] of Object.entries(sizes)) {
    it(`a random file of ${name}`, () => {
      compareWithIpfsCar(makeFile(`r${size}.bin`, size, random));
    });
  }

  it('a file of repeated identical chunks (blocks written again, not de-duplicated)', () => {
    const chunk = randomBytes(MiB);
    const file = makeFile('repeat.bin', 5 * MiB + 777, (piece) => chunk.copy(piece, 0, 0, piece.length));
    compareWithIpfsCar(file);
  });

  it('a file of zeros', () => {
    compareWithIpfsCar(makeFile('zeros.bin', 3 * MiB + 5, () => {}));
  });

  const big = process.env.PEERVAULT_BIG_CONTENT_TEST !== '0';
  it('a file of more than 1024 chunks (two levels of nodes)', { skip: !big && 'PEERVAULT_BIG_CONTENT_TEST=0', timeout: 600_000 }, () => {
    compareWithIpfsCar(makeFile('big.bin', 1025 * MiB + 4321, random));
  });
});

describe('tree shapes with a small chunk size and width equal @ipld/unixfs', () => {
  const cases = [];
  for (let n = 1; n <= 12; n++) cases.push([16, 2, n * 16 - (n % 3)]);
  for (let chunks = 1; chunks <= 40; chunks++) cases.push([10, 3, chunks * 10 - (chunks % 2 ? 0 : 4)]);
  for (const chunks of [81, 82, 85]) cases.push([10, 3, chunks * 10 - 1]);
  for (const chunks of [16, 17, 20, 64, 65, 69]) cases.push([7, 4, chunks * 7 - 3]);
  cases.push([1000, 1024, 1023 * 1000], [1000, 1024, 1025 * 1000 + 1], [1, 2, 0]);
  for (const [chunk, width, size] of cases) {
    it(`chunk ${chunk} B, width ${width}, ${size} bytes`, () => {
      const file = makeFile(`t-${chunk}-${width}-${size}.bin`, size, random);
      const refCar = `${file}.ref.car`;
      const ourCar = `${file}.our.car`;
      const refRoot = run(process.execPath, [REFERENCE, file, String(chunk), String(width), refCar]);
      const args = ['--chunk-size', String(chunk), '--width', String(width)];
      assert.equal(run(BIN, ['car', file, '-o', ourCar, ...args]), refRoot);
      assert.equal(JSON.parse(run(BIN, ['cid', file, ...args])).cid, refRoot);
      assert.ok(fs.readFileSync(ourCar).equals(fs.readFileSync(refCar)), 'CAR bytes differ');
    });
  }
});
