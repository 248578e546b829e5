// Mapping pairs: the data runs of a non-resident attribute (docs/filesystems-ntfs.md §5).
import { check, NtfsFormatError } from './format-error.js';

/** `length` clusters from virtual cluster `vcn`; at logical cluster `lcn`, or sparse (null). */
export interface Run {
  readonly vcn: number;
  readonly length: number;
  readonly lcn: number | null;
}

/** A little-endian integer of `size` (≤ 8) bytes, signed or not, that must be a safe integer. */
function readInt(b: Buffer, at: number, size: number, signed: boolean): number {
  if (size <= 6) return signed ? b.readIntLE(at, size) : b.readUIntLE(at, size);
  // Two halves, as in base/int64.ts: exact, and past 2^53 whenever the high half is too large.
  const high = signed ? b.readIntLE(at + 4, size - 4) : b.readUIntLE(at + 4, size - 4);
  const v = high * 2 ** 32 + b.readUInt32LE(at);
  if (!(Number.isSafeInteger(v))) throw new NtfsFormatError(`data run field of ${size} bytes at ${at} is too large`);
  return v;
}

/**
 * The runs of the mapping pairs in `b` from `at`, for VCNs [startVcn, lastVcn]; every run
 * inside the volume's `totalClusters`, lengths positive, the VCNs exactly covered.
 */
export function decodeRuns(b: Buffer, at: number, startVcn: number, lastVcn: number, totalClusters: number): Run[] {
  const runs: Run[] = [];
  let vcn = startVcn;
  let lcn = 0;
  let pos = at;
  while (pos < b.length && b[pos] !== 0) {
    const lengthSize = b[pos]! & 0x0f;
    const offsetSize = b[pos]! >> 4;
    if (!(lengthSize >= 1 && lengthSize <= 8 && offsetSize <= 8)) throw new NtfsFormatError(`data run header 0x${b[pos]!.toString(16)} at ${pos}`);
    if (!(pos + 1 + lengthSize + offsetSize <= b.length)) throw new NtfsFormatError(`data run at ${pos} runs past its attribute`);
    const length = readInt(b, pos + 1, lengthSize, true);
    if (!(length > 0 && vcn + length <= lastVcn + 1)) throw new NtfsFormatError(`data run of ${length} clusters at VCN ${vcn} is outside VCNs ${startVcn}-${lastVcn}`);
    if (offsetSize === 0) {
      runs.push({ vcn, length, lcn: null });
    } else {
      lcn += readInt(b, pos + 1 + lengthSize, offsetSize, true);
      if (!(lcn >= 0 && lcn + length <= totalClusters)) throw new NtfsFormatError(`data run at LCN ${lcn} of ${length} clusters lies outside the volume's ${totalClusters} clusters`);
      runs.push({ vcn, length, lcn });
    }
    vcn += length;
    pos += 1 + lengthSize + offsetSize;
  }
  check(pos < b.length, 'data runs have no end marker');
  if (!(vcn === lastVcn + 1 || (runs.length === 0 && lastVcn === startVcn - 1))) throw new NtfsFormatError(`data runs end at VCN ${vcn}, not after last VCN ${lastVcn}`);
  return runs;
}
