// Which filesystem each partition image of a disk holds, for `list` and `inspect`: what the image
// folder of files in the mount shows (docs/browsing.md §2). Only each volume's first bytes are read.
import type { BackupDisk } from '../catalog/backup-disk.js';
import { imageFileSystem } from '../serve/image-volume.js';
import { errorText } from './errors.js';

export interface ImageFileSystem {
  readonly folder: string;
  /** As src/filesystem/detect.ts names it (NTFS, FAT, ext4, ReFS, BitLocker...), or `unknown (why)`. */
  readonly name: string;
  readonly browsable: boolean;
}

/** Disks whose images are detected at once by `list`: a bound on open descriptors and reads in flight. */
const DISKS_AT_ONCE = 16;

/** Each image's filesystem; none for a whole-disk image, which holds a disk, not a volume. */
export async function diskFileSystems(b: BackupDisk): Promise<ImageFileSystem[]> {
  if (b.disk.table === 'whole-disk') return [];
  const detect = (raw: string) => imageFileSystem(raw).catch((e: unknown) => ({ name: `unknown (${errorText(e)})`, browsable: false }));
  return Promise.all(b.images.map(async (i) => ({ folder: i.folder, ...(await detect(i.raw)) })));
}

/** diskFileSystems of every disk, DISKS_AT_ONCE at a time, in the disks' order. */
export async function allDiskFileSystems(disks: readonly BackupDisk[]): Promise<ImageFileSystem[][]> {
  const out: ImageFileSystem[][] = [];
  for (let i = 0; i < disks.length; i += DISKS_AT_ONCE) out.push(...(await Promise.all(disks.slice(i, i + DISKS_AT_ONCE).map(diskFileSystems))));
  return out;
}

/** The text line `list` and `inspect` print for one image. */
export function fileSystemLine(f: ImageFileSystem): string {
  return `  filesystem of ${f.folder}: ${f.name}${f.browsable ? '' : ' (its files cannot be browsed)'}`;
}
