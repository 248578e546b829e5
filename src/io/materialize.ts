// Turns a Layout into a real file: clones where the filesystem can share extents, copies data
// ranges elsewhere, leaves zero segments and source holes as holes (docs/architecture.md §2).
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Layout, Segment } from '../disk/layout.js';
import type { Bytes } from '../base/units.js';
import { shortReadError } from './layout-reader.js';
import { fstatfs } from '../sys/libc.js';
import { O_ACCMODE, openReadOnlyHandle } from '../sys/read-only-open.js';
import { ReflinkError, cloneRange } from '../sys/reflink.js';
import { dataRanges } from '../sys/sparse.js';

export type ReflinkMode = 'auto' | 'always' | 'never';

export interface MaterializeResult {
  size: Bytes;
  /** Bytes of file segments that now share the source's extents. */
  clonedBytes: Bytes;
  /** Bytes of file segments that were copied (their holes stay holes and are counted too). */
  copiedBytes: Bytes;
  /** Bytes written from bytes segments. */
  bytesWritten: Bytes;
  /** Why some or all whole blocks of file segments were copied, not cloned. */
  reason?: string;
}

export interface MaterializeOptions {
  reflink: ReflinkMode;
  /** Called as the layout is processed, with bytes of the layout done so far. */
  onProgress?: (done: Bytes, total: Bytes) => void;
  signal?: AbortSignal;
}

/** The build was cancelled through its AbortSignal. */
export class AbortError extends Error {
  override name = 'AbortError';
  constructor(dest: string, reason: unknown) {
    super(`${dest}: build aborted`, { cause: reason });
  }
}

/** One reusable copy buffer: big enough for sequential throughput, small enough to keep around. */
const COPY_CHUNK: Bytes = 8 << 20;
/** Largest single clone call, so that progress and abort are seen during huge clones. */
const CLONE_CHUNK: Bytes = 1 << 30;
/** Clone errors that mean "these files cannot share extents": copy instead (ioctl_ficlonerange(2)). */
const CANNOT_CLONE: ReadonlySet<string> = new Set(['EXDEV', 'EOPNOTSUPP', 'EINVAL', 'ENOTTY']);

interface Source {
  readonly path: string;
  readonly handle: FileHandle;
  readonly size: Bytes;
  /** Set once a clone from this file was refused: later segments go straight to copying. */
  refused?: string;
}

/** Backing files are never written: prove from the kernel's view of the descriptor that it is read-only. */
async function assertReadOnly(fd: number, path: string): Promise<void> {
  const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8');
  const flags = /^flags:\s+([0-7]+)$/m.exec(info)?.[1];
  if (flags === undefined || (parseInt(flags, 8) & O_ACCMODE) !== constants.O_RDONLY) {
    throw new Error(`${path}: backing file descriptor is not read-only (fdinfo flags ${flags ?? 'unknown'})`);
  }
}

async function openSource(path: string): Promise<Source> {
  const handle = await openReadOnlyHandle(path);
  try {
    await assertReadOnly(handle.fd, path);
    return { path, handle, size: (await handle.stat()).size };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

async function readFull(src: Source, buf: Buffer, length: Bytes, pos: Bytes): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesRead } = await src.handle.read(buf, done, length - done, pos + done);
    if (bytesRead === 0) throw shortReadError(src.path, pos, length, done);
    done += bytesRead;
  }
}

async function writeFull(out: FileHandle, buf: Buffer, length: Bytes, pos: Bytes): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesWritten } = await out.write(buf, done, length - done, pos + done);
    done += bytesWritten;
  }
}

/** The state of one materialization: destination, open sources, counters. */
class Job {
  private readonly sources = new Map<string, Source>();
  private readonly reasons = new Set<string>();
  private buffer: Buffer | undefined;
  private clonedBytes: Bytes = 0;
  private copiedBytes: Bytes = 0;
  private bytesWritten: Bytes = 0;

  constructor(
    private readonly layout: Layout,
    private readonly dest: string,
    private readonly out: FileHandle,
    private readonly blockSize: Bytes,
    private readonly opts: MaterializeOptions,
  ) {}

