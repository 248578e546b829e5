// Fixed VHD: the disk bytes followed by one 512-byte big-endian footer (VHD spec, "Hard Disk Footer Format"; docs/vhd-vhdx.md §1, whose sections the bare § numbers below cite).
import { type Layout, concat } from '../disk/layout.js';
import type { Bytes } from '../base/units.js';
import { chsGeometry } from './chs.js';
import { ContainerError, type DiskImage } from './disk-image.js';

export { chsGeometry } from './chs.js';

/** VHD sectors are always 512 bytes (§1.1). */
export const VHD_SECTOR: Bytes = 512;
/** Largest Current Size: 0xFF000000 sectors = 2040 GiB (§1.5). */
export const VHD_MAX_DISK_SIZE: Bytes = 0xff000000 * VHD_SECTOR;
/** Footer length (§1.2). */
export const VHD_FOOTER_SIZE: Bytes = 512;

/** Cookie (§1.2). */
const COOKIE = 'conectix';
/** Features: bit 1 is reserved and must be 1 (§1.2). */
const FEATURES = 0x00000002;
/** File format version 1.0; libvhdi refuses anything else (§1.2). */
const FORMAT_VERSION = 0x00010000;
/** Creator application 'win ': QEMU then sizes the disk by Current Size, as Windows does (§1.4). */
const CREATOR_APPLICATION = 'win ';
/** Creator version major<<16|minor; informational, nobody checks it (§1.2). */
const CREATOR_VERSION = 0x000a0000;
/** Creator host OS 'Wi2k' (§1.2). */
const CREATOR_HOST_OS = 'Wi2k';
/** Disk type 2 = fixed, 3 = dynamic (§1.2). */
const DISK_TYPE_FIXED = 2;
const DISK_TYPE_DYNAMIC = 3;
/** VHD time stamps count seconds from 2000-01-01 00:00:00 UTC (§1.2). */
const VHD_EPOCH_MS = Date.UTC(2000, 0, 1);

/** Footer field offsets (§1.2). */
const OFF = {
  cookie: 0, features: 8, version: 12, dataOffset: 16, timeStamp: 24, creatorApp: 28, creatorVersion: 32,
  creatorHostOs: 36, originalSize: 40, currentSize: 48, cylinders: 56, heads: 58, sectorsPerTrack: 59,
  diskType: 60, checksum: 64, uniqueId: 68, savedState: 84,
} as const;

/**
 * One's complement of the byte sum of a footer or dynamic header, its 4-byte checksum field at
 * `checksumAt` counted as zero (§1.2, §1.3).
 */
export function onesComplementChecksum(b: Buffer, checksumAt: number): number {
  let sum = 0;
  for (let i = 0; i < b.length; i++) {
    if (i < checksumAt || i >= checksumAt + 4) sum += b[i]!;
  }
  return ~sum >>> 0;
}

/** The footer's checksum (§1.2). */
export function vhdChecksum(footer: Buffer): number {
  return onesComplementChecksum(footer.subarray(0, VHD_FOOTER_SIZE), OFF.checksum);
}

/** The 512-byte footer of a fixed VHD holding `size` bytes. */
export function vhdFooter(size: Bytes, uniqueId: Buffer, timestamp: Date): Buffer {
  return footer(size, uniqueId, timestamp, DISK_TYPE_FIXED, undefined);
}

/** The 512-byte footer of a dynamic VHD whose dynamic header is at `headerOffset` (§1.2). */
export function dynamicVhdFooter(size: Bytes, uniqueId: Buffer, timestamp: Date, headerOffset: Bytes): Buffer {
  return footer(size, uniqueId, timestamp, DISK_TYPE_DYNAMIC, headerOffset);
}

function footer(size: Bytes, uniqueId: Buffer, timestamp: Date, diskType: number, dataOffset: Bytes | undefined): Buffer {
  if (uniqueId.length !== 16) throw new ContainerError(`VHD unique id must be 16 bytes, got ${uniqueId.length}`);
  const f = Buffer.alloc(VHD_FOOTER_SIZE);
  f.write(COOKIE, OFF.cookie, 'latin1');
  f.writeUInt32BE(FEATURES, OFF.features);
  f.writeUInt32BE(FORMAT_VERSION, OFF.version);
  // Fixed: all 64 bits set, libvhdi rejects the spec text's 32-bit 0xFFFFFFFF (§1.2).
  if (dataOffset === undefined) f.fill(0xff, OFF.dataOffset, OFF.dataOffset + 8);
  else f.writeBigUInt64BE(BigInt(dataOffset), OFF.dataOffset);
  // Informational only, so a time outside the u32 range is clamped rather than refused.
  const seconds = Math.floor((timestamp.getTime() - VHD_EPOCH_MS) / 1000);
  f.writeUInt32BE(Math.min(Math.max(seconds, 0), 0xffffffff), OFF.timeStamp);
  f.write(CREATOR_APPLICATION, OFF.creatorApp, 'latin1');
  f.writeUInt32BE(CREATOR_VERSION, OFF.creatorVersion);
  f.write(CREATOR_HOST_OS, OFF.creatorHostOs, 'latin1');
  f.writeBigUInt64BE(BigInt(size), OFF.originalSize);
  f.writeBigUInt64BE(BigInt(size), OFF.currentSize);
  const chs = chsGeometry(size);
  f.writeUInt16BE(chs.cylinders, OFF.cylinders);
  f.writeUInt8(chs.heads, OFF.heads);
  f.writeUInt8(chs.sectorsPerTrack, OFF.sectorsPerTrack);
  f.writeUInt32BE(diskType, OFF.diskType);
  uniqueId.copy(f, OFF.uniqueId);
  f.writeUInt32BE(vhdChecksum(f), OFF.checksum);
  return f;
}

/** Why a disk cannot be a fixed VHD, or null when it can. */
export function canBeVhd(disk: { size: Bytes; sectorSize: number }): string | null {
  if (disk.sectorSize !== VHD_SECTOR) return `VHD has only 512-byte sectors, the disk has ${disk.sectorSize}-byte sectors`;
  if (disk.size <= 0) return 'the disk is empty';
  if (disk.size % VHD_SECTOR !== 0) return `disk size ${disk.size} is not a multiple of 512 bytes`;
  if (disk.size > VHD_MAX_DISK_SIZE) return `disk size ${disk.size} is over the VHD maximum of 2040 GiB (use VHDX)`;
  return null;
}

/** A fixed VHD around the disk: its bytes at offset 0, then the footer. */
export function vhdLayout(disk: DiskImage): Layout {
  const size = disk.layout.size;
  const reason = canBeVhd({ size, sectorSize: disk.sectorSize });
  if (reason) throw new ContainerError(`cannot make a VHD: ${reason}`);
  const footer = vhdFooter(size, disk.id, disk.timestamp);
  return concat([[...disk.layout.segments], [{ kind: 'bytes', start: size, length: footer.length, data: footer }]]);
}
