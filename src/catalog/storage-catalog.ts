// Everything `serve` and `list` show for a storage: one disk per backup, in each container format.
// `serve` keeps one StorageCatalog for its whole run: it remembers every client folder and
// rescans only what the watcher says changed (or, in a safety-net pass, what a stat says did).
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { Bytes } from '../base/units.js';
import { ContainerError } from '../container/disk-image.js';
import type { Layout } from '../disk/layout.js';
import type { Catalog, CatalogScan, Ownership, SourceAccess, VirtualFile } from './virtual-file.js';
import type { PartitionedMbrFile } from '../urbackup/mbr-file.js';
import type { AssociationDatabase, Associations } from '../urbackup/database.js';
import { type Grouping, groupImages } from '../disk/partners.js';
import { type FoundImage, type ImageFolder, StorageError, discoverStorage, imagesOf, readClient, readClientNames } from '../urbackup/storage.js';
import { type BackupDisk, type DiskOptions, backupDisk, diskVersion } from './backup-disk.js';
import { CONTAINER_KINDS, type ContainerKind, checkKind, kindFileName, kindLayout, kindRefusal, kindSize, sizeNeedsDataMaps } from './container-kind.js';
import { AccessInterner, FolderReach } from './folder-access.js';
import { ImageLoader, type LoadedImage } from './image-loader.js';
import { BLOCKING, POOLED, type StorageCalls } from '../sys/storage-calls.js';
import { prefetchClients } from './scan-prefetch.js';

export type ContainerFormat = ContainerKind;
export const CONTAINER_FORMATS = CONTAINER_KINDS;

/** Runs `fn`, naming the backup's folder in a ContainerError. */
function naming<T>(b: BackupDisk, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ContainerError) throw new ContainerError(`${b.images[0]!.dir}: ${e.message}`);
    throw e;
  }
}

export function containerLayout(b: BackupDisk, format: ContainerFormat): Layout {
  return naming(b, () => kindLayout(b, format));
}

/** The container file's size, without building its layout. */
export function containerSize(b: BackupDisk, format: ContainerFormat): Bytes {
  return naming(b, () => kindSize(b, format));
}

/** The formats a disk can be shown in: no `.vhd` for 4Kn disks or disks over 2040 GiB. */
export function formatsFor(b: BackupDisk, wanted: readonly ContainerFormat[]): ContainerFormat[] {
  return wanted.filter((f) => kindRefusal(b, f) === null);
}

export interface ScanOptions {
  readonly showIncomplete?: boolean;
  /** Assemble SYSVOL/ESP partners into their main image's disk (default true). */
  readonly partners?: boolean;
  /** Give every disk its own signature / GUIDs (--unique-ids). */
  readonly uniqueIds?: boolean;
  /** UrBackup's database, for which SYSVOL/ESP images belong to which main image. */
  readonly database?: AssociationDatabase;
}

