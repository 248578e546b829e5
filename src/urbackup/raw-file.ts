// Where the volume lies inside a `.raw` file (docs/urbackup-raw-format.md §2; the bare § numbers below are its sections).
import type { Bytes } from '../base/units.js';
import { GPT_SIGNATURE } from '../partition-table/gpt.js';

/** `mbr_size = (1024*1024)/2`: the volume starts at byte 524288 of the `.raw` (§2.1). */
export const RAW_VOLUME_OFFSET: Bytes = 524288;
/** [2.5.x] volumes over 2 TiB get a synthetic GPT inside the `.raw` (§2.3). */
const TWO_TIB: Bytes = 2 * 1024 ** 4;
/** The synthetic GPT's single entry sits at byte 1024 and is named "VOLUME BACKUP" (§2.3). */
const SYNTH_ENTRY_OFFSET = 1024;
const SYNTH_ENTRY_NAME = 'VOLUME BACKUP';
/** The synthetic entry's first LBA is 1024 = 524288/512 (§2.3). */
const SYNTH_FIRST_LBA = 1024n;
/** Bytes of the `.raw` head needed to recognise the synthetic GPT. */
export const RAW_HEAD_BYTES = SYNTH_ENTRY_OFFSET + 128;

/** True when the file is large enough that a [2.5.x] synthetic GPT may be present. */
export function mayHaveSyntheticGpt(rawSize: Bytes): boolean {
  return rawSize > TWO_TIB;
}

/**
 * The volume's length in a partition image's `.raw`: file size − 524288, or, for a [2.5.x]
 * image over 2 TiB, the end recorded in the synthetic GPT entry (its last LBA is one past the
 * real end, §2.3). `head` is the first RAW_HEAD_BYTES of the file when
 * mayHaveSyntheticGpt(rawSize), else undefined.
 */
export function volumeLength(path: string, rawSize: Bytes, head?: Buffer): Bytes {
  if (rawSize < RAW_VOLUME_OFFSET) {
    throw new Error(`${path}: .raw is ${rawSize} bytes, shorter than the 512 KiB header every image has (truncated?)`);
  }
  if (head && head.length >= RAW_HEAD_BYTES && head.toString('latin1', 512, 520) === GPT_SIGNATURE) {
    const e = head.subarray(SYNTH_ENTRY_OFFSET, SYNTH_ENTRY_OFFSET + 128);
    const name = e.subarray(56, 56 + 2 * SYNTH_ENTRY_NAME.length).toString('utf16le');
    if (name === SYNTH_ENTRY_NAME && e.readBigUInt64LE(32) === SYNTH_FIRST_LBA) {
      const end = Number(e.readBigUInt64LE(40)) * 512;
      if (end > RAW_VOLUME_OFFSET && end <= rawSize) return end - RAW_VOLUME_OFFSET;
      throw new Error(`${path}: synthetic GPT gives a volume end of ${end} bytes, outside the ${rawSize}-byte file`);
    }
  }
  return rawSize - RAW_VOLUME_OFFSET;
}

/** A whole-disk (v100) image holds the disk from byte 0, followed by 512 KiB of zeros (§2.4). */
export function wholeDiskLength(path: string, rawSize: Bytes): Bytes {
  if (rawSize <= RAW_VOLUME_OFFSET) {
    throw new Error(`${path}: whole-disk .raw is ${rawSize} bytes, too short to hold a disk`);
  }
  return rawSize - RAW_VOLUME_OFFSET;
}
