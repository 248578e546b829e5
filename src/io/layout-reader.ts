import { read as fsRead } from 'node:fs';
import { DIRECT_ALIGN, isAlignedAt } from '../sys/aligned-buffer.js';
import { nothingCached, readCached } from '../sys/cached-read.js';
import { readDone, whenReadable } from '../sys/read-gate.js';
import { type Layout, type SourceFile, segmentIndexAt } from '../disk/layout.js';
import type { Bytes } from '../base/units.js';

/** A backing file open for reading: through the page cache, and (optionally) O_DIRECT. */
export interface BackingFd {
  readonly fd: number;
  readonly direct?: number | undefined;
}

/** Hands out open, read-only descriptors for a backing file (usually from a bounded cache). */
export type FdProvider = (source: SourceFile) => BackingFd | Promise<BackingFd>;

/**
 * Uncached parts at least this large are read O_DIRECT: a sequential reader's readahead. The
 * page cache of the .raw would only hold a second copy of what the virtual file's own cache
 * keeps, and filling it costs the CPU that the FUSE round trip needs (docs/architecture.md §6).
 * Small random reads stay buffered, where readahead and sharing between the .vhd and .vhdx help.
 */
export const DIRECT_MIN = 128 * 1024;

/** The error of a read that ended before its segment did. */
export function shortReadError(path: string, offset: Bytes, wanted: Bytes, got: Bytes): Error {
  return new Error(`${path}: short read at byte ${offset} (wanted ${wanted}, got ${got}): the file shrank or is truncated`);
}

/** A settled promise, shared: a read served from the page cache allocates none. */
const DONE: Promise<void> = Promise.resolve();

/** Reads [pos, +len) of `fd` into buf at `off`, through the file's read gate; rejects at end of file. */
function readFrom(fd: number, buf: Buffer, off: number, len: number, pos: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const finish = (e?: Error): void => {
      readDone(fd);
      if (e) reject(e);
      else resolve();
    };
    const step = (): void => {
      fsRead(fd, buf, off + done, len - done, pos + done, (err, n) => {
        if (err) return finish(err);
        if (n === 0) return finish(shortReadError(path, pos, len, done));
        done += n;
        if (done < len) step();
        else finish();
      });
    };
    whenReadable(fd, step);
  });
}

/**
 * The O_DIRECT part of [pos, +len): whole aligned blocks in the file that land on aligned
 * memory, or undefined when there is none worth it.
 */
function directPart(b: BackingFd, buf: Buffer, off: number, len: number, pos: number): { skip: number; length: number } | undefined {
  if (b.direct === undefined || len < DIRECT_MIN) return undefined;
  const skip = (DIRECT_ALIGN - (pos % DIRECT_ALIGN)) % DIRECT_ALIGN;
  const length = Math.floor((len - skip) / DIRECT_ALIGN) * DIRECT_ALIGN;
  return length >= DIRECT_MIN && isAlignedAt(buf, off + skip) ? { skip, length } : undefined;
}

/**
 * Writes a byte into every page of buf[off, +len) so that the memory is mapped before an O_DIRECT
 * read into it. btrfs reads O_DIRECT with page faults disabled and reads memory that is not yet
 * mapped through the page cache instead (fs/btrfs/direct-io.c, btrfs_direct_read). That seeds
 * readahead of the .raw, and once its pages run ahead of the reader, cachestat no longer finds
 * the ranges uncached, so the rest of a sequential read goes buffered, which keeps readahead going:
 * measured on 6.18, the first cold read of the 2 GiB bench disk after `serve` started (16 fresh
 * reply buffers) put the whole .raw into the page cache at 2.2× the CPU. A buffer used before
 * costs one store per page.
 */
function mapPages(buf: Buffer, off: number, len: number): void {
  for (let i = off; i < off + len; i += DIRECT_ALIGN) buf[i] = 0;
}

/**
 * Reads exactly `len` bytes. What the page cache holds is copied right here (no trip through
 * the thread pool and back, the main cost of a cached read); the rest is read asynchronously,
 * a bounded number of reads per file at a time (read-gate.ts). A large range none of which is
 * cached is read O_DIRECT in its aligned middle.
 */
function preadFull(b: BackingFd, buf: Buffer, off: number, len: number, pos: number, path: string): Promise<void> {
  const d = directPart(b, buf, off, len, pos);
  if (d && nothingCached(b.fd, pos, len)) {
    const tail = d.skip + d.length;
    mapPages(buf, off + d.skip, d.length);
    return Promise.all([
      d.skip > 0 ? readFrom(b.fd, buf, off, d.skip, pos, path) : DONE,
      // A short O_DIRECT read (end of file inside the range) or a refusal: read buffered instead.
      readFrom(b.direct!, buf, off + d.skip, d.length, pos + d.skip, path).catch(() => readFrom(b.fd, buf, off + d.skip, d.length, pos + d.skip, path)),
      tail < len ? readFrom(b.fd, buf, off + tail, len - tail, pos + tail, path) : DONE,
    ]).then(() => undefined);
  }
  const cached = readCached(b.fd, buf, off, len, pos);
  if (cached === len) return DONE;
  return readFrom(b.fd, buf, off + cached, len - cached, pos + cached, path);
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
          'fd' in fd
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
