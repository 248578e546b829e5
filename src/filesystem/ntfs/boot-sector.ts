// The NTFS boot sector ($Boot, sector 0 of the volume): the geometry every other structure is
// read with (docs/filesystems-ntfs.md §1).
import type { Bytes } from '../../base/units.js';
import { check, safe64 } from './format-error.js';

/** §1: the OEM id at byte 3. */
const OEM_ID = 'NTFS    ';
const OEM_ID_OFFSET = 3;
const BYTES_PER_SECTOR_OFFSET = 0x0b;
const SECTORS_PER_CLUSTER_OFFSET = 0x0d;
const TOTAL_SECTORS_OFFSET = 0x28;
const MFT_LCN_OFFSET = 0x30;
const CLUSTERS_PER_MFT_RECORD_OFFSET = 0x40;
const CLUSTERS_PER_INDEX_BLOCK_OFFSET = 0x44;
const SIGNATURE_OFFSET = 0x1fe;
/** Windows formats clusters of 512 bytes to 2 MiB (§1). */
const MAX_CLUSTER: Bytes = 2 * 1024 * 1024;
/** MFT records and index blocks are made of 512-byte fixup blocks (§2); none is larger than 64 KiB here. */
const MIN_RECORD: Bytes = 512;
const MAX_RECORD: Bytes = 65536;

export interface BootSector {
  readonly bytesPerSector: Bytes;
  readonly clusterSize: Bytes;
  readonly totalClusters: number;
  readonly mftLcn: number;
  readonly mftRecordSize: Bytes;
  readonly indexBlockSize: Bytes;
}

/** A cheap test of a volume's first sector: the NTFS OEM id and the boot signature. */
export function looksLikeNtfs(firstSector: Buffer): boolean {
  return firstSector.length >= 512 && firstSector.toString('latin1', OEM_ID_OFFSET, OEM_ID_OFFSET + 8) === OEM_ID && firstSector.readUInt16LE(SIGNATURE_OFFSET) === 0xaa55;
}

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/** §1: a positive count is clusters; a negative one, -n, means 2^n bytes. */
function clustersOrLog(raw: number, clusterSize: Bytes): Bytes {
  const v = raw > 127 ? raw - 256 : raw;
  return v > 0 ? v * clusterSize : v < 0 && v >= -31 ? 2 ** -v : 0;
}


export function parseBootSector(b: Buffer, volumeSize: Bytes): BootSector {
  check(looksLikeNtfs(b), 'no NTFS boot sector (OEM id "NTFS    " and 0xAA55) at byte 0');
  const bytesPerSector = b.readUInt16LE(BYTES_PER_SECTOR_OFFSET);
  check(isPowerOfTwo(bytesPerSector) && bytesPerSector >= 256 && bytesPerSector <= 4096, `bytes per sector ${bytesPerSector} is not 256-4096`);
  const spc = b[SECTORS_PER_CLUSTER_OFFSET]!;
  // §1: above 0x80 the field is 256 - log2(sectors per cluster).
  const sectorsPerCluster = spc > 0x80 ? (256 - spc <= 20 ? 2 ** (256 - spc) : 0) : spc;
  check(isPowerOfTwo(sectorsPerCluster), `sectors per cluster byte 0x${spc.toString(16)} is not a power of two`);
  const clusterSize = sectorsPerCluster * bytesPerSector;
  check(clusterSize <= MAX_CLUSTER, `cluster size ${clusterSize} is over 2 MiB`);
  const totalSectors = safe64(b, TOTAL_SECTORS_OFFSET, 'total sectors');
  const totalClusters = Math.min(Math.floor((totalSectors * bytesPerSector) / clusterSize), Math.floor(volumeSize / clusterSize));
  const mftLcn = safe64(b, MFT_LCN_OFFSET, 'MFT LCN');
  check(mftLcn < totalClusters, `MFT LCN ${mftLcn} lies outside the volume's ${totalClusters} clusters`);
  const mftRecordSize = clustersOrLog(b[CLUSTERS_PER_MFT_RECORD_OFFSET]!, clusterSize);
  const indexBlockSize = clustersOrLog(b[CLUSTERS_PER_INDEX_BLOCK_OFFSET]!, clusterSize);
  for (const [what, size] of [['MFT record', mftRecordSize], ['index block', indexBlockSize]] as const) {
    check(isPowerOfTwo(size) && size >= MIN_RECORD && size <= MAX_RECORD, `${what} size ${size} is not a power of two of 512 to 65536 bytes`);
  }
  return { bytesPerSector, clusterSize, totalClusters, mftLcn, mftRecordSize, indexBlockSize };
}