export interface DiskScan {
  readonly disks: BackupDisk[];
  readonly warnings: string[];
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

interface LoadedCandidate {
  readonly folder: ImageFolder;
  readonly mbr?: PartitionedMbrFile;
  readonly loaded: LoadedImage;
}

function candidate(l: LoadedImage): LoadedCandidate {
  return { folder: l.folder, loaded: l, ...(l.kind === 'partition' && { mbr: l.image.mbr }) };
}

/** Images loaded at once: libuv's pool size (src/cli/main.cts), and what bounds the read buffers in memory. */
const LOAD_CONCURRENCY = 32;

/** Loads images, at most LOAD_CONCURRENCY at a time, reporting the ones that cannot be read as warnings. */
export async function loadImages(
  images: readonly ImageFolder[], loader: ImageLoader, warnings: string[], rawStats?: ReadonlyMap<string, Stats>, calls: StorageCalls = POOLED,
): Promise<LoadedImage[]> {
  const loaded: (LoadedImage | undefined)[] = new Array(images.length);
  let next = 0;
  const loadNext = async (): Promise<void> => {
    for (let i = next++; i < images.length; i = next++) {
      const image = images[i]!;
      loaded[i] = await loader.load(image, rawStats?.get(image.raw), calls).catch((e: unknown) => {
        warnings.push(errorText(e));
        return undefined;
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOAD_CONCURRENCY, images.length) }, loadNext));
  return loaded.filter((l): l is LoadedImage => l !== undefined);
}

/** UrBackup's associations, or undefined (with a warning) when the database cannot be read. */
async function readAssociations(opts: ScanOptions, warnings: string[]): Promise<Associations | undefined> {
  if (opts.partners === false || !opts.database) return undefined;
  try {
    return await opts.database.read();
  } catch (e) {
    warnings.push(`${errorText(e)}; using the heuristic for SYSVOL/ESP`);
    return undefined;
  }
}

/** Groups loaded images into disks (main image + partners) and assembles each. */
function groupDisks(loaded: readonly LoadedImage[], associations: Associations | undefined, opts: ScanOptions, warnings: string[]): BackupDisk[] {
  const cands = loaded.map(candidate);
  const { groups, notes }: Grouping<LoadedCandidate> =
    opts.partners === false ? { groups: cands.map((main) => ({ main, partners: [] })), notes: [] } : groupImages(cands, associations);
  warnings.push(...notes);
  const disks: BackupDisk[] = [];
  for (const g of groups) {
    const d = cachedDisk(g.main.loaded, g.partners.map((p) => p.loaded), { ...(g.source && { partnersFrom: g.source }), uniqueIds: opts.uniqueIds === true }, warnings);
    if (d) disks.push(d);
  }
  return disks;
}

/** Groups loaded images into disks (main image + partners) and assembles each. */
export async function disksOf(loaded: readonly LoadedImage[], opts: ScanOptions, warnings: string[]): Promise<BackupDisk[]> {
  return groupDisks(loaded, await readAssociations(opts, warnings), opts, warnings);
}

/** Scans a whole storage once (`list`), with blocking calls: nothing else waits meanwhile (sys/storage-calls.ts). */
export async function scanDisks(storage: string, loader: ImageLoader, opts: ScanOptions = {}): Promise<DiskScan> {
  const found = await discoverStorage(storage, BLOCKING);
  const warnings = [...found.warnings];
  const images = found.images.filter((i) => opts.showIncomplete || i.complete);
  loader.retain(new Set(images.map((i) => i.raw)));
  const disks = await disksOf(await loadImages(images, loader, warnings, undefined, BLOCKING), opts, warnings);
  return { disks, warnings };
}

// Assembled disks are kept as long as their loaded images (themselves cached while unchanged).
const diskCache = new WeakMap<LoadedImage, { partners: readonly LoadedImage[]; opts: DiskOptions; disk: BackupDisk | string }>();

function assemble(main: LoadedImage, partners: readonly LoadedImage[], opts: DiskOptions): BackupDisk | string {
  try {
    const b = backupDisk(main, partners, opts);
    // A table claiming a disk no container can hold (over 64 TiB) is one broken backup, not a failed scan.
    containerSize(b, 'vhdx-fixed');
    return b;
  } catch (e) {
    if (partners.length === 0) return errorText(e);
    // A partner that does not fit must not hide the main disk: serve it alone and say why.
    const alone = assemble(main, [], { ...opts, partnersFrom: undefined });
    return typeof alone === 'string' ? alone : { ...alone, warnings: [`partners not assembled: ${errorText(e)}`] };
  }
}

function cachedDisk(main: LoadedImage, partners: readonly LoadedImage[], opts: DiskOptions, warnings: string[]): BackupDisk | undefined {
  let c = diskCache.get(main);
  if (!c || c.opts.partnersFrom !== opts.partnersFrom || c.partners.length !== partners.length || c.partners.some((p, i) => p !== partners[i])) {
    c = { partners, opts, disk: assemble(main, partners, opts) };
    diskCache.set(main, c);
  }
  const d = c.disk;
  if (typeof d === 'string') {
    warnings.push(d);
    return undefined;
  }
  for (const w of [...d.disk.warnings, ...d.warnings]) warnings.push(`${d.images[0]!.dir}: ${w}`);
  return d;
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

/**
 * A disk in one format, keeping its layout (built on open) in the catalog's bounded cache. The
 * size of a dynamic kind is computed on its first stat, not at the scan: it maps the `.raw`
 * files' data (cached by their identity), which 10 000 backups made a mount wait for.
 */
class ContainerFile implements VirtualFile {
  readonly name: string;
  private knownSize: Bytes | undefined;

  constructor(
    private readonly disk: BackupDisk,
    private readonly format: ContainerFormat,
    readonly version: string,
    readonly access: SourceAccess,
    private readonly layouts: LRUCache<ContainerFile, Layout>,
  ) {
    this.name = kindFileName(disk.folder, format);
    naming(disk, () => checkKind(disk, format));
    if (!sizeNeedsDataMaps(format)) this.knownSize = containerSize(disk, format);
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

  get size(): Bytes {
    return (this.knownSize ??= containerSize(this.disk, this.format));
  }

  get sizeKnown(): boolean {
    return this.knownSize !== undefined;
  }

  get sizeSources(): BackupDisk['sources'] {
    return this.knownSize === undefined ? this.disk.sources : [];
  }

  layout(): Layout {
    let l = this.layouts.get(this);
    if (!l) this.layouts.set(this, (l = containerLayout(this.disk, this.format)));
    return l;
  }
}

/** What the catalog knows of one client folder. */
interface ClientState {
  /** The folder's mtime when it was read, if it may be trusted to show the next change (see stampOf). */
  stamp: number | undefined;
  images: ImageFolder[];
  /** Image folders not finished or not usable yet, and their mtimes: their `.raw.mbr` and `.raw.sync` are awaited. */
  pending: Map<string, number | undefined>;
  discoveryWarnings: string[];
  files: VirtualFile[];
  warnings: string[];
}

/**
 * Timestamps of a change made in the same clock tick as our read look unchanged afterwards:
 * an mtime this close to the time it was read is not trusted, and the folder is read again at
 * the next pass (kernel timestamps move in jiffies, up to 10 ms; network filesystems' clocks differ).
 */
const MTIME_TRUST_MS = 2000;

function stampOf(mtimeMs: number | undefined, readAt: number): number | undefined {
  return mtimeMs !== undefined && readAt - mtimeMs > MTIME_TRUST_MS ? mtimeMs : undefined;
}

/** The virtual files of a storage, for the FUSE filesystem. */
export class StorageCatalog implements Catalog {
  private readonly loader = new ImageLoader();
  private readonly layouts = new LRUCache<ContainerFile, Layout>({ maxSize: LAYOUT_CACHE_BYTES, sizeCalculation: layoutCost });
  private readonly clients = new Map<string, ClientState>();
  private rootStamp: number | undefined;
  private rootRead = false;
  private associations: Associations | undefined;
  private databaseWarnings: string[] = [];
  /** Files per disk, so that an unchanged disk keeps the same VirtualFile objects across scans. */
  private readonly filesOf = new WeakMap<BackupDisk, { readonly access: SourceAccess; readonly files: VirtualFile[] }>();
  /** Folder owners and modes, stat'ed once per scan (see regroup in scan()). */
  private reach = new FolderReach();
  private storageChain: readonly Ownership[] = [];
  private readonly accesses = new AccessInterner();
  /** The `.raw` lstats of this scan's reads of client folders, for the loader. */
  private readonly rawStats = new Map<string, Stats>();

  /** Absolute and normalized: every folder of a scan is joined onto it, so they are too. */
  private readonly storage: string;

  constructor(
    storage: string,
    private readonly formats: readonly ContainerFormat[],
    private readonly opts: ScanOptions = {},
  ) {
    this.storage = resolve(storage);
  }

  /** The storage folder, every client folder, every incomplete image folder, and the database's folder. */
  watchedDirs(): Map<string, boolean> {
    const out = new Map<string, boolean>([[this.storage, false]]);
    for (const [name, c] of this.clients) {
      out.set(join(this.storage, name), false);
      // With --show-incomplete a growing `.raw` changes its file's size: its writes matter too.
      for (const dir of c.pending.keys()) out.set(dir, this.opts.showIncomplete === true);
    }
    if (this.opts.database) out.set(dirname(this.opts.database.path), true);
    return out;
  }

  async scan(changed?: ReadonlySet<string>, restat = false): Promise<CatalogScan> {
    // The first scan blocks (sys/storage-calls.ts): serve makes it before it mounts, when no request
    // can wait behind it. Later ones run beside requests and use the pool.
    const calls = this.rootRead ? POOLED : BLOCKING;
    // Told by the watcher, or (a pass without it) found by a stat: an unchanged folder costs one.
    const isStale = async (dir: string, stamp: number | undefined): Promise<boolean> =>
      changed ? changed.has(dir) : stamp === undefined || (await stat(dir).then((s) => s.mtimeMs, () => undefined)) !== stamp;

    await this.storageThere();
    const reread = new Set<string>();
    if (!this.rootRead || (await isStale(this.storage, this.rootStamp))) {
      const t = Date.now();
      const { names, mtimeMs } = await readClientNames(this.storage, calls);
      this.rootStamp = stampOf(mtimeMs, t);
      this.rootRead = true;
      const wanted = new Set(names);
      for (const name of this.clients.keys()) if (!wanted.has(name)) this.dropClient(name);
      for (const name of names) if (!this.clients.has(name)) reread.add(name);
    }
    await Promise.all(
      [...this.clients].map(async ([name, c]) => {
        if (reread.has(name)) return;
        if (await isStale(join(this.storage, name), c.stamp)) return void reread.add(name);
        for (const [dir, stamp] of c.pending) if (await isStale(dir, stamp)) return void reread.add(name);
      }),
    );

    let regroupAll = false;
    if (this.opts.database && (!changed || changed.has(dirname(this.opts.database.path)) || this.databaseWarnings.length > 0)) {
      const warnings: string[] = [];
      const a = await readAssociations(this.opts, warnings);
      regroupAll = a !== this.associations || warnings.join() !== this.databaseWarnings.join();
      this.associations = a;
      this.databaseWarnings = warnings;
    }

    this.reach = new FolderReach(calls);
    this.storageChain = await this.reach.chain(this.storage);
    // One client at a time, read and then grouped, so that what a read holds (every image
    // folder's stats) is let go before the next: with all 50 clients of 10 000 backups read
    // first, a scan's heap grew to 121 MiB for 40 MiB kept.
    // A first scan meets cold caches: threads read ahead of it (scan-prefetch.ts).
    const prefetch = calls === BLOCKING && reread.size > 1 ? prefetchClients(this.storage, [...reread], this.opts.showIncomplete === true) : undefined;
    try {
      for (const name of reread) {
        await this.reread(name, calls);
        await this.group(this.clients.get(name)!, calls);
        this.rawStats.clear();
      }
    } finally {
      prefetch?.stop();
    }
    // The safety net's pass regroups every client: that stats every source again, so a chmod
    // or chown in the storage, which changes no folder's mtime, shows by the next such pass.
    if (restat) regroupAll = true;
    if (regroupAll) for (const [name, c] of this.clients) if (!reread.has(name)) await this.group(c, calls);
    // What this scan stat'ed is not kept.
    this.reach = new FolderReach();

    // And once more at the end: files that could not be read because the storage went during
    // the scan (an unmount racing it) are not deleted backups either.
    await this.storageThere();
    const files: VirtualFile[] = [];
    const warnings = [...this.databaseWarnings];
    for (const c of this.clients.values()) {
      for (const f of c.files) files.push(f);
      for (const w of c.warnings) warnings.push(w);
    }
    return { files, warnings };
  }

  private dropClient(name: string): void {
    for (const i of this.clients.get(name)?.images ?? []) this.loader.forget(i.raw);
    this.clients.delete(name);
  }

  /**
   * Throws unless the storage folder is there: a client folder gone with the whole storage
   * (unmounted, its disk failed) is no deleted backup, so the scan fails and the tree stays.
   */
  private async storageThere(): Promise<void> {
    await stat(this.storage).catch((e: NodeJS.ErrnoException) => {
      throw new StorageError(`${this.storage}: cannot read the storage folder (${e.code ?? e.message})`);
    });
  }

  private async reread(name: string, calls: StorageCalls): Promise<void> {
    const t = Date.now();
    const found = await readClient(this.storage, name, calls);
    // An unreadable client folder: asked again after the read, which may have raced an unmount.
    if (found.mtimeMs === undefined) await this.storageThere();
    const old = this.clients.get(name);
    const images = imagesOf(found);
    for (const i of found.images) {
      this.reach.know(i.dir, i.stats, i.linked);
      if (i.folder && i.rawStats) this.rawStats.set(i.folder.raw, i.rawStats);
    }
    const kept = new Set(images.map((i) => i.raw));
    for (const i of old?.images ?? []) if (!kept.has(i.raw)) this.loader.forget(i.raw);
    this.clients.set(name, {
      stamp: stampOf(found.mtimeMs, t),
      images,
      pending: new Map(found.images.filter((i: FoundImage) => !i.folder?.complete).map((i) => [i.dir, stampOf(i.mtimeMs, t)])),
      discoveryWarnings: found.warnings.sort(),
      files: old?.files ?? [],
      warnings: old?.warnings ?? [],
    });
  }

  /** Groups one client's images into disks (partners are always the same client's) and makes their files. */
  private async group(c: ClientState, calls: StorageCalls): Promise<void> {
    const warnings = [...c.discoveryWarnings];
    const images = c.images.filter((i) => this.opts.showIncomplete || i.complete);
    const disks = groupDisks(await loadImages(images, this.loader, warnings, this.rawStats, calls), this.associations, this.opts, warnings);
    const files: VirtualFile[] = [];
    for (const b of disks) {
      const access = await this.accessOf(b);
      let known = this.filesOf.get(b);
      if (known?.access !== access) {
        const version = diskVersion(b);
        const fs: VirtualFile[] = [];
        for (const f of formatsFor(b, this.formats)) {
          try {
            fs.push(new ContainerFile(b, f, version, access, this.layouts));
          } catch (e) {
            // A disk the kind cannot hold (too large for a VHD, over 64 TiB) hides only this file.
            warnings.push(`${kindFileName(b.folder, f)}: ${errorText(e)}`);
          }
        }
        known = { access, files: fs };
        // A disk none of whose files could be made is tried again at its client's next scan.
        if (fs.length > 0) this.filesOf.set(b, known);
      }
      files.push(...known.files);
    }
    c.files = files;
    c.warnings = warnings;
  }

  /**
   * Who could read the disk's sources directly: every folder on the way, and each file. `dir`s
   * are joined onto the resolved storage: no path.resolve per disk (0.05 s of 10 000 backups' start).
   */
  private async accessOf(b: BackupDisk): Promise<SourceAccess> {
    const client = await this.reach.chain(dirname(b.images[0]!.dir));
    const imageFolders = await Promise.all(b.images.map((i) => this.reach.chain(i.dir)));
    return this.accesses.intern({ storage: this.storageChain, client, disk: [...imageFolders.flat(), ...b.owners] });
  }
}
