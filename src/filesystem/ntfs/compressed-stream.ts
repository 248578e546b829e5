// A compressed stream's bytes, decoded on read one compression unit at a time
// (docs/filesystems-ntfs.md §11): a unit whose clusters are all allocated is stored as is, one
// that is allocated and then sparse holds LZNT1 data, one that is all sparse is zeros.
import type { Bytes } from '../../base/units.js';
import type { Volume } from '../volume-fs.js';
import type { Stream } from './attribute-runs.js';
import { check } from './format-error.js';
import { lznt1Decompress } from './lznt1.js';
import { readRuns, runAt } from './stream-read.js';

/** Decoded units kept per open stream (sequential reads touch each unit several times). */
const CACHED_UNITS = 4;

/** The allocated clusters at the start of unit [vcn, vcn + clusters), and whether any is sparse. */
function allocatedPrefix(stream: Stream, vcn: number, clusters: number): { allocated: number; sparse: boolean } {
  let allocated = 0;
  let sparse = false;
  // Each step moves to the next run, and at most `clusters` runs overlap a unit.
  for (let v = vcn, i = runAt(stream.runs, vcn); v < vcn + clusters; i++) {
    const run = stream.runs[i];
    check(run !== undefined && run.vcn <= v, `no data run for VCN ${v}`);
    const n = Math.min(run.vcn + run.length, vcn + clusters) - v;
    if (run.lcn === null) sparse = true;
    else {
      check(!sparse, `compression unit at VCN ${vcn} has allocated clusters after sparse ones`);
      allocated += n;
    }
    v += n;
  }
  return { allocated, sparse };
}

export interface DecodedStream {
  readonly size: Bytes;
  read(pos: Bytes, length: number): Promise<Buffer>;
}

export function compressedStream(volume: Volume, stream: Stream, clusterSize: Bytes): DecodedStream {
  const clusters = 2 ** stream.compressionUnit;
  const unitBytes = clusters * clusterSize;
  const units = new Map<number, Promise<Buffer>>();
  const decode = async (u: number): Promise<Buffer> => {
    const vcn = u * clusters;
    const { allocated, sparse } = allocatedPrefix(stream, vcn, clusters);
    if (allocated === 0) return Buffer.alloc(unitBytes);
    const stored = await readRuns(volume, stream.runs, clusterSize, vcn * clusterSize, allocated * clusterSize);
    return sparse ? lznt1Decompress(stored, unitBytes) : stored;
  };
  const unit = (u: number): Promise<Buffer> => {
    let p = units.get(u);
    if (!p) {
      if (units.size >= CACHED_UNITS) units.delete(units.keys().next().value!);
      p = decode(u);
      p.catch(() => units.delete(u));
      units.set(u, p);
    }
    return p;
  };
  const read = async (pos: Bytes, length: number): Promise<Buffer> => {
    check(pos >= 0 && length >= 0 && pos + length <= stream.dataSize, `read of ${length} bytes at ${pos} past a ${stream.dataSize}-byte stream`);
    const out = Buffer.alloc(length);
    const end = Math.min(pos + length, stream.initializedSize);
    for (let at = pos; at < end; ) {
      const u = Math.floor(at / unitBytes);
      const next = Math.min((u + 1) * unitBytes, end);
      (await unit(u)).copy(out, at - pos, at - u * unitBytes, next - u * unitBytes);
      at = next;
    }
    return out;
  };
  return { size: stream.dataSize, read };
}
