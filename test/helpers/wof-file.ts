// Makes a WOF-compressed file the way Windows 10's compact.exe stores one
// (docs/filesystems-wof.md §1-2), on an NTFS volume mounted by ntfs-3g with
// `-o streams_interface=xattr`: the chunks made by wimlib in the named stream WofCompressedData
// (the xattr user.WofCompressedData), the WOF reparse point (the xattr system.ntfs_reparse_data),
// and the unnamed stream left at the uncompressed size as sparse zeros.
import koffi from 'koffi';
import { truncate, writeFile } from 'node:fs/promises';
import { wofCompressedData, wofReparsePoint } from './wimlib.js';

const libc = koffi.load('libc.so.6');
const setxattrRaw = libc.func('int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)') as (
  path: string,
  name: string,
  value: Buffer,
  size: number,
  flags: number,
) => number;
const getxattrRaw = libc.func('int64_t getxattr(const char *path, const char *name, void *value, size_t size)') as (
  path: string,
  name: string,
  value: Buffer | null,
  size: number,
) => number;
const errno = libc.func('int *__errno_location(void)') as () => unknown;

/** The xattrs through which ntfs-3g shows a named stream and the reparse point. */
export const WOF_STREAM_XATTR = 'user.WofCompressedData';
export const REPARSE_XATTR = 'system.ntfs_reparse_data';
/** The kernel's limit on one xattr value (XATTR_SIZE_MAX): the largest stream this helper can write. */
export const XATTR_SIZE_MAX = 65536;

function lastErrno(): number {
  return koffi.decode(errno(), 'int') as number;
}

export function setXattr(path: string, name: string, value: Buffer): void {
  if (setxattrRaw(path, name, value, value.length, 0) !== 0) throw new Error(`setxattr ${name} of ${path}: errno ${lastErrno()}`);
}

export function getXattr(path: string, name: string): Buffer {
  const size = getxattrRaw(path, name, null, 0);
  if (size < 0) throw new Error(`getxattr ${name} of ${path}: errno ${lastErrno()}`);
  const buf = Buffer.alloc(Number(size));
  const n = getxattrRaw(path, name, buf, buf.length);
  if (n < 0) throw new Error(`getxattr ${name} of ${path}: errno ${lastErrno()}`);
  return buf.subarray(0, Number(n));
}

/**
 * Writes `data` at `path` (on an ntfs-3g mount with streams_interface=xattr) as a WOF-compressed
 * file with `algorithm` (0 XPRESS4K, 1 LZX, 2 XPRESS8K, 3 XPRESS16K); returns the stream it wrote.
 * The compressed stream must fit in one xattr (XATTR_SIZE_MAX).
 */
export async function writeWofFile(path: string, data: Buffer, algorithm: number): Promise<Buffer> {
  const stream = wofCompressedData(data, algorithm);
  if (stream.length > XATTR_SIZE_MAX) throw new Error(`writeWofFile ${path}: a WofCompressedData of ${stream.length} bytes does not fit in an xattr`);
  await writeFile(path, '');
  await truncate(path, data.length);
  setXattr(path, WOF_STREAM_XATTR, stream);
  // Last: once the reparse point is set, ntfs-3g no longer lets the file's data be changed.
  setXattr(path, REPARSE_XATTR, wofReparsePoint(algorithm));
  return stream;
}
