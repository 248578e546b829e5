// The `.raw.mbr` fields of a tiny partitioned disk made by sfdisk/sgdisk (no file system):
// real MBR and GPT structures with correct CRCs, cheap enough to mutate by the thousand.
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Bytes } from '../../src/base/units.js';
import { readAt } from './disk-builder.js';
import type { GptCopies, MbrData, PlacedBytes } from './mbr-writer.js';
import { run } from './run.js';

export const SMALL_DISK_BYTES: Bytes = 16 * 1024 * 1024;
/** The one partition: 8 MiB at 1 MiB. */
export const SMALL_PART_START: Bytes = 1024 * 1024;
export const SMALL_PART_BYTES: Bytes = 8 * 1024 * 1024;

async function placed(path: string, pos: Bytes, length: Bytes): Promise<PlacedBytes> {
  const fh = await open(path, 'r');
  try {
    return { pos, data: await readAt(fh, pos, length) };
  } finally {
    await fh.close();
  }
}

/** MbrData for partition 1 of a 16 MiB MBR ('mbr') or GPT ('gpt', 512-byte sectors) disk. */
export async function smallTable(kind: 'mbr' | 'gpt', workDir: string): Promise<MbrData> {
  const path = join(workDir, `small-${kind}.img`);
  await run('truncate', ['-s', String(SMALL_DISK_BYTES), path]);
  const startLba = SMALL_PART_START / 512;
  const sectors = SMALL_PART_BYTES / 512;
  if (kind === 'mbr') {
    await run('sh', ['-c', `echo 'label: dos\nlabel-id: 0x1234abcd\nstart=${startLba}, size=${sectors}, type=7' | sfdisk -q '${path}'`]);
  } else {
    await run('sgdisk', ['-n', `1:${startLba}:${startLba + sectors - 1}`, '-t', '1:0700', '-c', '1:Data', path]);
  }
  const mbr = (await placed(path, 0, 512)).data;
  let gpt: GptCopies | undefined;
  if (kind === 'gpt') {
    const header = await placed(path, 512, 512);
    const tableOf = (h: Buffer): Promise<PlacedBytes> => placed(path, Number(h.readBigUInt64LE(72)) * 512, h.readUInt32LE(80) * h.readUInt32LE(84));
    const backupHeader = await placed(path, Number(header.data.readBigUInt64LE(32)) * 512, 512);
    gpt = { header, table: await tableOf(header.data), backupHeader, backupTable: await tableOf(backupHeader.data) };
  }
  await rm(path);
  return { deviceNumber: 0, partitionNumber: 1, serial: '1234-ABCD', volumeName: 'Data', fsName: 'NTFS', mbr, gpt, errmsg: '', extra: undefined };
}
