// One MFT record (FILE) and its attribute headers (docs/filesystems-ntfs.md §3-4). Pure: the
// record's bytes, with fixups applied, in; its attributes out.
import type { Bytes } from '../../base/units.js';
import { decodeRuns, type Run } from './data-runs.js';
import { check, safe64, NtfsFormatError } from './format-error.js';
import { parseStandardInformation, type StandardInformation } from './standard-information.js';

/** §3 FILE record header fields. */
const SEQUENCE_FIELD = 0x10;
const LINK_COUNT_FIELD = 0x12;
const FIRST_ATTRIBUTE_FIELD = 0x14;
const FLAGS_FIELD = 0x16;
const BYTES_IN_USE_FIELD = 0x18;
const BASE_RECORD_FIELD = 0x20;
const RECORD_IN_USE = 0x0001;
export const RECORD_IS_DIRECTORY = 0x0002;
/** §4: the type that ends the attribute list of a record. */
const END_OF_ATTRIBUTES = 0xffffffff;
/** §4 attribute header flags. */
export const ATTR_COMPRESSED = 0x0001;
export const ATTR_ENCRYPTED = 0x4000;
const RESIDENT_HEADER = 0x18;
const NON_RESIDENT_HEADER = 0x40;

/** §4 attribute types. */
export const AttrType = {
  standardInformation: 0x10,
  attributeList: 0x20,
  fileName: 0x30,
  data: 0x80,
  indexRoot: 0x90,
  indexAllocation: 0xa0,
  bitmap: 0xb0,
  reparsePoint: 0xc0,
  loggedUtilityStream: 0x100,
} as const;

export interface NonResident {
  readonly startVcn: number;
  readonly lastVcn: number;
  /** log2 of the compression unit in clusters; 0 when not compressed. */
  readonly compressionUnit: number;
  readonly allocatedSize: Bytes;
  readonly dataSize: Bytes;
  readonly initializedSize: Bytes;
  readonly runs: readonly Run[];
}

export interface Attribute {
  readonly type: number;
  readonly name: string;
  readonly flags: number;
  readonly id: number;
  /** The value of a resident attribute; undefined for a non-resident one. */
  readonly value?: Buffer;
  readonly nonResident?: NonResident;
}

/** An MFT reference: the record number (low 48 bits) and its sequence number (high 16). */
export interface FileRef {
  readonly record: number;
  readonly sequence: number;
}

export function readRef(b: Buffer, at: number): FileRef {
  return { record: b.readUIntLE(at, 6), sequence: b.readUInt16LE(at + 6) };
}

export interface MftRecord {
  readonly sequence: number;
  readonly linkCount: number;
  readonly flags: number;
  /** The base record of an extension record; record 0 for a base record. */
  readonly base: FileRef;
  readonly attributes: readonly Attribute[];
}


function parseNonResident(b: Buffer, at: number, length: number, totalClusters: number): NonResident {
  if (!(length >= NON_RESIDENT_HEADER)) throw new NtfsFormatError(`non-resident attribute of ${length} bytes`);
  const startVcn = safe64(b, at + 0x10, 'start VCN', true);
  const lastVcn = safe64(b, at + 0x18, 'last VCN', true);
  const runsOffset = b.readUInt16LE(at + 0x20);
  const compressionUnit = b.readUInt16LE(at + 0x22);
  const allocatedSize = safe64(b, at + 0x28, 'allocated size', true);
  const dataSize = safe64(b, at + 0x30, 'data size', true);
  const initializedSize = safe64(b, at + 0x38, 'initialized size', true);
  if (!(startVcn >= 0 && lastVcn >= startVcn - 1)) throw new NtfsFormatError(`VCNs ${startVcn}-${lastVcn}`);
  check(dataSize >= 0 && initializedSize >= 0 && allocatedSize >= 0, 'negative attribute size');
  if (!(compressionUnit <= 16)) throw new NtfsFormatError(`compression unit 2^${compressionUnit} clusters`);
  if (!(runsOffset >= NON_RESIDENT_HEADER && runsOffset < length)) throw new NtfsFormatError(`mapping pairs at ${runsOffset} of a ${length}-byte attribute`);
  const runs = decodeRuns(b.subarray(at, at + length), runsOffset, startVcn, lastVcn, totalClusters);
  return { startVcn, lastVcn, compressionUnit, allocatedSize, dataSize, initializedSize, runs };
}

