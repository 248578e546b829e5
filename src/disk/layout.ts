// A virtual file is an ordered, gap-free list of segments covering [0, size) (docs/architecture.md §1).
import type { Bytes } from '../base/units.js';

/** A backing file that a `file` segment reads from: a `.raw` or a materialized disk. */
export interface SourceFile {
  readonly path: string;
}

export type Segment =
  | { readonly kind: 'bytes'; readonly start: Bytes; readonly length: Bytes; readonly data: Buffer }
  | { readonly kind: 'file'; readonly start: Bytes; readonly length: Bytes; readonly source: SourceFile; readonly offset: Bytes }
  | { readonly kind: 'zero'; readonly start: Bytes; readonly length: Bytes };

/** Something to place into a layout: later pieces overwrite earlier ones where they overlap. */
export type Piece =
  | { readonly kind: 'bytes'; readonly start: Bytes; readonly data: Buffer }
  | { readonly kind: 'file'; readonly start: Bytes; readonly length: Bytes; readonly source: SourceFile; readonly offset: Bytes };

export interface Layout {
  readonly size: Bytes;
  /** Sorted by start, contiguous, covering [0, size). */
  readonly segments: readonly Segment[];
}

export class LayoutError extends Error {
  override name = 'LayoutError';
}

function pieceLength(p: Piece): Bytes {
  return p.kind === 'bytes' ? p.data.length : p.length;
}

/** The part [from, to) of a segment, as a segment of its own. */
function slice(seg: Segment, from: Bytes, to: Bytes): Segment {
  const length = to - from;
  const skip = from - seg.start;
  switch (seg.kind) {
    case 'bytes':
      return { kind: 'bytes', start: from, length, data: seg.data.subarray(skip, skip + length) };
    case 'file':
      return { kind: 'file', start: from, length, source: seg.source, offset: seg.offset + skip };
    case 'zero':
      return { kind: 'zero', start: from, length };
  }
}

function toSegment(p: Piece): Segment {
  return p.kind === 'bytes'
    ? { kind: 'bytes', start: p.start, length: p.data.length, data: p.data }
    : { kind: 'file', start: p.start, length: p.length, source: p.source, offset: p.offset };
}

/**
 * Paints pieces, in order, over a zero-filled file of `size` bytes, the way a restore writes
 * them onto a blank disk: where two pieces overlap, the later one wins.
 */
export function paint(size: Bytes, pieces: readonly Piece[]): Layout {
  if (!Number.isSafeInteger(size) || size < 0) throw new LayoutError(`invalid layout size ${size}`);
  let segs: Segment[] = size > 0 ? [{ kind: 'zero', start: 0, length: size }] : [];
  for (const p of pieces) {
    const len = pieceLength(p);
    if (len === 0) continue;
    const end = p.start + len;
    if (!Number.isSafeInteger(p.start) || p.start < 0 || !Number.isSafeInteger(end) || end > size) {
      throw new LayoutError(`piece [${p.start}, ${end}) lies outside the ${size}-byte file`);
    }
    const next: Segment[] = [];
    for (const s of segs) {
      const sEnd = s.start + s.length;
      if (sEnd <= p.start || s.start >= end) {
        next.push(s);
        continue;
      }
      if (s.start < p.start) next.push(slice(s, s.start, p.start));
      if (s.start <= p.start) next.push(toSegment(p));
      if (sEnd > end) next.push(slice(s, end, sEnd));
    }
    segs = next;
  }
  return { size, segments: mergeZeros(segs) };
}

function mergeZeros(segs: Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of segs) {
    const last = out[out.length - 1];
    if (last && last.kind === 'zero' && s.kind === 'zero') {
      out[out.length - 1] = { kind: 'zero', start: last.start, length: last.length + s.length };
    } else {
      out.push(s);
    }
  }
  return out;
}

/** Places a whole layout at `offset` inside a larger file (a container around a disk). */
export function shift(layout: Layout, offset: Bytes): Segment[] {
  return layout.segments.map((s) => ({ ...s, start: s.start + offset }));
}

/** Joins consecutive parts into one layout; each part must start where the previous ended. */
export function concat(parts: readonly Segment[][]): Layout {
  const segments: Segment[] = [];
  let pos = 0;
  for (const part of parts) {
    for (const s of part) {
      if (s.start !== pos) throw new LayoutError(`segment at ${s.start} does not follow ${pos}`);
      if (s.length > 0) segments.push(s);
      pos += s.length;
    }
  }
  return { size: pos, segments: mergeZeros(segments) };
}

/** The bytes [from, to) of a layout, as segments that start at `at` in another file. */
export function window(layout: Layout, from: Bytes, to: Bytes, at: Bytes): Segment[] {
  const out: Segment[] = [];
  if (to <= from) return out;
  const first = segmentIndexAt(layout, from);
  if (first < 0 || to > layout.size) throw new LayoutError(`window [${from}, ${to}) lies outside the ${layout.size}-byte layout`);
  for (let i = first; i < layout.segments.length; i++) {
    const s = layout.segments[i]!;
    if (s.start >= to) break;
    const part = slice(s, Math.max(s.start, from), Math.min(s.start + s.length, to));
    out.push({ ...part, start: part.start - from + at });
  }
  return out;
}

/**
 * The segments of [start, end) of a file: the given ones (sorted, not overlapping, inside the
 * range) with zero segments in the gaps between them.
 */
export function withZeroGaps(start: Bytes, end: Bytes, segs: readonly Segment[]): Segment[] {
  const out: Segment[] = [];
  let pos = start;
  for (const s of segs) {
    if (s.start < pos || s.start + s.length > end) throw new LayoutError(`segment [${s.start}, ${s.start + s.length}) is not in order inside [${start}, ${end})`);
    if (s.start > pos) out.push({ kind: 'zero', start: pos, length: s.start - pos });
    out.push(s);
    pos = s.start + s.length;
  }
  if (end > pos) out.push({ kind: 'zero', start: pos, length: end - pos });
  return out;
}

/** Index of the segment that holds byte `pos` (binary search); -1 when pos is outside. */
export function segmentIndexAt(layout: Layout, pos: Bytes): number {
  const segs = layout.segments;
  let lo = 0;
  let hi = segs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const s = segs[mid]!;
    if (pos < s.start) hi = mid - 1;
    else if (pos >= s.start + s.length) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** The distinct backing files a layout reads. */
export function sourcesOf(layout: Layout): SourceFile[] {
  const seen = new Map<string, SourceFile>();
  for (const s of layout.segments) if (s.kind === 'file') seen.set(s.source.path, s.source);
  return [...seen.values()];
}
