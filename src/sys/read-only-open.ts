// The one way backing files (the storage's .raw/.raw.mbr and built cache files) are opened:
// read-only, checked in code so that no caller can ever pass a write flag (README "Guarantees").
import { constants, open as openCb, openSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { type Errno, lastErrno, openRaw } from './libc.js';

/** O_ACCMODE, <fcntl.h>: the access-mode bits of open flags (O_RDONLY is 0). */
export const O_ACCMODE = 3;
/** Flags that could change a file: any write access mode, create, truncate, append. */
const WRITING = O_ACCMODE | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND;
/** O_CLOEXEC, <asm-generic/fcntl.h> (Node's fs.constants lacks it, and adds it to every open itself). */
const O_CLOEXEC = 0o2000000;

export class ReadOnlyViolation extends Error {
  override name = 'ReadOnlyViolation';
}

/** O_RDONLY plus `extra` (O_NOFOLLOW, O_NONBLOCK, O_NOATIME...); throws if `extra` could write. */
export function readOnlyFlags(path: string, extra = 0): number {
  if ((extra & WRITING) !== 0) throw new ReadOnlyViolation(`${path}: refusing to open a backing file with write flags (0${extra.toString(8)})`);
  return constants.O_RDONLY | extra;
}

/** A FileHandle opened read-only. */
export function openReadOnlyHandle(path: string, extra = 0): Promise<FileHandle> {
  return open(path, readOnlyFlags(path, extra));
}

const openFd = promisify(openCb);

/** A plain descriptor opened read-only (a FileHandle would close itself when garbage-collected). */
export function openReadOnlyFd(path: string, extra = 0): Promise<number> {
  return openFd(path, readOnlyFlags(path, extra));
}

/** openReadOnlyFd without updating atime where it may (O_NOATIME needs ownership: EPERM retries without it). */
export async function openReadOnlyFdNoAtime(path: string, extra = 0): Promise<number> {
  try {
    return await openReadOnlyFd(path, constants.O_NOATIME | extra);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    return await openReadOnlyFd(path, extra);
  }
}

/** A plain descriptor opened read-only, synchronously (for the short reads of a data map). */
export function openReadOnlyFdSync(path: string, extra = 0): number {
  return openSync(path, readOnlyFlags(path, extra));
}

/**
 * openReadOnlyFdSync for a file that may well be absent (a `.raw.bitmap`): the descriptor, or
 * the errno of the failure instead of an exception. Close it with closeRaw (libc.ts).
 */
export function probeReadOnlyFdSync(path: string, extra = 0): number | Errno {
  const fd = openRaw(path, readOnlyFlags(path, extra) | O_CLOEXEC);
  return fd >= 0 ? fd : lastErrno();
}
