// The disk a restore of some imaged partitions onto a blank disk produces (docs/urbackup-raw-format.md
// §6), computed from the built disk's own bytes, not from the `.raw` files, so it is an
// independent reference for the project's assembler.
import { open } from 'node:fs/promises';
import type { Bytes } from '../../src/base/units.js';
import { FixtureError, copySparse, type BuiltDisk } from './disk-builder.js';
import type { PlacedBytes } from './mbr-writer.js';
import { captureMbrData, partitionOf, sentBytes } from './urbackup-storage.js';

export interface ExpectedDisk {
  readonly path: string;
  readonly sizeBytes: Bytes;
}

/** docs/urbackup-raw-format.md §6.3, MBR: the end of the furthest primary entry (512-byte sectors) and of every restored partition. */
function mbrDiskSize(mbr: Buffer, restoredEnds: readonly Bytes[]): Bytes {
  let end = Math.max(0, ...restoredEnds);
  for (let i = 0; i < 4; i++) {
    const e = 446 + 16 * i;
    if (mbr[e + 4] === 0) continue;
    end = Math.max(end, (mbr.readUInt32LE(e + 8) + mbr.readUInt32LE(e + 12)) * 512);
  }
  return end;
}

/**
 * Writes the restored disk for images of `partitions` (BuiltPartition.index, main image first) to
 * `out`: a zero-filled sparse file with the table areas the main image's `.mbr` records, then each
 * partition's sent volume bytes at the partition's start.
 */
export async function writeExpectedDisk(disk: BuiltDisk, partitions: readonly number[], out: string): Promise<ExpectedDisk> {
  const [main] = partitions;
  if (main === undefined) throw new FixtureError(`${out}: an expected disk needs at least one imaged partition`);
  const m = await captureMbrData(disk, main);
  const parts = partitions.map((i) => partitionOf(disk, i));
  const lss = disk.sectorSize;
  const sizeBytes = m.gpt
    ? Math.max(m.gpt.backupHeader.pos, Number(m.gpt.header.data.readBigUInt64LE(32)) * lss) + lss
    : mbrDiskSize(m.mbr, parts.map((p) => p.startByte + p.sizeBytes));
  const areas: PlacedBytes[] = [
    { pos: 0, data: m.mbr },
    ...(m.gpt ? [m.gpt.header, m.gpt.table, m.gpt.backupHeader, m.gpt.backupTable] : []),
    ...(m.extra ? [m.extra] : []),
  ];
  const src = await open(disk.path, 'r');
  const dst = await open(out, 'w');
  try {
    await dst.truncate(sizeBytes);
    for (const a of areas) await dst.write(a.data, 0, a.data.length, a.pos);
    for (const p of parts) await copySparse(src, p.startByte, sentBytes(p), dst, p.startByte);
  } finally {
    await dst.close();
    await src.close();
  }
  return { path: out, sizeBytes };
}

/** docs/urbackup-raw-format.md §2.4, v100: the restored disk is the whole original disk. */
export async function writeExpectedWholeDisk(disk: BuiltDisk, out: string): Promise<ExpectedDisk> {
  const src = await open(disk.path, 'r');
  const dst = await open(out, 'w');
  try {
    await dst.truncate(disk.sizeBytes);
    await copySparse(src, 0, disk.sizeBytes, dst, 0);
  } finally {
    await dst.close();
    await src.close();
  }
  return { path: out, sizeBytes: disk.sizeBytes };
}
