// Reparse point buffers ([MS-FSCC] §2.1.2.2 junctions, §2.1.2.4 symbolic links) to write with
// ntfs-3g's system.ntfs_reparse_data, as Windows would have written them.

const IO_REPARSE_TAG_MOUNT_POINT = 0xa0000003;
const IO_REPARSE_TAG_SYMLINK = 0xa000000c;
const SYMLINK_FLAG_RELATIVE = 1;

function reparse(tag: number, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(tag, 0);
  head.writeUInt16LE(body.length, 4);
  return Buffer.concat([head, body]);
}

function names(substitute: string, print: string): { fields: Buffer; paths: Buffer } {
  const s = Buffer.from(substitute, 'utf16le');
  const p = Buffer.from(print, 'utf16le');
  const fields = Buffer.alloc(8);
  fields.writeUInt16LE(0, 0);
  fields.writeUInt16LE(s.length, 2);
  fields.writeUInt16LE(s.length, 4);
  fields.writeUInt16LE(p.length, 6);
  return { fields, paths: Buffer.concat([s, p]) };
}

/** A junction to `substitute` (`\??\C:\x`). */
export function junction(substitute: string): Buffer {
  const { fields, paths } = names(substitute, substitute.replace(/^\\\?\?\\/, ''));
  return reparse(IO_REPARSE_TAG_MOUNT_POINT, Buffer.concat([fields, paths, Buffer.alloc(4)]));
}

/** A symbolic link to `substitute`: relative (`..\x`) or absolute (`\??\C:\x`). */
export function symlink(substitute: string, relative: boolean): Buffer {
  const { fields, paths } = names(substitute, substitute.replace(/^\\\?\?\\/, ''));
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(relative ? SYMLINK_FLAG_RELATIVE : 0);
  return reparse(IO_REPARSE_TAG_SYMLINK, Buffer.concat([fields, flags, paths]));
}

/** Any other reparse point: a tag and its data. */
export function otherReparse(tag: number, data: Buffer): Buffer {
  return reparse(tag, data);
}

/** The argument setfattr -v takes for these bytes. */
export const hexValue = (b: Buffer): string => `0x${b.toString('hex')}`;
