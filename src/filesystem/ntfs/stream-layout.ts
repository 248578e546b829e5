// A non-resident, uncompressed stream as a Layout of the volume's backing file: runs become
// `file` segments, sparse runs and bytes past the initialized size `zero` (docs/filesystems-ntfs.md §5).
import type { Bytes } from '../../base/units.js';
import type { Layout, Segment, SourceFile } from '../../disk/layout.js';
import type { Stream } from './attribute-runs.js';

/** Where the volume lies in its backing file. */
export interface Backing {
  readonly source: SourceFile;
  readonly sourceOffset: Bytes;
  readonly clusterSize: Bytes;
}

function push(out: Segment[], s: Segment): void {
  const last = out[out.length - 1];
  if (last && last.kind === 'zero' && s.kind === 'zero') {
    out[out.length - 1] = { kind: 'zero', start: last.start, length: last.length + s.length };
  } else if (last && last.kind === 'file' && s.kind === 'file' && last.offset + last.length === s.offset) {
    out[out.length - 1] = { ...last, length: last.length + s.length };
  } else {
    out.push(s);
  }
}

export function streamLayout(stream: Stream, backing: Backing): Layout {
  const { dataSize, initializedSize } = stream;
  const out: Segment[] = [];
  for (const run of stream.runs) {
    const start = run.vcn * backing.clusterSize;
    if (start >= dataSize) break;
    const end = Math.min(start + run.length * backing.clusterSize, dataSize);
    const stored = run.lcn === null ? start : Math.min(Math.max(start, initializedSize), end);
    if (stored > start) {
      push(out, { kind: 'file', start, length: stored - start, source: backing.source, offset: backing.sourceOffset + run.lcn! * backing.clusterSize });
    }
    if (end > stored) push(out, { kind: 'zero', start: stored, length: end - stored });
  }
  return { size: dataSize, segments: out };
}
