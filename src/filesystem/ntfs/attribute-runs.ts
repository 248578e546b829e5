// A non-resident attribute as a whole: its extents (one per record, docs/filesystems-ntfs.md §6)
// joined into one run list, and the sizes from the first extent.
import type { Bytes } from '../../base/units.js';
import type { Run } from './data-runs.js';
import { check } from './format-error.js';
import type { NonResident } from './mft-record.js';

export interface Stream {
  readonly dataSize: Bytes;
  readonly initializedSize: Bytes;
  readonly allocatedSize: Bytes;
  readonly compressionUnit: number;
  /** Sorted, contiguous from VCN 0. */
  readonly runs: readonly Run[];
}

/** Joins the extents of one attribute; they must follow each other from VCN 0 without a gap. */
export function joinExtents(extents: readonly NonResident[], clusterSize: Bytes): Stream {
  const sorted = [...extents].sort((a, b) => a.startVcn - b.startVcn);
  const first = sorted[0];
  check(first !== undefined && first.startVcn === 0, 'attribute has no extent at VCN 0');
  const runs: Run[] = [];
  let vcn = 0;
  for (const e of sorted) {
    check(e.startVcn === vcn, `attribute extent at VCN ${e.startVcn} does not follow VCN ${vcn}`);
    runs.push(...e.runs);
    vcn = e.lastVcn + 1;
  }
  check(vcn * clusterSize <= Number.MAX_SAFE_INTEGER, `runs of ${vcn} clusters are too long`);
  const { dataSize, initializedSize, allocatedSize, compressionUnit } = first;
  check(initializedSize <= dataSize || dataSize === 0, `initialized size ${initializedSize} over data size ${dataSize}`);
  check(vcn * clusterSize >= dataSize, `runs cover ${vcn} clusters, less than data size ${dataSize}`);
  return { dataSize, initializedSize: Math.min(initializedSize, dataSize), allocatedSize, compressionUnit, runs };
}
