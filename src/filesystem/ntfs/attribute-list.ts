// $ATTRIBUTE_LIST: where each attribute of a file lies when they do not fit its base record
// (docs/filesystems-ntfs.md §6).
import { check, safe64 } from './format-error.js';
import { readRef, type FileRef } from './mft-record.js';

const ENTRY_HEADER = 0x1a;

export interface AttributeListEntry {
  readonly type: number;
  readonly name: string;
  readonly startVcn: number;
  readonly record: FileRef;
}

export function parseAttributeList(b: Buffer): AttributeListEntry[] {
  const entries: AttributeListEntry[] = [];
  let at = 0;
  // Every entry is at least 0x1a bytes long, so the list's length bounds the loop.
  while (at + ENTRY_HEADER <= b.length) {
    const length = b.readUInt16LE(at + 4);
    const nameLength = b[at + 6]!;
    const nameOffset = b[at + 7]!;
    check(length >= ENTRY_HEADER && at + length <= b.length, `attribute list entry at ${at} has length ${length}`);
    check(nameLength === 0 || nameOffset + 2 * nameLength <= length, `attribute list entry at ${at}: name runs past it`);
    const startVcn = safe64(b, at + 8, `attribute list entry at ${at}: start VCN`);
    entries.push({
      type: b.readUInt32LE(at),
      name: b.toString('utf16le', at + nameOffset, at + nameOffset + 2 * nameLength),
      startVcn,
      record: readRef(b, at + 0x10),
    });
    at += length;
  }
  return entries;
}
