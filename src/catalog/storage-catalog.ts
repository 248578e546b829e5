// Everything `serve` and `list` show for a storage: one disk per backup, in each container format.
import { ContainerError } from '../container/disk-image.js';
import { canBeVhd, vhdLayout } from '../container/vhd.js';
import { vhdxLayout } from '../container/vhdx.js';
import type { Layout } from '../disk/layout.js';
import type { Catalog, VirtualFile } from '../fuse/virtual-file.js';
import { discoverStorage } from '../urbackup/storage.js';
import { type BackupDisk, backupDisk, diskImage } from './backup-disk.js';
import { ImageLoader, type LoadedImage } from './image-loader.js';

export type ContainerFormat = 'vhd' | 'vhdx';
export const CONTAINER_FORMATS: readonly ContainerFormat[] = ['vhd', 'vhdx'];

export function containerLayout(b: BackupDisk, format: ContainerFormat): Layout {
  try {
    return format === 'vhd' ? vhdLayout(diskImage(b)) : vhdxLayout(diskImage(b));
  } catch (e) {
    if (e instanceof ContainerError) throw new ContainerError(`${b.images[0]!.dir}: ${e.message}`);
    throw e;
  }
}

/** The formats a disk can be shown in: no `.vhd` for 4Kn disks or disks over 2040 GiB. */
export function formatsFor(b: BackupDisk, wanted: readonly ContainerFormat[]): ContainerFormat[] {
  return wanted.filter((f) => f !== 'vhd' || canBeVhd({ size: b.disk.layout.size, sectorSize: b.disk.sectorSize }) === null);
}

export interface ScanOptions {
  readonly showIncomplete?: boolean;
}

export interface DiskScan {
  readonly disks: BackupDisk[];
  readonly warnings: string[];
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Scans a storage for disks; repeated scans with the same loader only stat unchanged images. */
export async function scanDisks(storage: string, loader: ImageLoader, opts: ScanOptions = {}): Promise<DiskScan> {
  const found = await discoverStorage(storage);
  const warnings = [...found.warnings];
  const images = found.images.filter((i) => opts.showIncomplete || i.complete);
  loader.retain(new Set(images.map((i) => i.raw)));
  const loaded = await Promise.all(
    images.map((i) =>
      loader.load(i).catch((e: unknown) => {
        warnings.push(errorText(e));
        return undefined;
      }),
    ),
  );
  const disks: BackupDisk[] = [];
  for (const l of loaded) {
    if (!l) continue;
    const d = cachedDisk(l, warnings);
    if (d) disks.push(d);
  }
  return { disks, warnings };
}

// Assembled disks are kept as long as their loaded image (itself cached while unchanged).
const diskCache = new WeakMap<LoadedImage, BackupDisk | string>();

function cachedDisk(l: LoadedImage, warnings: string[]): BackupDisk | undefined {
  let d = diskCache.get(l);
  if (d === undefined) {
    try {
      d = backupDisk(l);
    } catch (e) {
      d = errorText(e);
    }
    diskCache.set(l, d);
  }
  if (typeof d === 'string') {
    warnings.push(d);
    return undefined;
  }
  return d;
}

const sizeCache = new WeakMap<BackupDisk, Map<ContainerFormat, number>>();

function containerSize(b: BackupDisk, f: ContainerFormat): number {
  let m = sizeCache.get(b);
  if (!m) sizeCache.set(b, (m = new Map()));
  let s = m.get(f);
  if (s === undefined) m.set(f, (s = containerLayout(b, f).size));
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
    const files: VirtualFile[] = [];
    for (const b of disks) {
      for (const f of formatsFor(b, this.formats)) {
        const name = `${b.folder}.${f}`;
        files.push({
          dir: b.client,
          name,
          size: containerSize(b, f),
          mtime: b.time,
          key: `${b.client}/${name}`,
          sources: b.sources,
          layout: () => containerLayout(b, f),
        });
      }
    }
    return { files, warnings };
  }
}
