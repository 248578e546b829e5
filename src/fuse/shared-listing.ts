// A folder's READDIRPLUS entries as encoded once (protocol.ts encodeDirentsPlus), in shared
// memory: the first request worker answers the READDIRPLUS of an open folder from it, so that a
// walk's listings do not wait for the main thread (docs/fuse-protocol.md §6).
import type { DirentsPlus } from './protocol.js';

export interface SharedListing {
  readonly bytes: Uint8Array;
  /** Each entry's end in `bytes`. */
  readonly ends: Uint32Array;
}

/** A copy of `plus` in shared memory. */
export function shareListing(plus: DirentsPlus): SharedListing {
  const bytes = new Uint8Array(new SharedArrayBuffer(plus.bytes.length));
  bytes.set(plus.bytes);
  const ends = new Uint32Array(new SharedArrayBuffer(plus.ends.length * Uint32Array.BYTES_PER_ELEMENT));
  ends.set(plus.ends);
  return { bytes, ends };
}
