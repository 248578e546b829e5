// Which regions of a disk one writer has changed, in shared memory: a request worker answers a
// writer's READ from the pristine layout only where no region it covers was written, and hands
// everything else to the main thread, which holds the overlay (docs/overlays.md §5).
import type { Bytes } from '../base/units.js';

/** One bit per this many bytes: coarse, so that a 64 TiB disk takes 8 MiB at most. */
export const WRITTEN_REGION: Bytes = 1024 * 1024;
const BITS = 32;

/** A map of the regions of `size` bytes, none written, over a SharedArrayBuffer. */
export function newWrittenRegions(size: Bytes): Int32Array {
  const regions = Math.ceil(size / WRITTEN_REGION);
  return new Int32Array(new SharedArrayBuffer(Math.max(1, Math.ceil(regions / BITS)) * Int32Array.BYTES_PER_ELEMENT));
}

/** Marks every region that [from, to) touches (those past the map are not kept: they are never pristine). */
export function markWritten(map: Int32Array, from: Bytes, to: Bytes): void {
  const last = Math.min(Math.ceil(to / WRITTEN_REGION), map.length * BITS);
  for (let r = Math.floor(from / WRITTEN_REGION); r < last; r++) Atomics.or(map, r >>> 5, 1 << (r & 31));
}

/** Whether some region that [from, to) touches was written. */
export function anyWritten(map: Int32Array, from: Bytes, to: Bytes): boolean {
  const last = Math.ceil(to / WRITTEN_REGION);
  for (let r = Math.floor(from / WRITTEN_REGION); r < last; r++) if (Atomics.load(map, r >>> 5) & (1 << (r & 31))) return true;
  return false;
}
