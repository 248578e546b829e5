// Where a file holds data, so that copies keep its holes (lseek(2) SEEK_DATA / SEEK_HOLE).
import type { Bytes } from '../base/units.js';
import { syscallError, lastErrno, lseek } from './libc.js';

/** lseek whence SEEK_DATA, <unistd.h>: next offset at or after the given one that holds data. */
export const SEEK_DATA = 3;
/** lseek whence SEEK_HOLE, <unistd.h>: next hole (the end of file counts as one). */
export const SEEK_HOLE = 4;

/** lseek(2) with SEEK_DATA or SEEK_HOLE; undefined where the file has no more data (ENXIO). */
export function seek(fd: number, offset: Bytes, whence: number): Bytes | undefined {
  const at = lseek(fd, offset, whence);
  if (at >= 0) return at;
  const err = lastErrno();
  // lseek(2): SEEK_DATA at or after the last data in the file.
  if (err.code === 'ENXIO') return undefined;
  throw syscallError(`lseek fd ${fd} to ${offset} (${whence === SEEK_DATA ? 'SEEK_DATA' : 'SEEK_HOLE'})`, err);
}

/**
 * The ranges [from, to) inside [start, end) of fd that hold data, in order. Filesystems
 * without hole tracking report the whole file as data, which is still correct.
 */
export function* dataRanges(fd: number, start: Bytes, end: Bytes): Generator<[Bytes, Bytes]> {
  let pos = start;
  while (pos < end) {
    const data = seek(fd, pos, SEEK_DATA);
    if (data === undefined || data >= end) return;
    const hole = seek(fd, data, SEEK_HOLE) ?? end;
    yield [data, Math.min(hole, end)];
    pos = hole;
  }
}
