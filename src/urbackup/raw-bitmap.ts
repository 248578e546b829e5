// The `.raw.bitmap` sidecar: which 4 KiB blocks of the `.raw` UrBackup's restore sends back
// (docs/urbackup-raw-format.md §4.2, §6.1).
import type { Bitset } from '../base/bitset.js';
import type { Bytes } from '../base/units.js';

/** One bit per 4096-byte block of the `.raw`, the synthetic header included (docs/urbackup-raw-format.md §4.2). */
export const RAW_BITMAP_BLOCK: Bytes = 4096;

/** The sidecar's name next to its `.raw` (docs/urbackup-raw-format.md §1.2). */
export function rawBitmapPath(raw: string): string {
  return `${raw}.bitmap`;
}

/** Bytes a bitmap needs for a `.raw` of `rawSize` bytes: ceil(ceil(size/4096)/8) (docs/urbackup-raw-format.md §4.2). */
export function rawBitmapLength(rawSize: Bytes): Bytes {
  return Math.ceil(Math.ceil(rawSize / RAW_BITMAP_BLOCK) / 8);
}

/**
 * Why a bitmap cannot describe a `.raw` of `rawSize` bytes, or null when its length fits. It
 * may be longer than needed: inherited from a larger parent, it only ever grows (docs/urbackup-raw-format.md §4.2).
 */
export function rawBitmapMismatch(bitmap: Uint8Array, rawSize: Bytes): string | null {
  const needed = rawBitmapLength(rawSize);
  return bitmap.length < needed ? `${bitmap.length} bytes, short of the ${needed} a ${rawSize}-byte .raw needs` : null;
}

/** Whether any block in [from, to) (4 KiB block numbers) has its bit set; MSB-first (docs/urbackup-raw-format.md §4.2). */
export function rawBitmapAny(bitmap: Uint8Array, from: number, to: number): boolean {
  for (let b = from; b < to; b++) {
    if ((b & 7) === 0 && b + 8 <= to) {
      if (bitmap[b >>> 3]) return true;
      b += 7;
    } else if ((bitmap[b >>> 3]! >> (7 - (b & 7))) & 1) {
      return true;
    }
  }
  return false;
}

/**
 * Sets in `into` the granules (of `granuleBytes`, a multiple of the block) of `seek` that have a
 * bit set, or says why the bitmap is not to be trusted. UrBackup sets a block's bit on every write
 * and clears it only after punching or zero-filling the block (docs/urbackup-raw-format.md §4.2),
 * so data with its bit clear means a stale bitmap. A filesystem that reports no hole at all
 * (`holeFree`: no hole support, or zeros written instead of punched) leaves the bitmap to decide.
 */
export function narrowByRawBitmap(seek: Bitset, into: Bitset, granuleBytes: Bytes, holeFree: boolean, bitmap: Uint8Array): string | undefined {
  const perGranule = granuleBytes / RAW_BITMAP_BLOCK;
  for (const [from, to] of seek.runs()) {
    for (let g = from; g < to; g++) {
      if (rawBitmapAny(bitmap, g * perGranule, (g + 1) * perGranule)) into.set(g);
      else if (!holeFree) return `the .raw holds data at ${g * granuleBytes} where its bits are clear (stale?)`;
    }
  }
  return undefined;
}
