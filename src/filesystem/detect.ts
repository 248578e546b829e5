// Which filesystem a volume holds, from its first bytes, and the reader that opens it: one table
// row per filesystem (docs/filesystems.md, Detection). A filesystem without a reader yet still has
// a row, so that what a user sees names it instead of calling the volume unknown.
import type { Bytes } from '../base/units.js';
import { looksLikeExt4, openExt4 } from './ext4/ext4-fs.js';
import { looksLikeFat, openFat } from './fat/fat-fs.js';
import { looksLikeNtfs } from './ntfs/ntfs-filesystem.js';
import { openNtfsWithWof } from './ntfs-wof.js';
import type { Volume, VolumeFileSystem } from './volume-fs.js';

/** Bytes read to detect: btrfs's superblock sits at 64 KiB (its magic at +0x40). */
export const DETECT_BYTES: Bytes = 65536 + 4096;

/** What a volume's reader is opened with. */
export interface OpenOptions {
  /** The drive letter the volume had on the machine backed up (NTFS links into it stay inside). */
  readonly letter?: string;
}

interface Row {
  /** The filesystem's name as a user knows it. */
  readonly name: string;
  readonly matches: (head: Buffer) => boolean;
  /** Absent: no reader for it yet. */
  readonly open?: (volume: Volume, options: OpenOptions) => Promise<VolumeFileSystem>;
}

const text = (head: Buffer, at: number, s: string): boolean => head.length >= at + s.length && head.toString('latin1', at, at + s.length) === s;

/**
 * First match wins. BitLocker keeps a boot sector of its own with the OEM id "-FVE-FS-"; ReFS
 * "ReFS\0\0\0\0" and exFAT "EXFAT   " at byte 3; FAT's type string at 54 (FAT12/16) or 82 (FAT32);
 * ext2/3/4's s_magic 0xEF53 at 1024 + 56; XFS "XFSB" at 0; btrfs "_BHRfS_M" at 65536 + 64.
 */
const ROWS: readonly Row[] = [
  { name: 'NTFS', matches: looksLikeNtfs, open: openNtfsWithWof },
  { name: 'BitLocker', matches: (h) => text(h, 3, '-FVE-FS-') },
  { name: 'ReFS', matches: (h) => text(h, 3, 'ReFS\0\0\0\0') },
  { name: 'exFAT', matches: (h) => text(h, 3, 'EXFAT   ') },
  { name: 'FAT', matches: looksLikeFat, open: openFat },
  { name: 'ext4', matches: looksLikeExt4, open: openExt4 },
  { name: 'XFS', matches: (h) => text(h, 0, 'XFSB') },
  { name: 'btrfs', matches: (h) => text(h, 65536 + 64, '_BHRfS_M') },
];

export type Detected =
  | { readonly kind: 'readable'; readonly name: string; readonly open: (volume: Volume, options: OpenOptions) => Promise<VolumeFileSystem> }
  | { readonly kind: 'unreadable'; readonly name: string; readonly why: string };

/** The filesystem whose structures `head` (the volume's first DETECT_BYTES, fewer for a small volume) starts. */
export function detectFileSystem(head: Buffer): Detected {
  const row = ROWS.find((r) => r.matches(head));
  if (!row) return { kind: 'unreadable', name: 'unknown', why: 'no filesystem synthvhd knows starts the volume (unknown, damaged or encrypted)' };
  if (!row.open) return { kind: 'unreadable', name: row.name, why: `synthvhd cannot read the files of ${row.name} volumes` };
  return { kind: 'readable', name: row.name, open: row.open };
}

/** Reads the head of `volume` and detects its filesystem. */
export async function detectVolume(volume: Volume): Promise<Detected> {
  return detectFileSystem(await volume.read(0, Math.min(DETECT_BYTES, volume.size)));
}
