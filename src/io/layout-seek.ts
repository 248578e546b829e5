// lseek(2) SEEK_DATA / SEEK_HOLE over a layout: `zero` segments are holes, `bytes` are data, and
// a `file` segment has the holes of its backing file. So `cp --sparse=always`, `qemu-img convert`
// and `tar -S` skip the zeros of a fixed disk instead of reading them.
import type { Bytes } from '../base/units.js';
import { type Layout, segmentIndexAt, type SourceFile } from '../disk/layout.js';
import { SEEK_DATA, SEEK_HOLE, seek } from '../sys/sparse.js';

/**
 * The first offset at or after `offset` that holds data (SEEK_DATA) or is a hole (SEEK_HOLE; the
 * end of the file is one), or undefined where lseek(2) fails ENXIO: at or past the end, or no
 * data after `offset`.
 */
export function seekLayout(layout: Layout, fdOf: (s: SourceFile) => number, offset: Bytes, whence: typeof SEEK_DATA | typeof SEEK_HOLE): Bytes | undefined {
  if (offset < 0 || offset >= layout.size) return undefined;
  const wantData = whence === SEEK_DATA;
  for (let i = segmentIndexAt(layout, offset); i < layout.segments.length; i++) {
    const s = layout.segments[i]!;
    const from = Math.max(offset, s.start);
    if (s.kind === 'zero' || s.kind === 'bytes') {
      if ((s.kind === 'bytes') === wantData) return from;
      continue;
    }
    const end = s.offset + s.length;
    const at = seek(fdOf(s.source), s.offset + from - s.start, whence);
    // Past the segment's part of its file (or no more data in the file): look at the next segment.
    if (at !== undefined && at < end) return s.start + at - s.offset;
  }
  return wantData ? undefined : layout.size;
}
