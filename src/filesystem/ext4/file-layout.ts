// A file's bytes as a Layout of the volume's backing file: initialized extents as `file`
// segments, holes and uninitialized extents as zeros (docs/architecture.md §1).
import type { Bytes } from '../../base/units.js';
import { type Layout, type Segment, withZeroGaps } from '../../disk/layout.js';
import type { Volume } from '../volume-fs.js';
import type { Extent } from './extent.js';

/** The first `size` bytes of a file made of `extents` (sorted, not overlapping) of `blockSize`-byte blocks. */
export function extentsLayout(extents: readonly Extent[], size: Bytes, blockSize: Bytes, volume: Volume): Layout {
  const segs: Segment[] = [];
  for (const e of extents) {
    const start = e.logical * blockSize;
    if (start >= size) break;
    if (!e.initialized) continue;
    const length = Math.min(e.length * blockSize, size - start);
    segs.push({ kind: 'file', start, length, source: volume.source, offset: volume.sourceOffset + e.physical * blockSize });
  }
  return { size, segments: withZeroGaps(0, size, segs) };
}

/** A layout of bytes held in memory (inline data). */
export function bytesLayout(view: Buffer): Layout {
  const data = Buffer.from(view); // a copy: the view may pin a whole cached chunk
  return { size: data.length, segments: data.length > 0 ? [{ kind: 'bytes', start: 0, length: data.length, data }] : [] };
}
