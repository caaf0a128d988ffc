// Golden vectors for folders: `peervault cid <dir>` / `peervault car <dir>`
// against the real `ipfs-car pack <dir>` (npm, 3.x, its defaults: wrapped
// in a directory, dot files left out unless --hidden) run on the same
// folder, compared on the fly: the root CID, the CAR byte for byte and
// `ipfs-car hash` of it.
//   node --test end2end/content/folder.test.mjs
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as dagPb from '@ipld/dag-pb';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.PEERVAULT_BIN || path.join(root, 'target/release/peervault');
const IPFS_CAR = path.join(root, 'node_modules/.bin/ipfs-car');
const MiB = 1024 * 1024;

let work;
before(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-folder-')); });
after(() => { fs.rmSync(work, { recursive: true, force: true }); });

const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24 }).trim();
const digest = (f) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** A folder holding `files` ({relative path: bytes}) and `dirs` (empty folders). */
function makeFolder(name, files, dirs = []) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const d of dirs) fs.mkdirSync(path.join(dir, d), { recursive: true });
  for (const [rel, bytes] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), bytes);
  }
  return dir;
}

/** Compares peervault's CIDs and CAR of `dir` with ipfs-car's; returns ipfs-car's CAR. */
function compare(dir, { hidden = false } = {}) {
  const extra = hidden ? ['--hidden'] : [];
  const refCar = `${dir}.ref.car`;
  const ourCar = `${dir}.our.car`;
  const refRoot = run(IPFS_CAR, ['pack', dir, ...extra, '-o', refCar]).split('\n').pop();
  const refCarCid = run(IPFS_CAR, ['hash', refCar]);
  const ourRoot = run(BIN, ['car', dir, ...extra, '-o', ourCar]);
  const ours = JSON.parse(run(BIN, ['cid', dir, ...extra]));
  assert.equal(ourRoot, refRoot, 'root CID of `peervault car`');
  assert.equal(ours.cid, refRoot, 'root CID of `peervault cid`');
  assert.equal(ours.carCid, refCarCid, 'carCid');
  assert.equal(fs.statSync(ourCar).size, fs.statSync(refCar).size, 'CAR length');
  assert.equal(digest(ourCar), digest(refCar), 'CAR bytes');
  const car = fs.readFileSync(refCar);
  fs.rmSync(refCar);
  fs.rmSync(ourCar);
  return { root: refRoot, car };
}

/** The blocks of a CAR: [{ cid (bytes), data }]. */
function blocksOf(car) {
  const varint = (buf, off) => {
    let n = 0; let shift = 0;
    for (;;) { const b = buf[off++]; n += (b & 0x7f) * 2 ** shift; if (b < 0x80) return [n, off]; shift += 7; }
  };
  let [hlen, off] = varint(car, 0);
  off += hlen;
  const out = [];
  while (off < car.length) {
    const [len, start] = varint(car, off);
    const cidEnd = start + 4 + car[start + 3]; // CIDv1, one-byte codec/hash/length varints (dag-pb/raw, sha2-256)
    out.push({ cid: car.subarray(start, cidEnd), data: car.subarray(cidEnd, start + len) });
    off = start + len;
  }
  return out;
}

describe('peervault cid/car <dir> equal ipfs-car pack <dir>', () => {
  it('an empty folder (and one holding only empty folders)', () => {
    const { root } = compare(makeFolder('empty', {}));
    assert.equal(root, 'bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354', 'the empty UnixFS directory');
    compare(makeFolder('only-dirs', {}, ['a/b', 'c']));
  });

  it('one file; files that all sit in one sub-folder (ipfs-car drops the folders they share)', () => {
    compare(makeFolder('one', { 'only.txt': 'just me' }));
    compare(makeFolder('deep', { 'x/y/1.txt': 'one', 'x/y/2.txt': 'two' }));
  });

  it('nested folders with files of every size: empty, one chunk, many chunks, repeated content', () => {
    const big = randomBytes(3 * MiB + 4567);
    compare(makeFolder('nested', {
      'README.md': '# hello\n',
      'empty.bin': Buffer.alloc(0),
      'a/one-chunk.bin': randomBytes(MiB),
      'a/b/c/big.bin': big,
      'a/b/c/big-again.bin': big,
      'a/b/zeros.bin': Buffer.alloc(2 * MiB + 1),
      'a.txt': 'sorts before a/ as a path, after it as a link name',
      'z/last.txt': 'z',
    }));
  });

  it('names with spaces and Unicode, in JavaScript\'s order and dag-pb\'s', () => {
    compare(makeFolder('unicode', {
      'with space.txt': 'a',
      'dir with spaces/inner file.txt': 'b',
      'ünïcödé/日本語.txt': 'c',
      'emoji 😀.txt': 'd',
      '～fullwidth.txt': 'e', // U+FF5E: after 😀 by UTF-8 bytes, before it by UTF-16
      'Zebra': 'f',
      'apple': 'g',
      'e\u0301 combining.txt': 'h',
      'naïve/déjà vu/ok.txt': 'i',
    }));
  });

  it('dot files are left out, as ipfs-car does, and kept with --hidden', () => {
    const dir = makeFolder('dots', { '.env': 'SECRET=1', 'visible.txt': 'v', '.git/config': 'x', 'sub/.hidden': 'h', 'sub/shown': 's' });
    const without = compare(dir);
    const withHidden = compare(dir, { hidden: true });
    assert.notEqual(without.root, withHidden.root);
  });

  it('many small files across folders', () => {
    const files = {};
    for (let i = 0; i < 400; i += 1) files[`d${i % 7}/sub${i % 3}/file-${i}.txt`] = `content ${i}\n`.repeat(i % 5);
    compare(makeFolder('many', files));
  });

  for (const count of [1000, 1001, 3000]) {
    it(`a folder of ${count} entries (sharded past ipfs-car's threshold of 1000)`, () => {
      const files = {};
      for (let i = 0; i < count; i += 1) files[`f${String(i).padStart(5, '0')}.txt`] = `${i}`;
      files[`sub/inner.txt`] = 'a folder among the files';
      const { root, car } = compare(makeFolder(`wide-${count}`, files));
      const top = blocksOf(car).pop();
      const data = dagPb.decode(top.data).Data;
      // UnixFS Type: 1 a directory, 5 a HAMT shard
      assert.equal(data[1], count + 1 > 1000 ? 5 : 1, `root of ${root}`);
      if (count === 3000) {
        const shards = blocksOf(car).filter((b) => b.cid[1] === 0x70 && dagPb.decode(b.data).Data[1] === 5);
        assert.ok(shards.length > 1, 'child shards where slots collide');
      }
    });
  }
});
