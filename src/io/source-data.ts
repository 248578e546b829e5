// Where a `.raw` holds data that a restore writes back (docs/urbackup-raw-format.md §4.2, §6.1): its
// `.raw.bitmap` where that is present and consistent with the file, else SEEK_DATA/SEEK_HOLE.
// Computed on first use and kept while the file's identity is unchanged (backups never change).
import { closeSync, constants } from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { Bytes } from '../base/units.js';
import { DATA_GRANULE, DataMap } from '../disk/present-blocks.js';
import { type FileIdentity, identityKey } from '../sys/file-identity.js';
import { openReadOnlyFdSync } from '../sys/read-only-open.js';
import { dataRanges } from '../sys/sparse.js';
import { narrowByRawBitmap } from '../urbackup/raw-bitmap.js';
import { readRawBitmap } from '../urbackup/raw-bitmap-file.js';

/** A data map and where it came from. */
export interface SourceData {
  readonly map: DataMap;
  /** `bitmap`: the `.raw.bitmap` narrowed the filesystem's data ranges; `seek`: those ranges alone. */
  readonly from: 'bitmap' | 'seek';
  /** Why the `.raw.bitmap` was not used, when it exists. */
  readonly bitmapProblem?: string;
}

/** The maps of 2 TiB of `.raw` files take 4 MiB; keep up to 256 MiB of them. */
const CACHE_BYTES = 256 * 1024 * 1024;
const cache = new LRUCache<string, SourceData>({ maxSize: CACHE_BYTES, sizeCalculation: (d) => Math.max(1, d.map.granules.bytes.length) });

const OPEN_FLAGS = constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * The data the filesystem reports, narrowed by the bitmap where it can be trusted
 * (urbackup/raw-bitmap.ts). Nothing is read from the `.raw` itself: this runs on the first stat,
 * also of a slow storage.
 */
function narrow(seek: DataMap, holeFree: boolean, bitmap: Uint8Array): DataMap | string {
  const map = new DataMap(seek.size);
  return narrowByRawBitmap(seek.granules, map.granules, DATA_GRANULE, holeFree, bitmap) ?? map;
}

/** The data map of `path`, of `size` bytes, computed now and not kept (sourceData keeps them). */
export function computeSourceData(path: string, size: Bytes): SourceData {
  const fd = openReadOnlyFdSync(path, OPEN_FLAGS);
  try {
    const seek = new DataMap(size);
    let holeFree = size > 0;
    for (const [a, b] of dataRanges(fd, 0, size)) {
      seek.addRange(a, b);
      if (a > 0 || b < size) holeFree = false;
    }
    const bitmap = readRawBitmap(path, size, OPEN_FLAGS);
    if (bitmap === undefined) return { map: seek, from: 'seek' };
    if (typeof bitmap === 'string') return { map: seek, from: 'seek', bitmapProblem: bitmap };
    const narrowed = narrow(seek, holeFree, bitmap);
    return typeof narrowed === 'string' ? { map: seek, from: 'seek', bitmapProblem: narrowed } : { map: narrowed, from: 'bitmap' };
  } finally {
    closeSync(fd);
  }
}

const keyOf = (path: string, id: FileIdentity): string => `${identityKey(id)}:${path}`;

/** Whether the map of this file, as it is now, is known without computing it. */
export function sourceDataKnown(path: string, id: FileIdentity): boolean {
  return cache.has(keyOf(path, id));
}

/** Keeps a map computed elsewhere (source-data-warmer.ts) as if sourceData had computed it. */
export function adoptSourceData(path: string, id: FileIdentity, d: SourceData): void {
  const key = keyOf(path, id);
  if (!cache.has(key)) cache.set(key, d);
}

/** The data map of a backing file, cached by its identity. Throws an Error naming the file. */
export function sourceData(path: string, id: FileIdentity): SourceData {
  const key = keyOf(path, id);
  let d = cache.get(key);
  if (!d) {
    try {
      d = computeSourceData(path, id.size);
    } catch (e) {
      throw new Error(`${path}: cannot map its data (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    cache.set(key, d);
  }
  return d;
}
