// An open file's layout in shared memory, with its backing descriptors, so that the FUSE request
// workers (src/fuse/request-worker.ts) serve reads of cached data themselves, without a trip to
// the main thread. Only what the page cache already holds is read here: anything that would wait
// for the storage is left to the main thread's asynchronous reader (layout-reader.ts), so a slow
// storage can never hold a worker.
import type { Bytes } from '../base/units.js';
import { type Layout, type SourceFile } from '../disk/layout.js';
import { nothingCached, readCached } from '../sys/cached-read.js';
import { DIRECT_MIN } from './layout-reader.js';
import { anyWritten } from './written-regions.js';

/** What the table says a segment is. */
const ZERO = 0;
const BYTES = 1;
const FILE = 2;
/** Numbers per segment in the table: start, length, kind, fd, offset (file) or index into `bytes`. */
const FIELDS = 5;

export interface SharedLayout {
  readonly size: Bytes;
  /** FIELDS numbers per segment, sorted by start, over a SharedArrayBuffer (posting it copies nothing). */
  readonly table: Float64Array;
  /** The data of every `bytes` segment, end to end, over a SharedArrayBuffer. */
  readonly bytes: Uint8Array;
  /**
   * For a writer's handle: the regions its overlay holds (written-regions.ts). Its view may be
   * larger or smaller than the layout, so only reads inside the layout that touch no written
   * region are answered from it.
   */
  readonly written?: Int32Array;
}

/** Lays `layout` out in shared memory; `fdOf` gives the descriptor each file segment reads. */
export function shareLayout(layout: Layout, fdOf: (s: SourceFile) => number): SharedLayout {
  return layOut(layout, fdOf, (n) => new SharedArrayBuffer(n));
}

/**
 * The same table in ordinary memory, to post to one worker as a copy: an offer (fuse/offers.ts)
 * is made for each file opened ahead, and shared memory per file was what a walk's memory grew by.
 */
export function copyLayout(layout: Layout, fdOf: (s: SourceFile) => number): SharedLayout {
  return layOut(layout, fdOf, (n) => new ArrayBuffer(n));
}

function layOut(layout: Layout, fdOf: (s: SourceFile) => number, memory: (bytes: number) => ArrayBufferLike): SharedLayout {
  const segs = layout.segments;
  // At least one element (an empty file has no segment): a Float64Array's buffer is whole elements.
  const table = new Float64Array(memory(Math.max(1, segs.length * FIELDS) * Float64Array.BYTES_PER_ELEMENT));
  let byteCount = 0;
  for (const s of segs) if (s.kind === 'bytes') byteCount += s.length;
  const bytes = new Uint8Array(memory(Math.max(1, byteCount)));
  let at = 0;
  segs.forEach((s, i) => {
    const t = i * FIELDS;
    table[t] = s.start;
    table[t + 1] = s.length;
    if (s.kind === 'zero') table[t + 2] = ZERO;
    else if (s.kind === 'bytes') {
      table[t + 2] = BYTES;
      table[t + 4] = at;
      bytes.set(s.data.subarray(0, s.length), at);
      at += s.length;
    } else {
      table[t + 2] = FILE;
      table[t + 3] = fdOf(s.source);
      table[t + 4] = s.offset;
    }
  });
  return { size: layout.size, table: table.subarray(0, segs.length * FIELDS), bytes };
}

/** Index of the segment holding `pos` (binary search over the table). */
function segmentAt(table: Float64Array, pos: Bytes): number {
  let lo = 0;
  let hi = table.length / FIELDS - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (table[mid * FIELDS]! <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Fills `out` with up to `length` bytes at `pos` when every byte is in memory or in the page
 * cache, and returns the count (short only at the end of the file). Returns -1, with `out` in any
 * state, when some byte would need the storage: the caller hands the request on. A large range
 * of which nothing is cached is left at once, without a RWF_NOWAIT probe (which would start
 * readahead into the .raw's page cache), so that the reader can take it O_DIRECT.
 */
export function readCachedLayout(l: SharedLayout, pos: Bytes, out: Buffer, length: Bytes): number {
  if (l.written && (pos + length > l.size || anyWritten(l.written, pos, pos + length))) return -1;
  if (pos >= l.size || length <= 0) return 0;
  const total = Math.min(length, l.size - pos, out.length);
  const t = l.table;
  let i = segmentAt(t, pos) * FIELDS;
  let done = 0;
  while (done < total) {
    const start = t[i]!;
    const from = pos + done - start;
    const n = Math.min(t[i + 1]! - from, total - done);
    const kind = t[i + 2]!;
    if (kind === ZERO) out.fill(0, done, done + n);
    else if (kind === BYTES) out.set(l.bytes.subarray(t[i + 4]! + from, t[i + 4]! + from + n), done);
    else {
      const fd = t[i + 3]!;
      const at = t[i + 4]! + from;
      if (n >= DIRECT_MIN && nothingCached(fd, at, n) === true) return -1;
      if (readCached(fd, out, done, n, at) < n) return -1;
    }
    done += n;
    i += FIELDS;
  }
  return total;
}
