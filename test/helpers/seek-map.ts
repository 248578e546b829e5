// Where a file holds data, asked with lseek(2) SEEK_DATA / SEEK_HOLE through koffi (Node's fs
// has no lseek), for comparing what a mount reports with what its layout says.
import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const lseek = libc.func('int64_t lseek(int fd, int64_t offset, int whence)') as (fd: number, offset: number, whence: number) => number;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
/** ENXIO, <errno.h>: SEEK_DATA past the last data. */
const ENXIO = 6;

export type Range = [number, number];

/** The data ranges [from, to) of the open file `fd` inside [start, end), adjacent ones merged. */
export function dataRangesOf(fd: number, start: number, end: number): Range[] {
  const out: Range[] = [];
  let pos = start;
  while (pos < end) {
    const data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (koffi.errno() === ENXIO) break;
      throw new Error(`lseek SEEK_DATA at ${pos}: errno ${koffi.errno()}`);
    }
    if (data >= end) break;
    const hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) throw new Error(`lseek SEEK_HOLE at ${data}: errno ${koffi.errno()}`);
    out.push([data, Math.min(hole, end)]);
    pos = hole;
  }
  return out;
}

/** Data ranges of the file at `path` over [0, size). */
export function dataRanges(path: string, size: number): Range[] {
  const fd = openSync(path, 'r');
  try {
    return dataRangesOf(fd, 0, size);
  } finally {
    closeSync(fd);
  }
}

/** Sorted ranges with touching neighbours joined. */
export function merge(ranges: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    const last = out.at(-1);
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}