  async run(): Promise<MaterializeResult> {
    this.opts.onProgress?.(0, this.layout.size);
    for (const seg of this.layout.segments) {
      this.checkAbort();
      await this.segment(seg);
      this.progress(seg.start + seg.length);
    }
    const reason = this.reasons.size > 0 ? [...this.reasons].join('; ') : undefined;
    return {
      size: this.layout.size,
      clonedBytes: this.clonedBytes,
      copiedBytes: this.copiedBytes,
      bytesWritten: this.bytesWritten,
      ...(reason !== undefined && { reason }),
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => s.handle.close()));
  }

  private checkAbort(): void {
    if (this.opts.signal?.aborted) throw new AbortError(this.dest, this.opts.signal.reason);
  }

  private progress(done: Bytes): void {
    this.opts.onProgress?.(done, this.layout.size);
  }

  private async segment(seg: Segment): Promise<void> {
    switch (seg.kind) {
      case 'zero':
        return; // the truncated file already reads as zeros there, without using space
      case 'bytes':
        await writeFull(this.out, seg.data, seg.length, seg.start);
        this.bytesWritten += seg.length;
        return;
      case 'file':
        return this.fileSegment(seg);
    }
  }

  private async source(path: string): Promise<Source> {
    let src = this.sources.get(path);
    if (!src) {
      src = await openSource(path);
      this.sources.set(path, src);
    }
    return src;
  }

  /** Clones the block-aligned middle of a file segment where possible; copies the rest. */
  private async fileSegment(seg: Extract<Segment, { kind: 'file' }>): Promise<void> {
    const src = await this.source(seg.source.path);
    if (seg.offset + seg.length > src.size) {
      throw shortReadError(src.path, seg.offset, seg.length, Math.max(0, src.size - seg.offset));
    }
    const bs = this.blockSize;
    const head = Math.min(seg.length, (bs - (seg.offset % bs)) % bs);
    const body = Math.floor((seg.length - head) / bs) * bs;
    await this.copy(src, seg, 0, head);
    let cloned = 0;
    if (body > 0) {
      const why =
        this.opts.reflink === 'never'
          ? 'reflink is off (never)'
          : seg.offset % bs !== seg.start % bs
            ? `${src.path}: bytes at ${seg.offset} cannot be cloned to ${this.dest} at ${seg.start}: the offsets differ modulo the ${bs}-byte block`
            : src.refused;
      if (why === undefined) cloned = await this.clone(src, seg, head, body);
      if (cloned < body) this.cannotClone(why ?? src.refused!);
    }
    await this.copy(src, seg, head + cloned, seg.length - head - cloned);
  }

  /** Clones [from, +length) of the segment in chunks; returns how much it cloned before a refusal. */
  private async clone(src: Source, seg: Extract<Segment, { kind: 'file' }>, from: Bytes, length: Bytes): Promise<Bytes> {
    let done = 0;
    while (done < length) {
      // The ioctl blocks this thread: let pending events (an abort, FUSE requests) in between.
      await yieldToEventLoop();
      this.checkAbort();
      const n = Math.min(CLONE_CHUNK, length - done);
      try {
        cloneRange(src.handle.fd, seg.offset + from + done, n, this.out.fd, seg.start + from + done);
      } catch (e) {
        if (!(e instanceof ReflinkError && e.code !== undefined && CANNOT_CLONE.has(e.code))) throw e;
        src.refused = `${src.path}: cannot clone into ${this.dest}: ${e.code}`;
        return done;
      }
      done += n;
      this.clonedBytes += n;
      this.progress(seg.start + from + done);
    }
    return done;
  }

  /** Records why whole blocks get copied; in `always` mode that is an error. */
  private cannotClone(reason: string): void {
    if (this.opts.reflink === 'always') throw new ReflinkError(reason);
    this.reasons.add(reason);
  }

  /** Copies [from, +length) of the segment, data ranges only, so holes stay holes. */
  private async copy(src: Source, seg: Extract<Segment, { kind: 'file' }>, from: Bytes, length: Bytes): Promise<void> {
    if (length <= 0) return;
    const srcStart = seg.offset + from;
    const shift = seg.start - seg.offset;
    const buf = (this.buffer ??= Buffer.allocUnsafe(COPY_CHUNK));
    for (const [a, b] of dataRanges(src.handle.fd, srcStart, srcStart + length)) {
      for (let p = a; p < b; ) {
        this.checkAbort();
        const n = Math.min(COPY_CHUNK, b - p);
        await readFull(src, buf, n, p);
        await writeFull(this.out, buf, n, p + shift);
        p += n;
        this.progress(p + shift);
      }
    }
    this.copiedBytes += length;
  }
}

/**
 * Writes `layout` into the empty file `out` (`name` says which in errors), cloning, copying and
 * leaving holes as materialize() does; no sync.
 */
export async function fillFile(layout: Layout, out: FileHandle, name: string, opts: MaterializeOptions): Promise<MaterializeResult> {
  await out.truncate(layout.size);
  const job = new Job(layout, name, out, fstatfs(out.fd).blockSize, opts);
  try {
    return await job.run();
  } finally {
    await job.close();
  }
}

/**
 * Writes `layout` to `dest` atomically: builds a hidden temp file next to it, fsyncs it and
 * renames it over dest. On any error or abort the temp file is removed and dest is untouched.
 * With reflink `always`, a file segment whose whole blocks cannot be cloned is a ReflinkError.
 */
export async function materialize(layout: Layout, dest: string, opts: MaterializeOptions): Promise<MaterializeResult> {
  const dir = dirname(dest);
  const tmp = join(dir, `.${basename(dest)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const out = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  let renamed = false;
  try {
    let result: MaterializeResult;
    try {
      await out.chmod(0o644); // whatever the umask
      result = await fillFile(layout, out, dest, opts);
      await out.sync();
    } finally {
      await out.close();
    }
    if (opts.signal?.aborted) throw new AbortError(dest, opts.signal.reason);
    await rename(tmp, dest);
    renamed = true;
    await syncDir(dir);
    return result;
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
}

/** Makes the rename durable. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
