// A backup's disk as one container file: its name, size and layout, the layout built on open
// and kept in a bounded cache.
import { LRUCache } from 'lru-cache';
import type { Bytes } from '../base/units.js';
import { ContainerError } from '../container/disk-image.js';
import type { Layout } from '../disk/layout.js';
import type { BackupDisk } from './backup-disk.js';
import { type ContainerKind, checkKind, kindFileName, kindFullSize, kindLayout, kindRefusal, kindSize, sizeNeedsDataMaps } from './container-kind.js';
import type { SourceAccess, VirtualFile } from './virtual-file.js';

/** Runs `fn`, naming the backup's folder in a ContainerError. */
function naming<T>(b: BackupDisk, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ContainerError) throw new ContainerError(`${b.images[0]!.dir}: ${e.message}`);
    throw e;
  }
}

export function containerLayout(b: BackupDisk, kind: ContainerKind): Layout {
  return naming(b, () => kindLayout(b, kind));
}

/** The container file's size, without building its layout. */
export function containerSize(b: BackupDisk, kind: ContainerKind): Bytes {
  return naming(b, () => kindSize(b, kind));
}

/** The kinds a disk can be shown in: no `.vhd` for 4Kn disks or disks over 2040 GiB. */
export function formatsFor(b: BackupDisk, wanted: readonly ContainerKind[]): ContainerKind[] {
  return wanted.filter((f) => kindRefusal(b, f) === null);
}

/**
 * Layouts of opened files, bounded by the bytes they hold in memory (a VHDX BAT is up to
 * 16 MiB): a listing builds none, and opening every disk of a large storage once keeps at most
 * this much.
 */
const LAYOUT_CACHE_BYTES = 64 * 1024 * 1024;
/** What a layout costs besides its `bytes` segments: about one object per segment. */
const SEGMENT_COST = 100;

function layoutCost(l: Layout): number {
  let n = 0;
  for (const s of l.segments) n += SEGMENT_COST + (s.kind === 'bytes' ? s.data.length : 0);
  return n;
}

export type LayoutCache = LRUCache<ContainerFile, Layout>;

/** A catalog's cache of the layouts of its opened files. */
export function newLayoutCache(): LayoutCache {
  return new LRUCache<ContainerFile, Layout>({ maxSize: LAYOUT_CACHE_BYTES, sizeCalculation: layoutCost });
}

/**
 * A disk in one kind, keeping its layout (built on open) in the catalog's bounded cache. The
 * size of a dynamic kind is computed on its first stat, not at the scan: it maps the `.raw`
 * files' data (cached by their identity), which 10 000 backups made a mount wait for.
 */
export class ContainerFile implements VirtualFile {
  readonly name: string;
  private knownSize: Bytes | undefined;

  constructor(
    private readonly disk: BackupDisk,
    private readonly kind: ContainerKind,
    readonly version: string,
    readonly access: SourceAccess,
    private readonly layouts: LayoutCache,
  ) {
    this.name = kindFileName(disk.folder, kind);
    naming(disk, () => checkKind(disk, kind));
    if (!sizeNeedsDataMaps(kind)) this.knownSize = containerSize(disk, kind);
  }

  get dir(): string {
    return this.disk.client;
  }

  get mtime(): Date {
    return this.disk.time;
  }

  get key(): string {
    return `${this.disk.client}/${this.name}`;
  }

  get sources(): BackupDisk['sources'] {
    return this.disk.sources;
  }

  /** A whole-disk image holds no single volume: nothing to browse. */
  get images(): BackupDisk['images'] {
    return this.disk.disk.table === 'whole-disk' ? [] : this.disk.images;
  }

  computeSize(): Bytes {
    return (this.knownSize ??= containerSize(this.disk, this.kind));
  }

  fullSize(): Bytes {
    return naming(this.disk, () => kindFullSize(this.disk, this.kind));
  }

  get sizeKnown(): boolean {
    return this.knownSize !== undefined;
  }

  get sizeSources(): BackupDisk['sources'] {
    return this.knownSize === undefined ? this.disk.sources : [];
  }

  layout(): Layout {
    let l = this.layouts.get(this);
    if (!l) this.layouts.set(this, (l = containerLayout(this.disk, this.kind)));
    return l;
  }
}
