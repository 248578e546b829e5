// The classic MBR partition table in sector 0 (docs/urbackup-raw-format.md §3.5, §6.2).
import type { Bytes } from '../base/units.js';

/** The four primary entries start at byte 446, 16 bytes each. */
const MBR_TABLE_OFFSET = 446;
const MBR_ENTRY_SIZE = 16;
/** Bytes 440–443: the disk signature (docs/urbackup-raw-format.md §3.5, §5.3). */
export const MBR_SIGNATURE_OFFSET = 440;
/** Partition types 0x05, 0x0F and 0x85 are extended-partition containers. */
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
/** Type 0xEE marks a GPT protective MBR. */
export const MBR_TYPE_GPT_PROTECTIVE = 0xee;

export interface MbrEntry {
  readonly slot: number; // 1..4
  readonly type: number;
  readonly bootable: boolean;
  readonly startLba: number;
  readonly sectors: number;
}

/** The primary entries whose type is not 0, in slot order (UrBackup's readPartitionsMBR). */
export function mbrEntries(sector0: Buffer): MbrEntry[] {
  const out: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const e = MBR_TABLE_OFFSET + i * MBR_ENTRY_SIZE;
    const type = sector0[e + 4]!;
    if (type === 0) continue;
    out.push({ slot: i + 1, type, bootable: sector0[e] === 0x80, startLba: sector0.readUInt32LE(e + 8), sectors: sector0.readUInt32LE(e + 12) });
  }
  return out;
}

export function isExtended(e: MbrEntry): boolean {
  return EXTENDED_TYPES.has(e.type);
}

export function hasBootSignature(sector0: Buffer): boolean {
  return sector0[510] === 0x55 && sector0[511] === 0xaa;
}

/** The end of the furthest primary partition, in bytes. */
export function mbrExtent(entries: readonly MbrEntry[]): Bytes {
  return entries.reduce((m, e) => Math.max(m, (e.startLba + e.sectors) * 512), 0);
}
