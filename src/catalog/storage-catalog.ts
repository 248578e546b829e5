// Everything `serve` shows for a storage, kept for its whole run: the catalog remembers every
// client folder and rescans only what the watcher says changed (or, in a safety-net pass, what a
// stat says did).
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Associations } from '../urbackup/database.js';
import { type FoundImage, type ImageFolder, StorageError, imagesOf, readClient, readClientNames } from '../urbackup/storage.js';
import { BLOCKING, POOLED, type StorageCalls } from '../sys/storage-calls.js';
import { type BackupDisk, diskVersion } from './backup-disk.js';
import { type ContainerKind, kindFileName } from './container-kind.js';
import { ContainerFile, formatsFor, newLayoutCache } from './container-file.js';
import { type ScanOptions, errorText, groupDisks, loadImages, readAssociations } from './disk-scan.js';
import { AccessInterner, FolderReach } from './folder-access.js';
import { ImageLoader } from './image-loader.js';
import { prefetchClients } from './scan-prefetch.js';
import type { Catalog, CatalogScan, Ownership, SourceAccess, VirtualFile } from './virtual-file.js';

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
  private readonly layouts = newLayoutCache();
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
    private readonly formats: readonly ContainerKind[],
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
    await this.storageThere();
    const reread = await this.staleClients(changed, calls);
    let regroupAll = await this.rereadDatabase(changed);

    this.reach = new FolderReach(calls);
    this.storageChain = await this.reach.chain(this.storage);
    await this.rereadClients(reread, calls);
    // The safety net's pass regroups every client: that stats every source again, so a chmod
    // or chown in the storage, which changes no folder's mtime, shows by the next such pass.
    if (restat) regroupAll = true;
    if (regroupAll) for (const [name, c] of this.clients) if (!reread.has(name)) await this.group(c, calls);
    // What this scan stat'ed is not kept.
    this.reach = new FolderReach();

    // And once more at the end: files that could not be read because the storage went during
    // the scan (an unmount racing it) are not deleted backups either.
    await this.storageThere();
    return this.shown();
  }

  /** The client folders to read again: new ones, and those whose folder or pending image folders changed; drops the gone ones. */
  private async staleClients(changed: ReadonlySet<string> | undefined, calls: StorageCalls): Promise<Set<string>> {
    // Told by the watcher, or (a pass without it) found by a stat: an unchanged folder costs one.
    const isStale = async (dir: string, stamp: number | undefined): Promise<boolean> =>
      changed ? changed.has(dir) : stamp === undefined || (await stat(dir).then((s) => s.mtimeMs, () => undefined)) !== stamp;
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
    return reread;
  }

  /** Reads UrBackup's database again when it may have changed; whether every client must be regrouped. */
  private async rereadDatabase(changed: ReadonlySet<string> | undefined): Promise<boolean> {
    if (!this.opts.database || (changed && !changed.has(dirname(this.opts.database.path)) && this.databaseWarnings.length === 0)) return false;
    const warnings: string[] = [];
    const a = await readAssociations(this.opts, warnings);
    const regroupAll = a !== this.associations || warnings.join() !== this.databaseWarnings.join();
    this.associations = a;
    this.databaseWarnings = warnings;
    return regroupAll;
  }

  private async rereadClients(reread: ReadonlySet<string>, calls: StorageCalls): Promise<void> {
    // One client at a time, read and then grouped, so that what a read holds (every image
    // folder's stats) is let go before the next (docs/architecture.md §5, Heap).
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
  }

  /** Every client's files and warnings, the database's first. */
  private shown(): CatalogScan {
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
   * are joined onto the resolved storage: no path.resolve per disk (docs/architecture.md §6).
   */
  private async accessOf(b: BackupDisk): Promise<SourceAccess> {
    const client = await this.reach.chain(dirname(b.images[0]!.dir));
    const imageFolders = await Promise.all(b.images.map((i) => this.reach.chain(i.dir)));
    return this.accesses.intern({ storage: this.storageChain, client, disk: [...imageFolders.flat(), ...b.owners] });
  }
}
