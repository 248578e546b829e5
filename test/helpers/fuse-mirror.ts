// A read-only FUSE mirror of a folder tree: a filesystem where inotify sees nothing of the
// changes made to the folder underneath (as on a network mount written by another host).
// Run as a child process: node fuse-mirror.js SOURCE_DIR MOUNTPOINT (prints "ready").
// Built on synthvhd's own FUSE session; symbolic links are shown as what they point to.
import { closeSync, constants, openSync, read, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Attr } from '../../src/fuse/protocol.js';
import { FuseError, type FuseFs } from '../../src/fuse/fuse-fs.js';
import { serveMirror } from './mirror-mount.js';

const [source, mountpoint] = process.argv.slice(2) as [string, string];
const ROOT = 1;
/** Inode numbers by path relative to the source, handed out as paths are first seen. */
const paths = new Map<number, string>([[ROOT, '']]);
const inos = new Map<string, number>([['', ROOT]]);
const inoOf = (rel: string): number => {
  let ino = inos.get(rel);
  if (ino === undefined) {
    ino = paths.size + 1;
    inos.set(rel, ino);
    paths.set(ino, rel);
  }
  return ino;
};

function attr(ino: number): Attr | undefined {
  const rel = paths.get(ino);
  if (rel === undefined) return undefined;
  try {
    const s = statSync(join(source, rel));
    return { ino, size: s.size, blocks: s.blocks, mtime: s.mtime, mode: s.mode, nlink: s.nlink, uid: s.uid, gid: s.gid, blksize: s.blksize };
  } catch {
    return undefined;
  }
}

const fs: FuseFs = {
  lookup: (parent, name) => {
    const p = paths.get(parent);
    return p === undefined ? undefined : attr(inoOf(p ? `${p}/${name}` : name));
  },
  getattr: (ino) => attr(ino),
  list: (ino) => {
    const rel = paths.get(ino);
    if (rel === undefined) return undefined;
    let names: string[];
    try {
      names = readdirSync(join(source, rel));
    } catch {
      return undefined;
    }
    const dir = constants.S_IFDIR;
    return [{ ino, name: '.', mode: dir }, { ino: ROOT, name: '..', mode: dir }, ...names.map((n) => {
      const child = rel ? `${rel}/${n}` : n;
      const a = attr(inoOf(child));
      return { ino: inoOf(child), name: n, mode: (a?.mode ?? constants.S_IFREG) & constants.S_IFMT };
    })];
  },
  open: async (ino) => {
    const rel = paths.get(ino);
    if (rel === undefined) throw new FuseError(osConstants.errno.ENOENT);
    return { fh: openSync(join(source, rel), 'r') };
  },
  read: (fh, offset, size, into) => new Promise((done, fail) => read(fh, into, 0, size, offset, (err, n) => (err ? fail(err) : done(n)))),
  release: (fh) => closeSync(fh),
  statfs: () => ({ blocks: 0, files: paths.size, bsize: 4096, namelen: 255 }),
};

serveMirror('fuse-mirror', mountpoint, fs, 0);
