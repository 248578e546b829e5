// $STANDARD_INFORMATION: a file's times and FILE_ATTRIBUTE_* flags (docs/filesystems-ntfs.md §7).
import { NtfsFormatError } from './format-error.js';
import { ntTimeToMs } from './nt-time.js';

/** §7: the NTFS 1.2 value; NTFS 3 appends owner, security and quota fields. */
const MIN_LENGTH = 0x24;
export const FILE_ATTRIBUTE_ENCRYPTED = 0x4000;

export interface StandardInformation {
  readonly birthtimeMs: number;
  readonly mtimeMs: number;
  /** When the MFT record last changed. */
  readonly ctimeMs: number;
  readonly atimeMs: number;
  readonly dosAttributes: number;
}

export function parseStandardInformation(b: Buffer): StandardInformation {
  if (!(b.length >= MIN_LENGTH)) throw new NtfsFormatError(`$STANDARD_INFORMATION of ${b.length} bytes`);
  return {
    birthtimeMs: ntTimeToMs(b, 0x00),
    mtimeMs: ntTimeToMs(b, 0x08),
    ctimeMs: ntTimeToMs(b, 0x10),
    atimeMs: ntTimeToMs(b, 0x18),
    dosAttributes: b.readUInt32LE(0x20),
  };
}
