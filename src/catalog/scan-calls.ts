// The calls of a catalog's scan: the storage's (urbackup/storage-calls.ts) and opening a storage
// file, which always goes through io/read-only-open.ts; pooled or blocking as they are.
import { openReadOnlyFd, openReadOnlyFdSync } from '../io/read-only-open.js';
import { BLOCKING, POOLED, type StorageCalls, settled } from '../urbackup/storage-calls.js';

export interface ScanCalls extends StorageCalls {
  /** A read-only descriptor (io/read-only-open.ts), `extra` flags added. */
  openReadOnly(path: string, extra: number): Promise<number>;
}

export const POOLED_SCAN: ScanCalls = { ...POOLED, openReadOnly: (p, extra) => openReadOnlyFd(p, extra) };
export const BLOCKING_SCAN: ScanCalls = { ...BLOCKING, openReadOnly: (p, extra) => settled(() => openReadOnlyFdSync(p, extra)) };
