// What an open virtual file reads from: its layout (passthrough) or its built disk (reflink).
import { stat } from 'node:fs/promises';
import type { Layout, SourceFile } from '../disk/layout.js';
import type { Bytes } from '../base/units.js';
import { sourcesOf } from '../disk/layout.js';
import { type BackingFd, readLayout } from '../io/layout-reader.js';
import { seekLayout } from '../io/layout-seek.js';
import { copyLayout, type SharedLayout, shareLayout } from '../io/shared-layout.js';
import type { SEEK_DATA, SEEK_HOLE } from '../sys/sparse.js';
import { canReflink } from '../sys/reflink.js';
import type { DiskCache } from './disk-cache.js';
import type { FdCache, FdLease } from './fd-cache.js';
import type { VirtualFile } from '../catalog/virtual-file.js';
import type { ReadableHandle } from './browse-handle.js';
import { OpenClones, worthCloning } from './file-clone.js';

export type ServeMode = 'passthrough' | 'reflink' | 'auto';

/**
 * Shared layouts by layout, with the descriptors they hold: every open of one file (whose layout
 * the catalog keeps) reuses one. A new one per open would pile up: the request workers' heaps,
 * which hold a reference each, are collected only when they allocate, which is rarely
 * (docs/fuse-protocol.md §6).
 */
const sharedLayouts = new WeakMap<Layout, { readonly fds: string; readonly shared: SharedLayout }>();

function sharedFor(layout: Layout, leases: readonly FdLease[], fdOf: (s: SourceFile) => number): SharedLayout {
  const fds = leases.map((l) => l.fd).join(',');
  const known = sharedLayouts.get(layout);
  if (known?.fds === fds) return known.shared;
  const shared = shareLayout(layout, fdOf);
  sharedLayouts.set(layout, { fds, shared });
  return shared;
}

/**
 * An open handle: the layout and the descriptors of its sources, held from open to release,
 * so reads stay correct after the backup is deleted or rescanned away.
 */
export class OpenFile implements ReadableHandle {
  private readonly fdByPath = new Map<string, BackingFd>();
  /** Bound once, so a read allocates no closure. */
  private readonly fdOf = (s: SourceFile): BackingFd => this.fdByPath.get(s.path)!;

  /** Set when the handle reads a built disk file: its descriptor holds the virtual file's exact bytes. */
  readonly wholeFileFd: number | undefined;
  private shared: SharedLayout | undefined;

  constructor(readonly file: Pick<VirtualFile, 'key'>, private readonly layout: Layout, private readonly leases: readonly FdLease[], private readonly fds: FdCache, whole: boolean) {
    for (const l of leases) this.fdByPath.set(l.path, l);
    this.wholeFileFd = whole ? leases[0]?.fd : undefined;
  }

  /** The layout with its descriptors, for the FUSE request workers; made on the first call (a stored small file never needs it). */
  share(): SharedLayout {
    return (this.shared ??= sharedFor(this.layout, this.leases, (s) => this.fdOf(s).fd));
  }

  /** The same as a copy, to post to one worker (an offer, fuse/offers.ts). */
  copy(): SharedLayout {
    return copyLayout(this.layout, (s) => this.fdOf(s).fd);
  }

  get key(): string {
    return this.file.key;
  }

  /** lseek(2) SEEK_DATA / SEEK_HOLE: undefined for ENXIO. */
  seek(offset: Bytes, whence: typeof SEEK_DATA | typeof SEEK_HOLE): Bytes | undefined {
    return seekLayout(this.layout, (s) => this.fdOf(s).fd, offset, whence);
  }

  /** Reads straight into `buf`; returns the byte count (short only at end of file). */
  read(pos: Bytes, buf: Buffer, length: Bytes): Promise<number> {
    return readLayout(this.layout, pos, buf, length, this.fdOf);
  }

  release(): void {
    for (const l of this.leases) this.fds.release(l);
  }
}

/** Opens a layout read in passthrough: its sources' descriptors are held until release. */
export async function openLayout(file: Pick<VirtualFile, 'key'>, layout: Layout, fds: FdCache, whole = false): Promise<OpenFile> {
  const got = await Promise.allSettled(sourcesOf(layout).map((s) => fds.acquire(s.path)));
  const leases = got.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = got.find((r) => r.status === 'rejected');
  if (failed) {
    for (const l of leases) fds.release(l);
    throw (failed as PromiseRejectedResult).reason;
  }
  return new OpenFile(file, layout, leases, fds, whole);
}

