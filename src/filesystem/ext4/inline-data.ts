// Inline data (the inline_data feature): a small file's or folder's bytes in i_block and the
// "system.data" extended attribute inside the inode (docs/filesystems-ext4-fat.md §6, after the
// kernel's Documentation/filesystems/ext4/inlinedata.rst and attributes.rst).
import type { Ext4Inode } from './inode.js';

/** h_magic of the in-inode attribute area. */
const EXT4_XATTR_MAGIC = 0xea020000;
/** ext4_xattr_entry: fixed part, then the name padded to 4 bytes. */
const ENTRY_FIXED = 16;
/** e_name_index 7 = "system." and the name "data". */
const SYSTEM_INDEX = 7;
const DATA_NAME = Buffer.from('data', 'latin1');

/** The value of system.data (empty if the inode has none); throws a message on a bad area. */
export function systemData(inode: Ext4Inode): Buffer {
  const area = inode.inlineXattrs;
  if (area.length < 4 || area.readUInt32LE(0) !== EXT4_XATTR_MAGIC) return Buffer.alloc(0);
  const base = 4; // e_value_offs counts from the first entry
  for (let at = base; at + 4 <= area.length && area.readUInt32LE(at) !== 0; ) {
    if (at + ENTRY_FIXED > area.length) throw new Error('an extended attribute entry runs past the inode');
    const nameLen = area[at]!;
    const index = area[at + 1]!;
    const valueOffs = area.readUInt16LE(at + 2);
    const valueInum = area.readUInt32LE(at + 4);
    const valueSize = area.readUInt32LE(at + 8);
    const nameEnd = at + ENTRY_FIXED + nameLen;
    if (nameEnd > area.length) throw new Error('an extended attribute name runs past the inode');
    if (index === SYSTEM_INDEX && area.subarray(at + ENTRY_FIXED, nameEnd).equals(DATA_NAME)) {
      if (valueInum !== 0 || base + valueOffs + valueSize > area.length) throw new Error('the system.data attribute lies outside the inode');
      return area.subarray(base + valueOffs, base + valueOffs + valueSize);
    }
    at = (nameEnd + 3) & ~3; // entries are 4-byte aligned; every step moves forward
  }
  return Buffer.alloc(0);
}

/** The first `size` bytes of i_block + system.data; throws a message if they hold fewer. */
export function inlineBytes(inode: Ext4Inode): Buffer {
  const all = Buffer.concat([inode.iBlock, systemData(inode)]);
  if (inode.size > all.length) throw new Error(`inline data holds ${all.length} bytes, the inode's size is ${inode.size}`);
  return all.subarray(0, inode.size);
}
