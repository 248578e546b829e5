// A Volume (filesystem/volume-fs.ts) over a range of a backing file, such as the volume inside a
// `.raw` from byte 524288: read-only, every range checked against the volume.
import { read as readCb, close as closeCb } from 'node:fs';
import { promisify } from 'node:util';
import type { Bytes } from '../base/units.js';
import type { Volume } from '../filesystem/volume-fs.js';
import { readCached } from '../sys/cached-read.js';
import { openReadOnlyFd } from '../sys/read-only-open.js';

const pread = promisify(readCb);
const closeFd = promisify(closeCb);

export interface FileVolume extends Volume {
  close(): Promise<void>;
}

/** The `size` bytes of `path` from `sourceOffset` on, as a Volume named after the file. */
export async function openFileVolume(path: string, sourceOffset: Bytes, size: Bytes): Promise<FileVolume> {
  const fd = await openReadOnlyFd(path);
  const read = async (offset: Bytes, length: number): Promise<Buffer> => {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new RangeError(`${path}: read of ${length} bytes at ${offset} lies outside the ${size}-byte volume`);
    }
    const buf = Buffer.allocUnsafe(length);
    // What the page cache holds is copied here: a read through libuv's pool costs a listing of
    // 20 000 NTFS files some 1300 round trips of 50 µs (docs/performance.md §9).
    let done = readCached(fd, buf, 0, length, sourceOffset + offset);
    while (done < length) {
      const { bytesRead } = await pread(fd, buf, done, length - done, sourceOffset + offset + done);
      if (bytesRead === 0) break; // past the file's end: the rest reads as zeros, as a sparse tail does
      done += bytesRead;
    }
    return done < length ? buf.fill(0, done) : buf;
  };
  return { name: path, size, source: { path }, sourceOffset, read, close: () => closeFd(fd) };
}
