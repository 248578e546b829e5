import { read as fsRead } from 'node:fs';
import { readCached } from '../io/cached-read.js';
import { readDone, whenReadable } from '../io/read-gate.js';
import { type Bytes, type Layout, type SourceFile, segmentIndexAt } from './layout.js';

/** Hands out an open, read-only descriptor for a backing file (usually from a bounded cache). */
export type FdProvider = (source: SourceFile) => number | Promise<number>;

export class ShortReadError extends Error {
  override name = 'ShortReadError';
  constructor(readonly path: string, readonly offset: Bytes, readonly wanted: Bytes, readonly got: Bytes) {
    super(`${path}: short read at byte ${offset} (wanted ${wanted}, got ${got}): the file shrank or is truncated`);
  }
}

/** A settled promise, shared: a read served from the page cache allocates none. */
const DONE: Promise<void> = Promise.resolve();

/**
 * Reads exactly `len` bytes. What the page cache holds is copied right here (no trip through
 * the thread pool and back, the main cost of a cached read); the rest is read asynchronously,
 * a bounded number of reads per file at a time (read-gate.ts).
 */
function preadFull(fd: number, buf: Buffer, off: number, len: number, pos: number, path: string): Promise<void> {
  const cached = readCached(fd, buf, off, len, pos);
  if (cached === len) return DONE;
  return new Promise((resolve, reject) => {
    let done = cached;
    const finish = (e?: Error): void => {
      readDone(fd);
      if (e) reject(e);
      else resolve();
    };
    const step = (): void => {
      fsRead(fd, buf, off + done, len - done, pos + done, (err, n) => {
        if (err) return finish(err);
        if (n === 0) return finish(new ShortReadError(path, pos, len, done));
        done += n;
        if (done < len) step();
        else finish();
      });
    };
    whenReadable(fd, step);
  });
}

/**
 * Reads up to `length` bytes at `pos` of the virtual file into `buf` (from offset 0) and
 * returns how many bytes were read (fewer only at the end of the file). File segments are
 * read concurrently; nothing is allocated per request beyond the promises.
 */
export async function readLayout(layout: Layout, pos: Bytes, buf: Buffer, length: Bytes, fds: FdProvider): Promise<number> {
  if (pos >= layout.size || length <= 0) return 0;
  const total = Math.min(length, layout.size - pos, buf.length);
  let i = segmentIndexAt(layout, pos);
  let done = 0;
  const pending: Promise<void>[] = [];
  while (done < total) {
    const s = layout.segments[i++]!;
    const from = pos + done - s.start;
    const n = Math.min(s.length - from, total - done);
    switch (s.kind) {
      case 'bytes':
        s.data.copy(buf, done, from, from + n);
        break;
      case 'zero':
        buf.fill(0, done, done + n);
        break;
      case 'file': {
        const at = done;
        const fd = fds(s.source);
        pending.push(
          typeof fd === 'number'
            ? preadFull(fd, buf, at, n, s.offset + from, s.source.path)
            : fd.then((d) => preadFull(d, buf, at, n, s.offset + from, s.source.path)),
        );
        break;
      }
    }
    done += n;
  }
  if (pending.length === 1) await pending[0];
  else if (pending.length > 1) await Promise.all(pending);
  return total;
}
