// Bounds the reads of one backing file that wait in libuv's thread pool at once, so that one
// storage slow to answer cannot take every pool thread and stall the reads of every other disk.

/** With UV_THREADPOOL_SIZE 32 (src/cli/main.cts), four stalled files still leave threads free. */
const READS_PER_FILE = 8;

interface Gate {
  running: number;
  readonly waiting: (() => void)[];
}

const gates = new Map<number, Gate>();

/** Runs `read` now, or when an earlier read of the same descriptor is done. */
export function whenReadable(fd: number, read: () => void): void {
  let g = gates.get(fd);
  if (!g) gates.set(fd, (g = { running: 0, waiting: [] }));
  if (g.running < READS_PER_FILE) {
    g.running++;
    read();
  } else {
    g.waiting.push(read);
  }
}

/** Ends a read started by whenReadable. */
export function readDone(fd: number): void {
  const g = gates.get(fd)!;
  const next = g.waiting.shift();
  if (next) next();
  else if (--g.running === 0) gates.delete(fd);
}
