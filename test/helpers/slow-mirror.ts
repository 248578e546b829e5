// A FUSE mirror of one folder whose reads answer only after a delay: a storage "slow to answer".
// Run as a child process: node slow-mirror.js SOURCE_DIR MOUNTPOINT DELAY_MS [FAIL_FROM]
// (prints "ready"); with FAIL_FROM, every read at or past that byte fails with EIO instead: a
// storage whose disk went bad under a file.
// Built on synthvhd's own FUSE session, with a filesystem of its own.
import { closeSync, constants, openSync, read, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Attr } from '../../src/fuse/protocol.js';
import { FuseError, type FuseFs } from '../../src/fuse/fuse-fs.js';
import { serveMirror } from './mirror-mount.js';

const [source, mountpoint, delay, failFrom] = process.argv.slice(2) as [string, string, string, string | undefined];
const delayMs = Number(delay);
const failAt = failFrom === undefined ? Infinity : Number(failFrom);
const ROOT = 1;
/** Inode numbers: the root, then each file of the source folder by its index + 2. */
const names = readdirSync(source).sort();
const inoOf = (name: string): number => names.indexOf(name) + 2;

function attr(ino: number): Attr | undefined {
  const name = ino === ROOT ? '' : names[ino - 2];
  if (name === undefined) return undefined;
  const s = statSync(join(source, name));
  return { ino, size: s.size, blocks: s.blocks, mtime: s.mtime, mode: s.mode, nlink: s.nlink, uid: s.uid, gid: s.gid, blksize: s.blksize };
}

const fs: FuseFs = {
  lookup: (parent, name) => (parent === ROOT && names.includes(name) ? attr(inoOf(name)) : undefined),
  getattr: (ino) => attr(ino),
  list: (ino) =>
    ino === ROOT
      ? [{ ino: ROOT, name: '.', mode: constants.S_IFDIR }, { ino: ROOT, name: '..', mode: constants.S_IFDIR }, ...names.map((n) => ({ ino: inoOf(n), name: n, mode: constants.S_IFREG }))]
      : undefined,
  open: async (ino) => {
    const name = names[ino - 2];
    if (name === undefined) throw new FuseError(osConstants.errno.EISDIR);
    return { fh: openSync(join(source, name), 'r') };
  },
  read: (fh, offset, size, into) =>
    new Promise((done, fail) =>
      setTimeout(() => (offset + size > failAt ? fail(new FuseError(osConstants.errno.EIO)) : read(fh, into, 0, size, offset, (err, n) => (err ? fail(err) : done(n)))), delayMs),
    ),
  release: (fh) => closeSync(fh),
  statfs: () => ({ blocks: 0, files: names.length + 1, bsize: 4096, namelen: 255 }),
};

serveMirror('slow-mirror', mountpoint, fs, 1);
