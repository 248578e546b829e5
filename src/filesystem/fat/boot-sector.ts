// The FAT boot sector and BIOS Parameter Block, and the FAT type by cluster count
// (docs/filesystems-ext4-fat.md §8, after Microsoft's FAT32 File System Specification 1.03, §3-§3.5).
import type { Bytes } from '../../base/units.js';
import { CorruptVolumeError, type Volume } from '../volume-fs.js';

export type FatType = 'fat12' | 'fat16' | 'fat32';

/** The spec's §3.5 limits: fewer than 4085 clusters is FAT12, fewer than 65525 FAT16, else FAT32. */
const FAT12_MAX_CLUSTERS = 4084;
const FAT16_MAX_CLUSTERS = 65524;
/** FAT32 cluster numbers have 28 bits; the largest valid count leaves room for the EOC marks. */
const FAT32_MAX_CLUSTERS = 0x0ffffff5;
/** One directory entry. */
export const DIR_ENTRY_BYTES = 32;
/** The boot sector's signature at bytes 510-511. */
const BOOT_SIGNATURE = 0xaa55;
/** BPB_BytsPerSec values the spec allows. */
const SECTOR_SIZES = new Set([512, 1024, 2048, 4096]);
/** Bits per FAT entry. */
const ENTRY_BITS: Readonly<Record<FatType, number>> = { fat12: 12, fat16: 16, fat32: 32 };

export interface Bpb {
  readonly type: FatType;
  readonly clusterBytes: Bytes;
  /** Clusters 2 .. clusterCount + 1 exist. */
  readonly clusterCount: number;
  /** The first FAT's first byte. */
  readonly fatOffset: Bytes;
  /** FAT12/16: the fixed root folder; FAT32: its first cluster. */
  readonly rootDirOffset: Bytes;
  readonly rootDirBytes: Bytes;
  readonly rootCluster: number;
  /** Byte of cluster 2. */
  readonly dataOffset: Bytes;
}

/** BPB fields at their spec offsets (§3.1, §3.3). */
function fields(b: Buffer) {
  return {
    bytesPerSector: b.readUInt16LE(11),
    sectorsPerCluster: b[13]!,
    reservedSectors: b.readUInt16LE(14),
    numFats: b[16]!,
    rootEntries: b.readUInt16LE(17),
    totalSectors: b.readUInt16LE(19) || b.readUInt32LE(32),
    fatSectors: b.readUInt16LE(22) || b.readUInt32LE(36),
    rootCluster: b.readUInt32LE(44),
  };
}

/** Cheap check of a volume's first sector: a boot sector with a sane BPB (NTFS and exFAT have no FAT size there). */
export function looksLikeFat(firstSector: Buffer): boolean {
  if (firstSector.length < 512 || firstSector.readUInt16LE(510) !== BOOT_SIGNATURE || (firstSector[0] !== 0xeb && firstSector[0] !== 0xe9)) return false;
  const f = fields(firstSector);
  const spc = f.sectorsPerCluster;
  return SECTOR_SIZES.has(f.bytesPerSector) && spc > 0 && (spc & (spc - 1)) === 0 && f.reservedSectors > 0 && f.numFats > 0 && f.totalSectors > 0 && f.fatSectors > 0;
}

/** The BPB of a volume's first sector, checked against the volume; throws CorruptVolumeError. */
export function parseBootSector(b: Buffer, volume: Volume): Bpb {
  const bad = (what: string): never => {
    throw new CorruptVolumeError(volume, `FAT boot sector: ${what}`);
  };
  if (!looksLikeFat(b)) bad('no FAT boot sector (signature 0xAA55, jump, BPB)');
  const f = fields(b);
  const rootDirOffset = f.reservedSectors * f.bytesPerSector + f.numFats * f.fatSectors * f.bytesPerSector;
  const rootDirBytes = f.rootEntries * DIR_ENTRY_BYTES;
  const dataOffset = rootDirOffset + Math.ceil(rootDirBytes / f.bytesPerSector) * f.bytesPerSector;
  const totalBytes = f.totalSectors * f.bytesPerSector;
  if (dataOffset >= totalBytes) bad(`${f.totalSectors} sectors leave no room for data after the FATs and root folder`);
  const clusterBytes = f.sectorsPerCluster * f.bytesPerSector;
  const clusterCount = Math.floor((totalBytes - dataOffset) / clusterBytes);
  const type: FatType = clusterCount <= FAT12_MAX_CLUSTERS ? 'fat12' : clusterCount <= FAT16_MAX_CLUSTERS ? 'fat16' : 'fat32';
  if (clusterCount > FAT32_MAX_CLUSTERS) bad(`${clusterCount} clusters`);
  const fatBytes = f.fatSectors * f.bytesPerSector;
  if (fatBytes * 8 < (clusterCount + 2) * ENTRY_BITS[type]) bad(`a FAT of ${fatBytes} bytes cannot hold ${clusterCount} clusters`);
  const fatOffset = f.reservedSectors * f.bytesPerSector;
  if (fatOffset + Math.ceil(((clusterCount + 2) * ENTRY_BITS[type]) / 8) > volume.size) bad(`the FAT runs past the ${volume.size}-byte volume`);
  if ((type === 'fat32') !== (f.rootEntries === 0)) bad(`${type} with ${f.rootEntries} root folder entries`);
  if (dataOffset > volume.size) bad(`the data area starts at byte ${dataOffset}, past the ${volume.size}-byte volume`);
  return {
    type,
    clusterBytes,
    clusterCount,
    fatOffset,
    rootDirOffset,
    rootDirBytes,
    rootCluster: type === 'fat32' ? f.rootCluster : 0,
    dataOffset,
  };
}