function parseAttribute(b: Buffer, at: number, length: number, totalClusters: number): Attribute {
  const type = b.readUInt32LE(at);
  const nameLength = b[at + 9]!;
  const nameOffset = b.readUInt16LE(at + 10);
  if (!(nameLength === 0 || nameOffset + 2 * nameLength <= length)) throw new NtfsFormatError(`attribute 0x${type.toString(16)}'s name runs past it`);
  const name = nameLength === 0 ? '' : b.toString('utf16le', at + nameOffset, at + nameOffset + 2 * nameLength);
  const flags = b.readUInt16LE(at + 12);
  const id = b.readUInt16LE(at + 14);
  if (b[at + 8] !== 0) return { type, name, flags, id, nonResident: parseNonResident(b, at, length, totalClusters) };
  if (!(length >= RESIDENT_HEADER)) throw new NtfsFormatError(`resident attribute of ${length} bytes`);
  const valueLength = b.readUInt32LE(at + 0x10);
  const valueOffset = b.readUInt16LE(at + 0x14);
  if (!(valueOffset + valueLength <= length)) throw new NtfsFormatError(`attribute 0x${type.toString(16)}'s value runs past it`);
  return { type, name, flags, id, value: b.subarray(at + valueOffset, at + valueOffset + valueLength) };
}

/**
 * Calls `visit` with the offset and length of each attribute of a FILE record whose fixups were
 * applied, each checked to lie inside the bytes in use. Each attribute takes at least 16 bytes,
 * so the record's size bounds the loop.
 */
function eachAttribute(b: Buffer, visit: (at: number, length: number) => void): void {
  const bytesInUse = b.readUInt32LE(BYTES_IN_USE_FIELD);
  if (!(bytesInUse <= b.length)) throw new NtfsFormatError(`${bytesInUse} bytes in use in a ${b.length}-byte record`);
  let at = b.readUInt16LE(FIRST_ATTRIBUTE_FIELD);
  if (!(at % 8 === 0 && at >= 0x30)) throw new NtfsFormatError(`first attribute at ${at}`);
  for (;;) {
    check(at + 4 <= bytesInUse, 'attributes run past the bytes in use without an end marker');
    if (b.readUInt32LE(at) === END_OF_ATTRIBUTES) return;
    if (!(at + 16 <= bytesInUse)) throw new NtfsFormatError(`attribute at ${at} runs past the bytes in use`);
    const length = b.readUInt32LE(at + 4);
    if (!(length >= 16 && length % 8 === 0 && at + length <= bytesInUse)) throw new NtfsFormatError(`attribute at ${at} has length ${length}`);
    visit(at, length);
    at += length;
  }
}

export function isInUse(b: Buffer): boolean {
  return (b.readUInt16LE(FLAGS_FIELD) & RECORD_IN_USE) !== 0;
}

/** The header and attributes of a FILE record whose fixups were applied. */
export function parseMftRecord(b: Buffer, totalClusters: number): MftRecord {
  const attributes: Attribute[] = [];
  eachAttribute(b, (at, length) => attributes.push(parseAttribute(b, at, length, totalClusters)));
  return {
    sequence: b.readUInt16LE(SEQUENCE_FIELD),
    linkCount: b.readUInt16LE(LINK_COUNT_FIELD),
    flags: b.readUInt16LE(FLAGS_FIELD),
    base: readRef(b, BASE_RECORD_FIELD),
    attributes,
  };
}

