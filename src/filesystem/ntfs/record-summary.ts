// What a listing needs of a file, read from its base MFT record in one pass over the attribute
// headers: no attribute objects, no run decoding, no copies (docs/filesystems-ntfs.md §3-4, §7).
// A record with an $ATTRIBUTE_LIST or a $REPARSE_POINT says so instead: its attributes may lie in
// other records, or it may be a link, and the caller reads it whole (inode.ts).
import type { Bytes } from '../../base/units.js';
import { check } from './format-error.js';
import { AttrType, nonResidentHeader, RECORD_IN_USE, RECORD_IS_DIRECTORY, recordHeader, residentValue, walkAttributes } from './mft-record.js';
import { parseStandardInformation, type StandardInformation } from './standard-information.js';

export interface RecordSummary {
  readonly sequence: number;
  readonly linkCount: number;
  readonly isDirectory: boolean;
  readonly info: StandardInformation;
  /** The size of the unnamed $DATA (a file) or of $I30's $INDEX_ALLOCATION (a folder), as ntfs-filesystem.ts sizeOf() gives it. */
  readonly size: Bytes;
}

/** §4: the name of a folder's index, in UTF-16LE. */
const I30 = Buffer.from('$I30', 'utf16le');

/** Whether the attribute at `at` is the one whose size is the file's (or the folder's). */
function isSized(b: Buffer, at: number, isDirectory: boolean): boolean {
  const type = b.readUInt32LE(at);
  const nameLength = b[at + 9]!;
  if (!isDirectory) return type === AttrType.data && nameLength === 0;
  const name = at + b.readUInt16LE(at + 10);
  return type === AttrType.indexAllocation && nameLength === I30.length / 2 && I30.equals(b.subarray(name, name + I30.length));
}

/**
 * The summary of the base record in `b` (fixups applied), or 'whole' when the record must be read
 * whole (it has an attribute list or a reparse point). The record and every attribute header get
 * the checks parseMftRecord() makes; a file's runs are checked when its data is read.
 */
export function summarizeRecord(b: Buffer): RecordSummary | 'whole' {
  const h = recordHeader(b);
  check((h.flags & RECORD_IN_USE) !== 0, 'is not in use');
  check(h.base.record === 0, `is an extension record of ${h.base.record}`);
  const isDirectory = (h.flags & RECORD_IS_DIRECTORY) !== 0;
  let whole = false;
  let si: Buffer | null | undefined;
  // sizeOf(): the first sized attribute's value length if it is resident, else the data size of the first extent from VCN 0.
  let firstSized: 'resident' | 'non-resident' | undefined;
  let size: Bytes = 0;
  let sized = false;
  walkAttributes(b, h, (at, length) => {
    const type = b.readUInt32LE(at);
    if (type === AttrType.attributeList || type === AttrType.reparsePoint) return !(whole = true);
    const resident = b[at + 8] === 0;
    const value = resident ? residentValue(b, at, length) : undefined;
    const header = resident ? undefined : nonResidentHeader(b, at, length);
    if (type === AttrType.standardInformation && b[at + 9] === 0 && si === undefined) si = value ? b.subarray(value.offset, value.offset + value.length) : null;
    if (sized || !isSized(b, at, isDirectory)) return true;
    firstSized ??= resident ? 'resident' : 'non-resident';
    if (firstSized === 'resident') [size, sized] = [value!.length, true];
    else if (header?.startVcn === 0) [size, sized] = [header.dataSize, true];
    return true;
  });
  if (whole) return 'whole';
  check(si != null, 'no resident $STANDARD_INFORMATION');
  return { sequence: h.sequence, linkCount: h.linkCount, isDirectory, info: parseStandardInformation(si), size };
}
