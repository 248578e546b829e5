// One prefetch thread (scan-prefetch.ts): reads its clients' folders as the scan will, and has
// the kernel read each usable image's `.raw.mbr`, then exits. Results are dropped; errors are the
// scan's to report.
import { closeSync, constants } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { POSIX_FADV_WILLNEED, posixFadvise } from '../sys/libc.js';
import { openReadOnlyFdSync } from '../sys/read-only-open.js';
import { BLOCKING } from '../sys/storage-calls.js';
import { readClient } from '../urbackup/storage.js';
import type { PrefetchData } from './scan-prefetch.js';

/** A `.raw.mbr` of a partition image is 34 KiB or less (docs/urbackup-raw-format.md §3). */
const MBR_READ = 64 * 1024;

const { storage, clients, stop, showIncomplete } = workerData as PrefetchData;
for (const client of clients) {
  if (Atomics.load(stop, 0) !== 0) break;
  const found = await readClient(storage, client, BLOCKING);
  for (const image of found.images) {
    if (Atomics.load(stop, 0) !== 0) break;
    if (!image.folder || !(showIncomplete || image.folder.complete)) continue;
    try {
      const fd = openReadOnlyFdSync(image.folder.mbrPath, constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        // Asked for, not waited for: the thread goes on to the next folders while the file's
        // blocks arrive (docs/architecture.md §5, Read ahead).
        posixFadvise(fd, 0, MBR_READ, POSIX_FADV_WILLNEED);
      } finally {
        closeSync(fd);
      }
    } catch {
      // The scan meets the same error and names it.
    }
  }
}
