// Sharing extents between files (FICLONERANGE) on btrfs, XFS (reflink=1) and ZFS >= 2.2.
import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Bytes } from '../base/units.js';
import { type Errno, fileCloneRangePtr, fstatfs, ioctl, lastErrno, statfs } from './libc.js';
import { openReadOnly } from './read-only-open.js';

/** FICLONERANGE = _IOW(0x94, 13, struct file_clone_range), <linux/fs.h>. */
const FICLONERANGE = 0x4020940d;
/** FICLONE = _IOW(0x94, 9, int), <linux/fs.h>: clones a whole file. */
const FICLONE = 0x40049409;

/** statfs f_type magic numbers, <linux/magic.h> (ZFS's from its own zfs_vfsops). */
const FS_MAGIC: ReadonlyMap<number, string> = new Map([
  [0x9123683e, 'btrfs'],
  [0x58465342, 'xfs'],
  [0x2fc12fc1, 'zfs'],
  [0xef53, 'ext4'],
  [0x01021994, 'tmpfs'],
  [0x65735546, 'fuse'],
  [0x6969, 'nfs'],
  [0x794c7630, 'overlayfs'],
  [0x5346544e, 'ntfs'],
]);

export class ReflinkError extends Error {
  override name = 'ReflinkError';
  /** The errno name when a clone call failed (EXDEV, EINVAL, EOPNOTSUPP, ...). */
  readonly code: string | undefined;
  constructor(message: string, errno?: Errno) {
    super(errno ? `${message}: ${errno.code} (${errno.text})` : message);
    this.code = errno?.code;
  }
}

/** The filesystem that holds `path`, by its statfs magic ('btrfs', 'xfs', 'zfs', 'ext4', ...). */
export function fsTypeName(path: string): string {
  const { type } = statfs(path);
  return FS_MAGIC.get(type) ?? `0x${type.toString(16)}`;
}

/**
 * Makes [destOffset, +length) of destFd share the extents of [srcOffset, +length) of srcFd.
 * Offsets must be multiples of the filesystem block size, and so must length unless the range
 * ends at the source's end of file.
 */
export function cloneRange(srcFd: number, srcOffset: Bytes, length: Bytes, destFd: number, destOffset: Bytes): void {
  // A zero length means "to the end of the source" to the kernel: never what a caller meant.
  if (length <= 0) return;
  const range = { src_fd: srcFd, src_offset: srcOffset, src_length: length, dest_offset: destOffset };
  if (ioctl(destFd, FICLONERANGE, fileCloneRangePtr, range) !== 0) {
    throw new ReflinkError(`FICLONERANGE of ${length} bytes from fd ${srcFd} at ${srcOffset} to fd ${destFd} at ${destOffset}`, lastErrno());
  }
}

/** Clones all of srcFd over destFd (FICLONE). */
export function cloneFile(srcFd: number, destFd: number): void {
  if (ioctl(destFd, FICLONE, 'int', srcFd) !== 0) throw new ReflinkError(`FICLONE from fd ${srcFd} to fd ${destFd}`, lastErrno());
}

/**
 * Whether files in destDir can share extents with srcFile: clones the first block of srcFile
 * into a scratch file in destDir and removes it. srcFile is only ever opened read-only.
 */
export async function canReflink(srcFile: string, destDir: string): Promise<boolean> {
  const src = await openReadOnly(srcFile);
  try {
    const size = (await src.stat()).size;
    const probe = join(destDir, `.synthvhd-reflink-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    const dest = await open(probe, 'wx', 0o600);
    try {
      const block = fstatfs(dest.fd).blockSize;
      // The kernel refuses a short range that does not end at EOF; an empty file is cloned whole.
      if (size === 0) cloneFile(src.fd, dest.fd);
      else cloneRange(src.fd, 0, Math.min(block, size), dest.fd, 0);
      return true;
    } catch (e) {
      if (e instanceof ReflinkError) return false;
      throw e;
    } finally {
      await dest.close();
      await unlink(probe);
    }
  } finally {
    await src.close();
  }
}

