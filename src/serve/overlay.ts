// One writer's private view of a disk (docs/overlays.md): the pristine bytes with its writes on
// top, in an unlinked file of the overlay folder. The storage and the built disk are never written.
import { fstatSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import type { Bytes } from '../base/units.js';
import { FuseError } from '../fuse/fuse-fs.js';
import type { OverlayStore } from './overlay-store.js';
import { markWritten, newWrittenRegions } from '../io/written-regions.js';
import { WrittenGranules } from './written-granules.js';

const errno = osConstants.errno;
/** What the overlay tracks and copies up: a partial write of a granule first copies its pristine bytes. */
const GRANULE = 4096;
/** The largest view: a VHDX's maximum size, 64 TiB (docs/vhd-vhdx.md). */
const MAX_VIEW_SIZE = 64 * 2 ** 40;

/** What a writer starts from: the disk as served. */
export interface Pristine {
  /** Reads into `buf` from its start; resolves the byte count (short only at end of file). */
  read(pos: Bytes, buf: Buffer, length: Bytes): Promise<number>;
}

/** Reads exactly `length` bytes at `pos` of `file` into `buf` at `at`, zeros past its end. */
async function readFull(file: FileHandle, buf: Buffer, at: number, length: number, pos: Bytes): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(buf, at + done, length - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  buf.fill(0, at + done, at + length);
}

export class Overlay {
  private readonly written = new WrittenGranules();
  /** Below this the unwritten bytes are pristine; above it zeros (a shrink cuts it). */
  private pristineEnd: Bytes;
  /** The view's size, which writes past the end and truncates change. */
  private sizeNow: Bytes;
  /** Bytes counted against the store's limit. */
  private taken: Bytes = 0;
  /** Set once the kernel reads and writes the file itself (passthrough, docs/overlays.md §4). */
  private kernel = false;

  get inKernel(): boolean {
    return this.kernel;
  }
  /**
   * The regions written or cut by a truncate, shared with the request workers: the view's other
   * regions hold the disk as served (a clone's too), which they read from its layout themselves.
   */
  readonly regions: Int32Array;
  /** Where the last shrink cut the disk as served (its size at first). */
  private cutAt: Bytes;
  /** Writes and truncates one at a time: a partial granule's copy-up must not interleave with another write. */
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * `file` holds the whole view from the start when `pristine` is undefined (a reflinked clone of
   * the built disk), else only the granules written over `pristine`, which is `size` bytes.
   */
  constructor(private readonly file: FileHandle, private readonly pristine: Pristine | undefined, size: Bytes, private readonly store: OverlayStore) {
    this.sizeNow = size;
    this.pristineEnd = pristine ? size : 0;
    this.regions = newWrittenRegions(size);
    this.cutAt = size;
  }

  /** The view's size: the file's own once the kernel writes it (its writes past the end grow it). */
  get size(): Bytes {
    return this.kernel ? fstatSync(this.file.fd).size : this.sizeNow;
  }

  /** The descriptor the kernel may read and write itself: a clone holds the whole view; an overlay over `pristine` does not. */
  get wholeViewFd(): number | undefined {
    return this.pristine ? undefined : this.file.fd;
  }

  /**
   * Hands the view to the kernel, which then writes it without asking (passthrough): `reserve`,
   * the most its writes can make the clone take, is counted against the limit at once. False
   * when the limit cannot take it (the view stays with synthvhd) or the view holds no clone.
   */
  toKernel(reserve: Bytes): boolean {
    if (this.kernel) return true;
    if (this.pristine || !this.store.reserve(reserve)) return false;
    this.taken += reserve;
    this.kernel = true;
    // No request worker reads the disk as served for this view any more.
    markWritten(this.regions, 0, Infinity);
    return true;
  }

  /** Fills `buf` from `pos`; resolves the byte count (short only at the view's end). */
  async read(pos: Bytes, buf: Buffer, length: Bytes): Promise<number> {
    const end = Math.min(pos + length, this.size);
    if (end <= pos) return 0;
    if (!this.pristine) {
      await readFull(this.file, buf, 0, end - pos, pos);
      return end - pos;
    }
    for (let at = pos; at < end; ) {
      const held = this.written.has(Math.floor(at / GRANULE));
      let next = (Math.floor(at / GRANULE) + 1) * GRANULE;
      while (next < end && this.written.has(next / GRANULE) === held) next += GRANULE;
      next = Math.min(next, end);
      if (held) await readFull(this.file, buf, at - pos, next - at, at);
      else await this.readPristine(this.pristine, at, next, buf.subarray(at - pos));
      at = next;
    }
    return end - pos;
  }

  private async readPristine(pristine: Pristine, from: Bytes, to: Bytes, into: Buffer): Promise<void> {
    const upTo = Math.min(to, this.pristineEnd);
    const n = upTo > from ? await pristine.read(from, into, upTo - from) : 0;
    into.fill(0, n, to - from);
  }

  write(pos: Bytes, data: Buffer): Promise<number> {
    return this.serially(() => this.writeNow(pos, data));
  }

  /** Sets the view's size (ftruncate): bytes past a shrink read as zeros if it grows again. */
  truncate(size: Bytes): Promise<void> {
    return this.serially(async () => {
      if (size > MAX_VIEW_SIZE) throw new FuseError(errno.EFBIG);
      await this.file.truncate(size);
      // Before the answer: from now on a worker must not read pristine bytes there.
      if (size < this.cutAt) markWritten(this.regions, size, this.cutAt);
      this.cutAt = Math.min(this.cutAt, size);
      this.pristineEnd = Math.min(this.pristineEnd, size);
      this.sizeNow = size;
    });
  }

  /** Closes the file: its space is freed with it, and so is its share of the limit. */
  async close(): Promise<void> {
    await this.queue;
    await this.file.close();
    this.store.give(this.taken);
    this.taken = 0;
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async writeNow(pos: Bytes, data: Buffer): Promise<number> {
    const end = pos + data.length;
    if (end > MAX_VIEW_SIZE) throw new FuseError(errno.EFBIG);
    if (data.length === 0) return 0;
    // The reservation covers it (toKernel).
    if (this.kernel) return this.writeAll(data, pos).then(() => data.length);
    const first = Math.floor(pos / GRANULE);
    const last = Math.ceil(end / GRANULE);
    const fresh = this.written.missing(first, last) * GRANULE;
    if (!this.store.take(fresh)) throw new FuseError(errno.ENOSPC);
    try {
      if (this.pristine) for (const g of new Set([pos % GRANULE ? first : -1, end % GRANULE ? last - 1 : -1])) if (g >= 0) await this.copyUp(g);
      await this.writeAll(data, pos);
    } catch (e) {
      // Nothing was marked: a retry counts these granules again.
      this.store.give(fresh);
      throw e;
    }
    this.taken += fresh;
    this.written.mark(first, last);
    markWritten(this.regions, first * GRANULE, last * GRANULE);
    if (end > this.sizeNow) this.sizeNow = end;
    return data.length;
  }

  /** A granule a write covers in part: its other bytes are the view's, copied into the overlay first. */
  private async copyUp(g: number): Promise<void> {
    if (this.written.has(g)) return;
    const buf = Buffer.alloc(GRANULE);
    await this.read(g * GRANULE, buf, GRANULE);
    await this.writeAll(buf, g * GRANULE);
  }

  /** pwrite until all of `data` is written; a write that makes no progress is an error, not a loop. */
  private async writeAll(data: Buffer, pos: Bytes): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const { bytesWritten } = await this.file.write(data, done, data.length - done, pos + done);
      if (bytesWritten <= 0) throw new FuseError(errno.EIO, `overlay write at ${pos + done} made no progress`);
      done += bytesWritten;
    }
  }
}
