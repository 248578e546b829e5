// Reads bytes of a non-resident stream from the volume, run by run: sparse runs and bytes past
// the initialized size read as zeros (docs/filesystems-ntfs.md §5).
import type { Bytes } from '../../base/units.js';
import type { Volume } from '../volume-fs.js';
import type { Run } from './data-runs.js';
import type { Stream } from './attribute-runs.js';
import { check } from './format-error.js';

/** Index of the run that holds VCN `vcn` (binary search), or -1. */
export function runAt(runs: readonly Run[], vcn: number): number {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = runs[mid]!;
    if (vcn < r.vcn) hi = mid - 1;
    else if (vcn >= r.vcn + r.length) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** `length` bytes at `offset` of what `runs` map, sparse runs as zeros; every byte must be mapped. */
export async function readRuns(volume: Volume, runs: readonly Run[], clusterSize: Bytes, offset: Bytes, length: number): Promise<Buffer> {
  const one = runs[runAt(runs, Math.floor(offset / clusterSize))];
  // Within one stored run (an MFT block, an index block): the volume's buffer, not a copy of it.
  if (one?.lcn != null && offset + length <= (one.vcn + one.length) * clusterSize) return volume.read(one.lcn * clusterSize + (offset - one.vcn * clusterSize), length);
  const out = Buffer.alloc(length);
  const end = offset + length;
  const reads: Promise<void>[] = [];
  let pos = offset;
  for (let i = runAt(runs, Math.floor(offset / clusterSize)); pos < end; i++) {
    const run = runs[i];
    check(run !== undefined, `no data run for byte ${pos}`);
    const runStart = run.vcn * clusterSize;
    const runEnd = Math.min(runStart + run.length * clusterSize, end);
    if (run.lcn !== null) {
      const at = pos - offset;
      reads.push(volume.read(run.lcn * clusterSize + (pos - runStart), runEnd - pos).then((b) => void b.copy(out, at)));
    }
    pos = runEnd;
  }
  await Promise.all(reads);
  return out;
}

/** `length` bytes of `stream` at `offset`, which must lie inside its data size. */
export async function readStream(volume: Volume, stream: Stream, clusterSize: Bytes, offset: Bytes, length: number): Promise<Buffer> {
  check(offset >= 0 && length >= 0 && offset + length <= stream.dataSize, `read of ${length} bytes at ${offset} past a ${stream.dataSize}-byte stream`);
  const stored = Math.max(0, Math.min(length, stream.initializedSize - offset));
  const b = await readRuns(volume, stream.runs, clusterSize, offset, stored);
  return stored === length ? b : Buffer.concat([b, Buffer.alloc(length - stored)]);
}
