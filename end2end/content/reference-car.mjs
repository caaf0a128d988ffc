// Reference CAR for a small chunk size and width, made by the same library
// ipfs-car uses (@ipld/unixfs) with ipfs-car's settings except those two:
//   node end2end/content/reference-car.mjs FILE CHUNK_SIZE WIDTH OUT.car
// Bytes are fed one chunk per write with a macrotask between writes, the way
// ipfs-car's 64 KiB file reads reach its 1 MiB chunker. Prints the root CID.
import fs from 'node:fs';
import { setImmediate as tick } from 'node:timers/promises';
import * as UnixFS from '@ipld/unixfs';
import { withMaxChunkSize } from '@ipld/unixfs/file/chunker/fixed';
import { withWidth } from '@ipld/unixfs/file/layout/balanced';
import * as raw from 'multiformats/codecs/raw';
import { CAREncoderStream } from 'ipfs-car';

const [file, chunkSize, width, out] = process.argv.slice(2);
const settings = UnixFS.configure({
  fileChunkEncoder: raw,
  smallFileEncoder: raw,
  chunker: withMaxChunkSize(Number(chunkSize)),
  fileLayout: withWidth(Number(width)),
});
const bytes = fs.readFileSync(file);
const { readable, writable } = new TransformStream({}, UnixFS.withCapacity());
const writer = UnixFS.createWriter({ writable, settings });
(async () => {
  const fileWriter = UnixFS.createFileWriter(writer);
  for (let i = 0; i < bytes.length; i += Number(chunkSize)) {
    await fileWriter.write(bytes.subarray(i, i + Number(chunkSize)));
    await tick();
  }
  await fileWriter.close();
  await writer.close();
})();
const blocks = [];
await readable.pipeTo(new WritableStream({ write (block) { blocks.push(block) } }));
const root = blocks[blocks.length - 1].cid;
const car = new CAREncoderStream([root]);
const chunks = [];
await new ReadableStream({ start (c) { for (const b of blocks) c.enqueue(b); c.close() } })
  .pipeThrough(car)
  .pipeTo(new WritableStream({ write (chunk) { chunks.push(chunk) } }));
fs.writeFileSync(out, Buffer.concat(chunks));
console.log(root.toString());
