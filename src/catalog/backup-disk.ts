// One virtual disk per backup: the main image with its partners placed into their partitions.
import { hash } from 'node:crypto';
import { type AssembledDisk, AssembleError, assembleDisk, wholeDiskImage } from '../disk/assemble.js';
import { withUniqueIds } from '../disk/unique-ids.js';
import type { PartitionedMbrFile } from '../urbackup/mbr-file.js';
import type { DiskImage } from '../container/disk-image.js';
import { nameBasedId } from '../base/guid.js';
import type { AssociationSource } from '../disk/partners.js';
import type { ImageFolder } from '../urbackup/storage.js';
import type { IdentifiedSource, LoadedImage } from './image-loader.js';
import { identityKey } from '../sys/file-identity.js';
import type { Ownership } from './virtual-file.js';

export interface BackupDisk {
  readonly client: string;
  /** The main image's folder name; the virtual files are named after it. */
  readonly folder: string;
  readonly time: Date;
  readonly images: readonly ImageFolder[];
  readonly disk: AssembledDisk;
  readonly sources: readonly IdentifiedSource[];
  /** Owner and mode of every `.raw.mbr` and `.raw` it is assembled from. */
  readonly owners: readonly Ownership[];
  /** Where the partner images' association came from. */
  readonly partnersFrom?: AssociationSource;
  /** Problems with the grouping, beside the disk's own. */
  readonly warnings: readonly string[];
}

export interface DiskOptions {
  readonly partnersFrom?: AssociationSource;
  /** Rewrite the disk signature / GUIDs (--unique-ids). */
  readonly uniqueIds?: boolean;
}

export function backupDisk(main: LoadedImage, partners: readonly LoadedImage[] = [], opts: DiskOptions = {}): BackupDisk {
  const { client, folder, time } = main.folder;
  const parts = partners.map((p) => {
    if (p.kind !== 'partition') throw new Error(`${p.folder.raw}: a whole-disk image cannot be a partner`);
    return p.image;
  });
  const image = main.kind === 'partition' && opts.uniqueIds ? { ...main.image, mbr: uniqueMbr(main.folder.mbrPath, main.image.mbr, `${client}/${folder}`) } : undefined;
  const disk = main.kind === 'whole-disk' ? wholeDiskImage(main.raw, main.diskLength) : assembleDisk(image ?? main.image, parts);
  const mainRaw = main.kind === 'whole-disk' ? main.raw : main.image.raw;
  return {
    client,
    folder,
    time,
    images: [main.folder, ...partners.map((p) => p.folder)],
    disk,
    sources: [mainRaw, ...parts.map((p) => p.raw)],
    owners: [main, ...partners].flatMap((l) => l.owners),
    ...(partners.length > 0 && opts.partnersFrom && { partnersFrom: opts.partnersFrom }),
    warnings: [],
  };
}

/**
 * The disk's id in its container, stable and distinct per backup (docs/admin.md
 * §3). Made when a layout is, not per disk of a scan: a listing needs none
 * (docs/architecture.md §6).
 */
export function diskId(b: Pick<BackupDisk, 'client' | 'folder'>): Buffer {
  return nameBasedId(`synthvhd:${b.client}/${b.folder}`);
}

export function diskImage(b: BackupDisk): DiskImage {
  return { layout: b.disk.layout, sectorSize: b.disk.sectorSize, id: diskId(b), timestamp: b.time };
}

function uniqueMbr(path: string, mbr: PartitionedMbrFile, seed: string): PartitionedMbrFile {
  try {
    return withUniqueIds(mbr, seed);
  } catch (e) {
    throw new AssembleError(path, `cannot give the disk unique ids: ${e instanceof Error ? e.message : e}`);
  }
}

/**
 * What the disk's bytes follow from: which images went into it and each `.raw`'s identity (a
 * replaced file has another inode or mtime). Equal versions give equal bytes.
 */
export function diskVersion(b: BackupDisk): string {
  const parts = [...b.images.map((i) => i.dir), ...b.sources.map(({ identity }) => identityKey(identity))];
  return hash('sha256', parts.join('\0'), 'base64url').slice(0, 22);
}
