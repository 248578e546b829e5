// A FUSE mirror of one folder whose reads answer only after a delay: a storage "slow to answer".
// Run as a child process: node slow-mirror.js SOURCE_DIR MOUNTPOINT DELAY_MS (prints "ready").
import { closeSync, fstatSync, openSync, read, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Fuse, { type FuseStat } from 'fuse-native';

const [source, mountpoint, delay] = process.argv.slice(2) as [string, string, string];
const delayMs = Number(delay);

function statOf(path: string): FuseStat {
  const s = statSync(join(source, path));
  return { mtime: s.mtime, atime: s.atime, ctime: s.ctime, size: s.size, mode: s.mode, uid: s.uid, gid: s.gid, nlink: s.nlink, ino: s.ino, blksize: s.blksize, blocks: s.blocks };
}

const fuse = new Fuse(
  mountpoint,
  {
    readdir: (path: string, cb: (err: number, names?: string[]) => void) => cb(0, path === '/' ? readdirSync(source) : []),
    getattr: (path: string, cb: (err: number, st?: FuseStat) => void) => {
      try {
        cb(0, statOf(path));
      } catch {
        cb(Fuse.ENOENT);
      }
    },
    open: (path: string, _flags: number, cb: (err: number, fd?: number) => void) => cb(0, openSync(join(source, path), 'r')),
    release: (_path: string, fd: number, cb: (err: number) => void) => {
      closeSync(fd);
      cb(0);
    },
    read: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
      setTimeout(() => read(fd, buf, 0, Math.min(len, Math.max(0, fstatSync(fd).size - pos)), pos, (err, n) => cb(err ? Fuse.EIO : n)), delayMs);
    },
  },
  { allowOther: true, timeout: false },
);
fuse.mount((err: Error | null) => {
  if (err) {
    process.stderr.write(`slow-mirror: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)));
