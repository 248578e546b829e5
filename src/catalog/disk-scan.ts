// The one-shot half of a scan, which `list`, `build` and the incremental catalog share: loading
// image folders, reading UrBackup's associations, grouping images into disks and assembling them.
import type { Stats } from 'node:fs';
import type { PartitionedMbrFile } from '../urbackup/mbr-file.js';
import type { AssociationDatabase, Associations } from '../urbackup/database.js';
import { type Grouping, groupImages } from '../disk/partners.js';
import { type ImageFolder, discoverStorage } from '../urbackup/storage.js';
import { BLOCKING, POOLED, type StorageCalls } from '../sys/storage-calls.js';
import { type BackupDisk, type DiskOptions, backupDisk } from './backup-disk.js';
import { containerSize } from './container-file.js';
import type { ImageLoader, LoadedImage } from './image-loader.js';

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

export function errorText(e: unknown): string {
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
export async function readAssociations(opts: ScanOptions, warnings: string[]): Promise<Associations | undefined> {
  if (opts.partners === false || !opts.database) return undefined;
  try {
    return await opts.database.read();
  } catch (e) {
    warnings.push(`${errorText(e)}; using the heuristic for SYSVOL/ESP`);
    return undefined;
  }
}

/** Groups loaded images into disks (main image + partners) and assembles each. */
export function groupDisks(loaded: readonly LoadedImage[], associations: Associations | undefined, opts: ScanOptions, warnings: string[]): BackupDisk[] {
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
