// GPT header and entry array (UEFI specification, "GPT Header" and "GPT Partition Entry Array"; docs/urbackup-raw-format.md §3.5).
import { crc32 } from 'node:zlib';
import type { Bytes } from '../base/units.js';

export const GPT_SIGNATURE = 'EFI PART';
/** Header field offsets (docs/urbackup-raw-format.md §3.5 table). */
const HDR_SIZE = 12;
const HDR_CRC = 16;
const HDR_CURRENT_LBA = 24;
const HDR_BACKUP_LBA = 32;
const HDR_FIRST_LBA = 40;
const HDR_LAST_LBA = 48;
export const HDR_DISK_GUID = 56;
const HDR_TABLE_LBA = 72;
const HDR_NUM_ENTRIES = 80;
const HDR_ENTRY_SIZE = 84;
const HDR_TABLE_CRC = 88;
/** Entry: type GUID @0, unique GUID @16, first LBA @32, last LBA @40 (inclusive), flags @48, name @56. */
const ENT_UNIQUE_GUID = 16;
const ENT_FIRST_LBA = 32;
const ENT_LAST_LBA = 40;
const ENT_FLAGS = 48;
const ENT_NAME = 56;
const ENT_NAME_BYTES = 72;

export interface GptHeader {
  readonly headerSize: number;
  readonly currentLba: number;
  readonly backupLba: number;
  readonly firstUsableLba: number;
  readonly lastUsableLba: number;
  readonly diskGuid: Buffer;
  readonly tableLba: number;
  readonly numEntries: number;
  readonly entrySize: number;
  readonly headerCrcOk: boolean;
  readonly tableCrc: number;
}

export interface GptEntry {
  readonly index: number; // 1-based slot in the entry array
  readonly typeGuid: Buffer;
  readonly uniqueGuid: Buffer;
  readonly firstLba: number;
  readonly lastLba: number;
  readonly name: string;
}

export class GptError extends Error {
  override name = 'GptError';
}

function u64(b: Buffer, off: number, what: string): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GptError(`GPT ${what} is out of range (${v})`);
  return Number(v);
}

export function parseGptHeader(b: Buffer): GptHeader {
  if (b.length < 92) throw new GptError(`GPT header is ${b.length} bytes, shorter than 92`);
  if (b.toString('latin1', 0, 8) !== GPT_SIGNATURE) throw new GptError('GPT header has no "EFI PART" signature');
  const headerSize = b.readUInt32LE(HDR_SIZE);
  if (headerSize < 92 || headerSize > b.length) throw new GptError(`GPT header size ${headerSize} is invalid`);
  const numEntries = b.readUInt32LE(HDR_NUM_ENTRIES);
  const entrySize = b.readUInt32LE(HDR_ENTRY_SIZE);
  if (entrySize < 128 || entrySize % 8 !== 0 || entrySize > 4096) throw new GptError(`GPT entry size ${entrySize} is invalid`);
  if (numEntries > 65536) throw new GptError(`GPT claims ${numEntries} entries`);
  return {
    headerSize,
    currentLba: u64(b, HDR_CURRENT_LBA, 'current LBA'),
    backupLba: u64(b, HDR_BACKUP_LBA, 'backup LBA'),
    firstUsableLba: u64(b, HDR_FIRST_LBA, 'first usable LBA'),
    lastUsableLba: u64(b, HDR_LAST_LBA, 'last usable LBA'),
    diskGuid: Buffer.from(b.subarray(HDR_DISK_GUID, HDR_DISK_GUID + 16)),
    tableLba: u64(b, HDR_TABLE_LBA, 'table LBA'),
    numEntries,
    entrySize,
    headerCrcOk: gptHeaderCrc(b, headerSize) === b.readUInt32LE(HDR_CRC),
    tableCrc: b.readUInt32LE(HDR_TABLE_CRC),
  };
}

/** CRC-32 of the first headerSize bytes with the CRC field zeroed. */
export function gptHeaderCrc(b: Buffer, headerSize: number): number {
  const copy = Buffer.from(b.subarray(0, headerSize));
  copy.writeUInt32LE(0, HDR_CRC);
  return crc32(copy);
}

export function gptTableCrc(table: Buffer, h: Pick<GptHeader, 'numEntries' | 'entrySize'>): number {
  return crc32(table.subarray(0, h.numEntries * h.entrySize));
}

function isZero(b: Buffer, from: number, length: number): boolean {
  for (let i = from; i < from + length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * The non-empty entries in table order. Like UrBackup's readPartitionsGPT an entry is empty
 * only if its type GUID is zero and its first LBA, last LBA and flags are all zero
 * (docs/urbackup-raw-format.md §3.5, §6.2).
 */
export function gptEntries(table: Buffer, h: Pick<GptHeader, 'numEntries' | 'entrySize'>): GptEntry[] {
  const n = Math.min(h.numEntries, Math.floor(table.length / h.entrySize));
  const out: GptEntry[] = [];
  for (let i = 0; i < n; i++) {
    // Most of a table's 128 entries are empty (type GUID, first and last LBA and flags all zero): tested in place, without a view or BigInt each.
    if (isZero(table, i * h.entrySize, 16) && isZero(table, i * h.entrySize + ENT_FIRST_LBA, ENT_FLAGS + 8 - ENT_FIRST_LBA)) continue;
    const e = table.subarray(i * h.entrySize, (i + 1) * h.entrySize);
    const typeGuid = e.subarray(0, 16);
    const firstLba = u64(e, ENT_FIRST_LBA, `entry ${i + 1} first LBA`);
    const lastLba = u64(e, ENT_LAST_LBA, `entry ${i + 1} last LBA`);
    const name = e.subarray(ENT_NAME, ENT_NAME + ENT_NAME_BYTES).toString('utf16le').replace(/\0.*$/s, '');
    out.push({ index: i + 1, typeGuid: Buffer.from(typeGuid), uniqueGuid: Buffer.from(e.subarray(ENT_UNIQUE_GUID, ENT_UNIQUE_GUID + 16)), firstLba, lastLba, name });
  }
  return out;
}

/** Bytes of one partition: last LBA is inclusive. */
export function gptEntryBytes(e: GptEntry, sectorSize: number): { start: Bytes; length: Bytes } {
  return { start: e.firstLba * sectorSize, length: (e.lastLba - e.firstLba + 1) * sectorSize };
}

/** Microsoft GUID text form (Data1–3 little-endian). */
export function guidToString(g: Buffer): string {
  const h = (a: number, b: number, le: boolean): string => {
    const s = Buffer.from(g.subarray(a, b));
    return (le ? s.reverse() : s).toString('hex');
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`.toUpperCase();
}
