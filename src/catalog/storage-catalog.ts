// Everything `serve` and `list` show for a storage: one disk per backup, in each container format.
import { ContainerError } from '../container/disk-image.js';
import type { Layout } from '../disk/layout.js';
import type { Catalog, VirtualFile } from './virtual-file.js';
import type { PartitionedMbrFile } from '../urbackup/mbr-file.js';
import type { AssociationDatabase, Associations } from '../urbackup/database.js';
import { type Grouping, groupImages } from '../disk/partners.js';
import { type ImageFolder, discoverStorage } from '../urbackup/storage.js';
import { type BackupDisk, type DiskOptions, backupDisk, diskVersion } from './backup-disk.js';
import { CONTAINER_KINDS, type ContainerKind, kindFileName, kindLayout, kindRefusal, kindSize } from './container-kind.js';
import { ImageLoader, type LoadedImage } from './image-loader.js';
import { FolderReach } from './folder-access.js';
import { resolve } from 'node:path';

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

/** Loads images, reporting the ones that cannot be read as warnings. */
export async function loadImages(images: readonly ImageFolder[], loader: ImageLoader, warnings: string[]): Promise<LoadedImage[]> {
  const loaded = await Promise.all(
    images.map((i) =>
      loader.load(i).catch((e: unknown) => {
        warnings.push(errorText(e));
        return undefined;
      }),
    ),
  );
  return loaded.filter((l): l is LoadedImage => l !== undefined);
}

/** Groups loaded images into disks (main image + partners) and assembles each. */
export async function disksOf(loaded: readonly LoadedImage[], opts: ScanOptions, warnings: string[]): Promise<BackupDisk[]> {
  const cands = loaded.map(candidate);
  let associations: Associations | undefined;
  if (opts.partners !== false && opts.database) {
    try {
      associations = await opts.database.read();
    } catch (e) {
      warnings.push(`${errorText(e)}; using the heuristic for SYSVOL/ESP`);
    }
  }
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

/** Scans a storage for disks; repeated scans with the same loader only stat unchanged images. */
export async function scanDisks(storage: string, loader: ImageLoader, opts: ScanOptions = {}): Promise<DiskScan> {
  const found = await discoverStorage(storage);
  const warnings = [...found.warnings];
  const images = found.images.filter((i) => opts.showIncomplete || i.complete);
  loader.retain(new Set(images.map((i) => i.raw)));
  const disks = await disksOf(await loadImages(images, loader, warnings), opts, warnings);
  return { disks, warnings };
}

// Assembled disks are kept as long as their loaded images (themselves cached while unchanged).
const diskCache = new WeakMap<LoadedImage, { partners: readonly LoadedImage[]; disk: BackupDisk | string }>();

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
  if (!c || c.partners.length !== partners.length || c.partners.some((p, i) => p !== partners[i])) {
    c = { partners, disk: assemble(main, partners, opts) };
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

const sizeCache = new WeakMap<BackupDisk, Map<ContainerFormat, number>>();

export function containerSize(b: BackupDisk, f: ContainerFormat): number {
  let m = sizeCache.get(b);
  if (!m) sizeCache.set(b, (m = new Map()));
  let s = m.get(f);
  if (s === undefined) m.set(f, (s = naming(b, () => kindSize(b, f))));
  return s;
}

/** The virtual files of a storage, for the FUSE filesystem. */
export class StorageCatalog implements Catalog {
  private readonly loader = new ImageLoader();

  constructor(
    private readonly storage: string,
    private readonly formats: readonly ContainerFormat[],
    private readonly opts: ScanOptions = {},
  ) {}

  async scan(): Promise<{ files: VirtualFile[]; warnings: string[] }> {
    const { disks, warnings } = await scanDisks(this.storage, this.loader, this.opts);
    const folders = new FolderReach();
    const storage = await folders.chain(resolve(this.storage));
    const files: VirtualFile[] = [];
    for (const b of disks) {
      const client = await folders.chain(resolve(b.images[0]!.dir, '..'));
      const imageFolders = await Promise.all(b.images.map((i) => folders.chain(resolve(i.dir))));
      const access = { storage, client, disk: [...imageFolders.flat(), ...b.owners] };
      for (const f of formatsFor(b, this.formats)) {
        const name = kindFileName(b.folder, f);
        let size: number;
        try {
          size = containerSize(b, f);
        } catch (e) {
          // A dynamic kind maps the `.raw` files' data: a file that cannot be read hides only this one.
          warnings.push(`${name}: ${errorText(e)}`);
          continue;
        }
        files.push({
          dir: b.client,
          name,
          size,
          mtime: b.time,
          key: `${b.client}/${name}`,
          version: diskVersion(b),
          sources: b.sources,
          access,
          layout: () => containerLayout(b, f),
        });
      }
    }
    return { files, warnings };
  }
}
