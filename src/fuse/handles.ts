// Numbers for open handles (fuse_open_out.fh): the one allocator of both the session's directory
// handles and the served filesystem's file handles.

import { WORKER_FH_BASE } from './offers.js';

/** Open handles by number: never 0, never one still open, wrapping below WORKER_FH_BASE. */
export class Handles<T> {
  private readonly open = new Map<number, T>();
  private last = 0;

  /** Keeps `value` under a new number, below the numbers request workers give (offers.ts). */
  add(value: T): number {
    do this.last = this.last >= WORKER_FH_BASE - 1 ? 1 : this.last + 1;
    while (this.open.has(this.last));
    this.open.set(this.last, value);
    return this.last;
  }

  /** Keeps `value` under the number a request worker gave it. */
  set(fh: number, value: T): void {
    this.open.set(fh, value);
  }

  get(fh: number): T | undefined {
    return this.open.get(fh);
  }

  delete(fh: number): void {
    this.open.delete(fh);
  }

  keys(): IterableIterator<number> {
    return this.open.keys();
  }

  values(): IterableIterator<T> {
    return this.open.values();
  }

  clear(): void {
    this.open.clear();
  }
}
