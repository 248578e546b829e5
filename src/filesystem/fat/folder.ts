// A FAT folder's entries with their names (docs/filesystems-ext4-fat.md §10): long names from
// the long-name entries that precede a short entry in order, with its checksum; else the 8.3 name.
import { END_OF_FOLDER, FREE_ENTRY, isLongNameEntry, longNameChars, ATTR } from './dir-entry.js';
import { DIR_ENTRY_BYTES } from './boot-sector.js';
import { shortName, shortNameChecksum } from './short-name.js';

/** LDIR_Ord: the last (first stored) entry of a long name has this bit; 20 entries hold 255 characters. */
const LAST_LONG_ENTRY = 0x40;
const ORD_MASK = 0x1f;
const MAX_LONG_ENTRIES = 20;
/** LDIR_Chksum. */
const CHECKSUM_AT = 13;
/** DIR_NTRes: the short name's case bits. */
const NT_RES_AT = 12;
/** A name no path can hold is left out rather than served. */
const UNSERVABLE_NAME = /[/\0]/;

export interface FolderEntry {
  /** The long name if a valid one precedes the entry, else the 8.3 name. */
  readonly name: string;
  readonly shortName: string;
  /** Byte of the short entry in the folder's bytes. */
  readonly at: number;
}

interface LongName {
  readonly parts: string[];
  readonly checksum: number;
  /** The LDIR_Ord the next entry must carry; 0 once every part is read. */
  next: number;
}

function decodeLongPart(rec: Buffer): string {
  const s = longNameChars(rec).toString('utf16le');
  const end = s.indexOf('\u0000');
  return end < 0 ? s : s.slice(0, end);
}

/** Takes one long-name entry into the name being collected; a break in sequence drops it. */
function addLongPart(lfn: LongName | undefined, rec: Buffer): LongName | undefined {
  const ord = rec[0]!;
  const n = ord & ORD_MASK;
  if (ord & LAST_LONG_ENTRY) {
    if (n < 1 || n > MAX_LONG_ENTRIES) return undefined;
    lfn = { parts: new Array<string>(n).fill(''), checksum: rec[CHECKSUM_AT]!, next: n };
  } else if (!lfn || n !== lfn.next || rec[CHECKSUM_AT] !== lfn.checksum) {
    return undefined;
  }
  lfn.parts[n - 1] = decodeLongPart(rec);
  lfn.next = n - 1;
  return lfn;
}

/** Every live entry of a folder's bytes but ".", ".." and the volume label, in order. */
export function parseFolder(bytes: Buffer): FolderEntry[] {
  const out: FolderEntry[] = [];
  let lfn: LongName | undefined;
  for (let at = 0; at + DIR_ENTRY_BYTES <= bytes.length; at += DIR_ENTRY_BYTES) {
    const rec = bytes.subarray(at, at + DIR_ENTRY_BYTES);
    if (rec[0] === END_OF_FOLDER) break;
    if (rec[0] === FREE_ENTRY) {
      lfn = undefined;
      continue;
    }
    if (isLongNameEntry(rec)) {
      lfn = addLongPart(lfn, rec);
      continue;
    }
    const long = lfn && lfn.next === 0 && lfn.checksum === shortNameChecksum(rec) ? lfn.parts.join('') : undefined;
    lfn = undefined;
    if (rec[11]! & ATTR.VOLUME_ID) continue;
    const short = shortName(rec, rec[NT_RES_AT]!);
    if (short === '.' || short === '..') continue;
    const name = long || short;
    if (name && !UNSERVABLE_NAME.test(name)) out.push({ name, shortName: short, at });
  }
  return out;
}
