// The entries of a $I30 index node, in $INDEX_ROOT or in an INDX block of $INDEX_ALLOCATION
// (docs/filesystems-ntfs.md §9).
import { parseFileName, type FileName } from './file-name.js';
import { check, safe64, NtfsFormatError } from './format-error.js';
import { readRef, type FileRef } from './mft-record.js';

/** §9 index entry flags. */
const ENTRY_HAS_SUBNODE = 0x01;
const ENTRY_LAST = 0x02;
const ENTRY_HEADER = 0x10;
/** §9: $INDEX_ROOT's header before its node header. */
const INDEX_ROOT_HEADER = 0x10;
/** §9: an INDX block's node header follows its fixup header. */
const INDX_NODE_HEADER = 0x18;
const INDX_VCN_FIELD = 0x10;

export interface IndexEntry {
  readonly file: FileRef;
  readonly key: FileName;
  /** The VCN of the node with the keys before this one. */
  readonly subnode?: number;
}

/** A node's entries, and the VCN of the node with the keys after the last of them. */
export interface IndexNode {
  readonly entries: IndexEntry[];
  readonly tail?: number;
}

/** Index block size from $INDEX_ROOT (checked against the boot sector's by the caller). */
export function indexRootBlockSize(root: Buffer): number {
  if (!(root.length >= INDEX_ROOT_HEADER + 16)) throw new NtfsFormatError(`$INDEX_ROOT of ${root.length} bytes`);
  return root.readUInt32LE(8);
}

/** The sub-node VCN in an entry's last 8 bytes. */
function subnodeOf(b: Buffer, pos: number, length: number, flags: number): number | undefined {
  if (!(flags & ENTRY_HAS_SUBNODE)) return undefined;
  return safe64(b, pos + length - 8, 'sub-node VCN');
}

/** The entries of the node whose header is at `at` of `b`; entries past the node are an error. */
function nodeEntries(b: Buffer, at: number): IndexNode {
  check(at + 16 <= b.length, 'index node header runs past its block');
  const first = at + b.readUInt32LE(at);
  const end = at + b.readUInt32LE(at + 4);
  if (!(first >= at + 16 && end <= b.length && first <= end)) throw new NtfsFormatError(`index node entries [${first}, ${end}) outside its ${b.length} bytes`);
  const entries: IndexEntry[] = [];
  // Each entry is at least 16 bytes, so the node's length bounds the loop.
  for (let pos = first; ; ) {
    check(pos + ENTRY_HEADER <= end, 'index node has no last entry');
    const length = b.readUInt16LE(pos + 8);
    const keyLength = b.readUInt16LE(pos + 10);
    const flags = b.readUInt16LE(pos + 12);
    if (!(length >= ENTRY_HEADER && length % 8 === 0 && pos + length <= end)) throw new NtfsFormatError(`index entry at ${pos} has length ${length}`);
    if (!(ENTRY_HEADER + (flags & ENTRY_LAST ? 0 : keyLength) + (flags & ENTRY_HAS_SUBNODE ? 8 : 0) <= length)) throw new NtfsFormatError(`index entry at ${pos}: key of ${keyLength} bytes runs past it`);
    const subnode = subnodeOf(b, pos, length, flags);
    if (flags & ENTRY_LAST) return { entries, tail: subnode };
    entries.push({ file: readRef(b, pos), key: parseFileName(b.subarray(pos + ENTRY_HEADER, pos + ENTRY_HEADER + keyLength)), subnode });
    pos += length;
  }
}

export function indexRootNode(root: Buffer): IndexNode {
  if (!(root.length >= INDEX_ROOT_HEADER + 16)) throw new NtfsFormatError(`$INDEX_ROOT of ${root.length} bytes`);
  return nodeEntries(root, INDEX_ROOT_HEADER);
}

/** The node of an INDX block whose fixups were applied; its VCN field must be `vcn`. */
export function indexBlockNode(block: Buffer, vcn: number): IndexNode {
  const own = safe64(block, INDX_VCN_FIELD, `index block at VCN ${vcn}: its VCN`);
  if (!(own === vcn)) throw new NtfsFormatError(`index block at VCN ${vcn} says it is VCN ${own}`);
  return nodeEntries(block, INDX_NODE_HEADER);
}
