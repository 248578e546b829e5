// A structure of an NTFS volume that breaks the format (docs/filesystems-ntfs.md). Thrown by the
// pure parsers of this folder and caught by type in ntfs-filesystem.ts, which names the volume
// and the record in the CorruptVolumeError it throws instead.
import { hex64, readSafeI64, readSafeU64 } from '../../base/int64.js';

export class NtfsFormatError extends Error {
  override name = 'NtfsFormatError';
}

/**
 * Throws an NtfsFormatError unless `ok`. Its message is built even when `ok`: code run per
 * record, attribute or index entry writes `if (!ok) throw new NtfsFormatError(...)` instead
 * (a third of what an NTFS listing allocated, docs/performance.md §10).
 */
export function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new NtfsFormatError(what);
}

/** The unsigned (or, with `signed`, signed) 64-bit field at `at`; an NtfsFormatError when it is not a safe integer. */
export function safe64(b: Buffer, at: number, what: string, signed = false): number {
  const v = signed ? readSafeI64(b, at) : readSafeU64(b, at);
  if (v === undefined) throw new NtfsFormatError(`${what} ${hex64(b, at)} is out of range`);
  return v;
}