/** What a listing shows of a record: its header, its times and attributes, and the size a stat shows. */
export interface RecordSummary {
  readonly sequence: number;
  readonly linkCount: number;
  readonly flags: number;
  /** The base record of an extension record; 0 for a base record. */
  readonly baseRecord: number;
  readonly info: StandardInformation;
  /** A file's unnamed $DATA, a folder's $I30 allocation: the first such attribute's value length, else its extent at VCN 0's data size. */
  readonly size: Bytes;
}

/** Whether the attribute at `at` has the name `name` (UTF-16LE, compared unit by unit: no string per attribute). */
function named(b: Buffer, at: number, length: number, name: string): boolean {
  if (b[at + 9] !== name.length) return false;
  const nameAt = at + b.readUInt16LE(at + 10);
  if (!(name.length === 0 || nameAt + 2 * name.length <= at + length)) throw new NtfsFormatError(`attribute at ${at}: its name runs past it`);
  for (let i = 0; i < name.length; i++) if (b.readUInt16LE(nameAt + 2 * i) !== name.charCodeAt(i)) return false;
  return true;
}

/** A resident attribute's value, checked to lie inside it. */
function residentValue(b: Buffer, at: number, length: number): Buffer {
  if (!(length >= RESIDENT_HEADER)) throw new NtfsFormatError(`resident attribute of ${length} bytes`);
  const valueLength = b.readUInt32LE(at + 0x10);
  const valueOffset = b.readUInt16LE(at + 0x14);
  if (!(valueOffset + valueLength <= length)) throw new NtfsFormatError(`attribute at ${at}: its value runs past it`);
  return b.subarray(at + valueOffset, at + valueOffset + valueLength);
}

/**
 * A listing's view of a base or extension record (§3, §4, §7) from one pass over its attribute
 * headers, the runs left undecoded; undefined when it has an attribute list or a reparse point,
 * whose meaning needs the whole file (inode.ts). What it does not read is checked when the file
 * is opened.
 */
export function summarizeRecord(b: Buffer): RecordSummary | undefined {
  const sizeType = b.readUInt16LE(FLAGS_FIELD) & RECORD_IS_DIRECTORY ? AttrType.indexAllocation : AttrType.data;
  const sizeName = sizeType === AttrType.data ? '' : '$I30';
  let si: Buffer | undefined;
  let siSeen = false;
  let special = false;
  let size: Bytes | undefined;
  let sizeSeen = false;
  eachAttribute(b, (at, length) => {
    const type = b.readUInt32LE(at);
    const resident = b[at + 8] === 0;
    if ((type === AttrType.attributeList || type === AttrType.reparsePoint) && named(b, at, length, '')) special = true;
    else if (type === AttrType.standardInformation && !siSeen && named(b, at, length, '')) {
      siSeen = true;
      si = resident ? residentValue(b, at, length) : undefined;
    } else if (type === sizeType && size === undefined && named(b, at, length, sizeName)) {
      if (resident && !sizeSeen) size = residentValue(b, at, length).length;
      else if (!resident) {
        if (!(length >= NON_RESIDENT_HEADER)) throw new NtfsFormatError(`non-resident attribute of ${length} bytes`);
        if (safe64(b, at + 0x10, 'start VCN', true) === 0) size = safe64(b, at + 0x30, 'data size', true);
      }
      sizeSeen = true;
    }
  });
  if (special) return undefined;
  check(si !== undefined, 'no resident $STANDARD_INFORMATION');
  return {
    sequence: b.readUInt16LE(SEQUENCE_FIELD),
    linkCount: b.readUInt16LE(LINK_COUNT_FIELD),
    flags: b.readUInt16LE(FLAGS_FIELD),
    baseRecord: b.readUIntLE(BASE_RECORD_FIELD, 6),
    info: parseStandardInformation(si),
    size: size ?? 0,
  };
}
