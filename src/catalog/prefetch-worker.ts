// One prefetch thread (scan-prefetch.ts): reads its clients' folders as the scan will, and
// each usable image's `.raw.mbr`, then exits. Results are dropped; errors are the scan's to report.
import { closeSync, constants, readSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { openReadOnlyFdSync } from '../io/read-only-open.js';
import { BLOCKING } from '../urbackup/storage-calls.js';
import { readClient } from '../urbackup/storage.js';
import type { PrefetchData } from './scan-prefetch.js';

/** A `.raw.mbr` of a partition image is 34 KiB or less (docs/urbackup-raw-format.md §3). */
const MBR_READ = 64 * 1024;

const { storage, clients, stop, showIncomplete } = workerData as PrefetchData;
const buf = Buffer.allocUnsafe(MBR_READ);
for (const client of clients) {
  if (Atomics.load(stop, 0) !== 0) break;
  const found = await readClient(storage, client, BLOCKING);
  for (const image of found.images) {
    if (Atomics.load(stop, 0) !== 0) break;
    if (!image.folder || !(showIncomplete || image.folder.complete)) continue;
    try {
      const fd = openReadOnlyFdSync(image.folder.mbrPath, constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        readSync(fd, buf, 0, MBR_READ, 0);
      } finally {
        closeSync(fd);
      }
    } catch {
      // The scan meets the same error and names it.
    }
  }
}