/** A built disk file as a one-segment layout. */
function wholeFile(path: string, size: Bytes): Layout {
  return { size, segments: size > 0 ? [{ kind: 'file', start: 0, length: size, source: { path }, offset: 0 }] : [] };
}

/** Opens virtual files in the serve mode, falling back to passthrough per file with one log line why. */
export class FileOpener {
  private readonly fellBack = new Set<string>();
  /** Keys whose reflinked copy is being built. */
  private readonly building = new Set<string>();
  /** auto mode: whether the cache can clone from a source filesystem, by st_dev. */
  private readonly cloneable = new Map<number, Promise<boolean>>();
  /** The clones of large files inside backups open now (reflink mode). */
  private openClones: OpenClones | undefined;

  constructor(
    private readonly mode: ServeMode,
    /** The descriptors every open handle reads its sources through. */
    readonly fds: FdCache,
    private readonly cache: DiskCache | undefined,
    private readonly log: (line: string) => void,
  ) {}

  /** Throws when the layout is bad or a source cannot be opened (the FUSE open fails EIO). */
  async open(file: VirtualFile): Promise<OpenFile> {
    if (this.cache && (await this.wantsReflink(file))) {
      const built = await this.cache.ready(file);
      if (built) return openLayout(file, wholeFile(built, file.computeSize()), this.fds, true);
      this.buildInBackground(this.cache, file);
    }
    return openLayout(file, file.layout(), this.fds);
  }

  /**
   * Builds the disk file while this first open is served in passthrough: an open that waited
   * for a build would stall its client, and smbd holds its share-mode lock across the open
   * (Samba 4.17 panics when many clients pile up behind one). Later opens use the built file.
   */
  private buildInBackground(cache: DiskCache, file: VirtualFile): void {
    if (this.building.has(file.key)) return;
    this.building.add(file.key);
    cache
      .get(file)
      .then(
        (r) => ('fallback' in r ? this.fallBack(file, r.fallback) : this.log(`${file.key}: reflinked copy ready in ${cache.dir}`)),
        (e: Error) => this.fallBack(file, e.message),
      )
      .finally(() => this.building.delete(file.key));
  }

  /**
   * A file inside a backup's volume: in reflink mode a large one is cloned into the cache folder
   * for the kernel to read (file-clone.ts); every other, or one whose clone fails (logged once a
   * volume), is read from its layout.
   */
  async openInner(key: string, volumeKey: string, layout: Layout): Promise<ReadableHandle> {
    const first = sourcesOf(layout)[0];
    if (this.cache && worthCloning(layout) && !this.fellBack.has(volumeKey) && first && (await this.clones(first.path))) {
      try {
        return await (this.openClones ??= new OpenClones(this.cache.dir)).clone(key, layout);
      } catch (e) {
        this.fellBack.add(volumeKey);
        this.log(`${volumeKey}: cannot clone its files into ${this.cache.dir}, reading them through the server: ${(e as Error).message}`);
      }
    }
    return openLayout({ key }, layout, this.fds);
  }

  private async wantsReflink(file: VirtualFile): Promise<boolean> {
    if (this.fellBack.has(file.key)) return false;
    const first = file.sources[0];
    return first !== undefined && this.clones(first.path);
  }

  /** Whether files of `source`'s filesystem are to be cloned into the cache. */
  private async clones(source: string): Promise<boolean> {
    if (this.mode !== 'auto') return this.mode === 'reflink';
    const { dev } = await stat(source);
    let probe = this.cloneable.get(dev);
    if (!probe) {
      probe = canReflink(source, this.cache!.dir).then((ok) => {
        if (!ok) this.log(`auto mode: ${this.cache!.dir} cannot share extents with ${source}: serving that filesystem in passthrough`);
        return ok;
      });
      // A failed probe (source gone) is not an answer: ask again next time.
      probe.catch(() => this.cloneable.delete(dev));
      this.cloneable.set(dev, probe);
    }
    return probe;
  }

  private fallBack(file: VirtualFile, why: string): void {
    this.fellBack.add(file.key);
    this.log(`${file.key}: cannot build a reflinked copy, serving it in passthrough: ${why}`);
  }
}
