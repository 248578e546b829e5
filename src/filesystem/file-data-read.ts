// Reading a FileData of a volume (filesystem/volume-fs.ts): a Layout's `file` segments lie in the
// volume's backing file, so they are read through the volume, every range checked there.
import type { Bytes } from '../base/units.js';
import { segmentIndexAt } from '../disk/layout.js';
import type { FileData, Volume } from './volume-fs.js';

/** Bytes [pos, pos + length) of `data`, fewer at its end. */
export async function readFileData(volume: Volume, data: FileData, pos: Bytes, length: number): Promise<Buffer> {
  if (data.kind === 'decoded') return data.read(pos, length);
  const { layout } = data;
  const end = Math.min(layout.size, pos + length);
  if (!(Number.isSafeInteger(pos) && pos >= 0) || pos >= end) return Buffer.alloc(0);
  const out = Buffer.alloc(end - pos);
  for (let i = segmentIndexAt(layout, pos); i >= 0 && i < layout.segments.length; i++) {
    const s = layout.segments[i]!;
    if (s.start >= end) break;
    const from = Math.max(s.start, pos);
    const to = Math.min(s.start + s.length, end);
    if (s.kind === 'bytes') s.data.copy(out, from - pos, from - s.start, to - s.start);
    if (s.kind === 'file') {
      if (s.source.path !== volume.source.path) throw new Error(`${volume.name}: a file's data lies in ${s.source.path}, outside the volume`);
      (await volume.read(s.offset + (from - s.start) - volume.sourceOffset, to - from)).copy(out, from - pos);
    }
  }
  return out;
}
