// Opening an NTFS volume's MFT: the boot sector, then $MFT's own record at the MFT LCN, whose
// data runs (and, for a very fragmented MFT, those in its extension records) map every other
// record (docs/filesystems-ntfs.md §1, §3).
import type { Bytes } from '../../base/units.js';
import type { Volume } from '../volume-fs.js';
import { CorruptVolumeError } from '../volume-fs.js';
import type { Stream } from './attribute-runs.js';
import { parseBootSector, type BootSector } from './boot-sector.js';
import { applyFixups } from './fixups.js';
import { check, NtfsFormatError } from './format-error.js';
import { attributesOf, loadInode, streamOf, type Geometry } from './inode.js';
import { Mft } from './mft.js';
import { AttrType, parseMftRecord } from './mft-record.js';

const BOOT_SECTOR_BYTES = 512;
const MFT_RECORD = 0;

/**
 * $MFT's runs as far as its base record maps them: enough to reach its extension records. Not
 * joinExtents: this first extent alone need not cover the data size.
 */
function baseStream(record: Buffer, boot: BootSector): Stream {
  const mft = parseMftRecord(record, boot.totalClusters);
  const first = attributesOf(mft, AttrType.data, '').find((a) => a.nonResident?.startVcn === 0)?.nonResident;
  check(first !== undefined, '$MFT has no non-resident $DATA from VCN 0');
  const mapped: Bytes = (first.lastVcn + 1) * boot.clusterSize;
  check(Number.isSafeInteger(mapped), `$MFT's first extent of ${first.lastVcn + 1} clusters is too long`);
  const { allocatedSize, compressionUnit, runs } = first;
  return { dataSize: Math.min(first.dataSize, mapped), initializedSize: Math.min(first.initializedSize, first.dataSize, mapped), allocatedSize, compressionUnit, runs };
}

async function open(volume: Volume): Promise<{ g: Geometry; boot: BootSector }> {
  check(volume.size >= BOOT_SECTOR_BYTES, `a ${volume.size}-byte volume has no boot sector`);
  const boot = parseBootSector(await volume.read(0, BOOT_SECTOR_BYTES), volume.size);
  const at = boot.mftLcn * boot.clusterSize;
  check(at + boot.mftRecordSize <= volume.size, 'the MFT lies past the end of the volume');
  const record = await volume.read(at, boot.mftRecordSize);
  applyFixups(record, 'FILE');
  const partial = baseStream(record, boot);
  const g0: Geometry = { volume, mft: new Mft(volume, boot, partial), clusterSize: boot.clusterSize };
  const self = await loadInode(g0, MFT_RECORD);
  const whole = streamOf(attributesOf(self, AttrType.data, ''), boot.clusterSize);
  check(whole !== undefined, '$MFT has no non-resident $DATA');
  return { g: { volume, mft: new Mft(volume, boot, whole), clusterSize: boot.clusterSize }, boot };
}

/** The volume's geometry and MFT; a volume that is not NTFS, or whose MFT is unreadable, is rejected with a clear error. */
export async function openMft(volume: Volume): Promise<{ g: Geometry; boot: BootSector }> {
  try {
    return await open(volume);
  } catch (e) {
    if (e instanceof NtfsFormatError) throw new CorruptVolumeError(volume, `not a readable NTFS volume: ${e.message}`);
    throw e;
  }
}
