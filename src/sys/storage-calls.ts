// The filesystem calls a scan of the storage makes, its opens always read-only-open.ts's, in two
// kinds. Pooled: libuv's thread pool, so a storage slow to answer holds up only the scan, not the
// requests beside it. Blocking: for a scan that nothing else waits on (serve's first, before it
// mounts; `list`), because a call then costs far less (docs/architecture.md §5, §6).
import { type Dirent, type Stats, accessSync, close, closeSync, fstat, fstatSync, lstatSync, read, readSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { access, lstat, readdir, realpath, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { openReadOnlyFd, openReadOnlyFdSync } from './read-only-open.js';

export interface StorageCalls {
  stat(path: string): Promise<Stats>;
  lstat(path: string): Promise<Stats>;
  readdir(path: string): Promise<string[]>;
  readdirTypes(path: string): Promise<Dirent[]>;
  realpath(path: string): Promise<string>;
  access(path: string, mode: number): Promise<void>;
  fstat(fd: number): Promise<Stats>;
  read(fd: number, into: Buffer, offset: number, length: number, position: number): Promise<number>;
  close(fd: number): Promise<void>;
  /** A read-only descriptor (read-only-open.ts), `extra` flags added: storage files are opened only so. */
  openReadOnlyFd(path: string, extra: number): Promise<number>;
}

// Plain descriptors and callbacks, not FileHandles: a FileHandle per file costs more time and
// garbage than the calls themselves (docs/architecture.md §6).
const fstatP = promisify(fstat);
const readP = promisify(read);
const closeP = promisify(close);

export const POOLED: StorageCalls = {
  stat: (p) => stat(p),
  lstat: (p) => lstat(p),
  readdir: (p) => readdir(p),
  readdirTypes: (p) => readdir(p, { withFileTypes: true }),
  realpath: (p) => realpath(p),
  access: (p, mode) => access(p, mode),
  fstat: (fd) => fstatP(fd),
  read: async (fd, into, offset, length, position) => (await readP(fd, into, offset, length, position)).bytesRead,
  close: (fd) => closeP(fd),
  openReadOnlyFd: (p, extra) => openReadOnlyFd(p, extra),
};

/** The result of a blocking call as a settled promise, so that one scan's code serves both kinds. */
export function settled<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (e) {
    return Promise.reject(e);
  }
}

export const BLOCKING: StorageCalls = {
  stat: (p) => settled(() => statSync(p)),
  lstat: (p) => settled(() => lstatSync(p)),
  readdir: (p) => settled(() => readdirSync(p)),
  readdirTypes: (p) => settled(() => readdirSync(p, { withFileTypes: true })),
  realpath: (p) => settled(() => realpathSync.native(p)),
  access: (p, mode) => settled(() => accessSync(p, mode)),
  fstat: (fd) => settled(() => fstatSync(fd)),
  read: (fd, into, offset, length, position) => settled(() => readSync(fd, into, offset, length, position)),
  close: (fd) => settled(() => closeSync(fd)),
  openReadOnlyFd: (p, extra) => settled(() => openReadOnlyFdSync(p, extra)),
};
