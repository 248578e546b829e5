// Reading a `.raw`'s `.raw.bitmap` sidecar (docs/urbackup-raw-format.md §4.2), which most backups
// lack: its absence is an errno, not an exception.
import { fstatSync, readSync } from 'node:fs';
import type { Bytes } from '../base/units.js';
import { closeRaw } from '../sys/libc.js';
import { probeReadOnlyFdSync } from '../sys/read-only-open.js';
import { rawBitmapMismatch, rawBitmapPath } from './raw-bitmap.js';

function readWhole(fd: number, length: Bytes): Buffer {
  const buf = Buffer.alloc(length);
  for (let done = 0; done < length; ) {
    const n = readSync(fd, buf, done, length - done, done);
    if (n === 0) return buf.subarray(0, done);
    done += n;
  }
  return buf;
}

/** The sidecar bitmap of the `.raw` at `raw`, or why it cannot be used; undefined when there is none. */
export function readRawBitmap(raw: string, rawSize: Bytes, openFlags: number): Uint8Array | string | undefined {
  const fd = probeReadOnlyFdSync(rawBitmapPath(raw), openFlags);
  if (typeof fd !== 'number') return fd.code === 'ENOENT' ? undefined : `cannot open (${fd.code})`;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return 'not a regular file';
    const bitmap = readWhole(fd, st.size);
    return rawBitmapMismatch(bitmap, rawSize) ?? bitmap;
  } finally {
    closeRaw(fd);
  }
}
