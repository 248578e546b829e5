// The generic FUSE session over a real mount, with a filesystem of the test's own that counts
// what the kernel asks: request sizes follow from what INIT answered.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { constants, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import test from 'ava';
import { mount } from '../src/fuse/mount.js';
import type { Attr } from '../src/fuse/protocol.js';
import { FuseError, type FuseFs } from '../src/fuse/fuse-fs.js';

const SIZE = 64 << 20;
const MiB = 1 << 20;

test('a sequential read reaches the server as 1 MiB requests: INIT asks for the mount\'s whole readahead window', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-session-'));
  const sizes = new Map<number, number>();
  const attr = (ino: number): Attr => ({ ino, size: ino === 2 ? SIZE : 0, blocks: 0, mtime: new Date(0), mode: ino === 1 ? constants.S_IFDIR | 0o555 : constants.S_IFREG | 0o444, nlink: 1, uid: 0, gid: 0, blksize: 4096 });
  const fs: FuseFs = {
    lookup: (parent, name) => (parent === 1 && name === 'f' ? attr(2) : undefined),
    getattr: (ino) => (ino <= 2 ? attr(ino) : undefined),
    list: () => undefined,
    open: async () => ({ fh: 1 }),
    read: async (_fh, offset, size, into) => {
      sizes.set(size, (sizes.get(size) ?? 0) + 1);
      into.fill(7, 0, size);
      return Math.max(0, Math.min(size, SIZE - offset));
    },
    release: () => undefined,
    statfs: () => ({ blocks: 0, files: 1, bsize: 4096, namelen: 255 }),
  };
  const m = await mount(join(dir, 'mnt'), fs, { allowOther: false, readOnly: true }, (line) => t.log(line));
  try {
    await promisify(execFile)('dd', [`if=${join(dir, 'mnt', 'f')}`, 'of=/dev/null', 'bs=4M', 'status=none']);
  } finally {
    await m.unmount();
    await rm(dir, { recursive: true, force: true });
  }
  // A few pages may come in a small request of their own when the kernel's readahead and dd's
  // reads cross under load (an 8 KiB one once did); with INIT echoing the kernel's 128 KiB, none is 1 MiB.
  const counts = JSON.stringify([...sizes]);
  t.true(Math.max(...sizes.keys()) === MiB, `no request over 1 MiB: ${counts}`);
  t.true((sizes.get(MiB) ?? 0) * MiB >= 0.9 * SIZE, `at least 90 % of the file came in 1 MiB requests: ${counts}`);
});

test('READDIRPLUS: a listing brings every entry\'s attributes, so stat(2) of the listed names asks nothing more; a name without them is looked up', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-session-'));
  // More entries than one request holds, with names of different lengths (padding).
  const names = Array.from({ length: 500 }, (_, i) => `disk-${i}${'x'.repeat(i % 9)}.vhdx`);
  const ino = (i: number): number => 10 + i;
  const attr = (n: number): Attr => ({ ino: n, size: n === 1 ? 4096 : 1000 + n, blocks: 0, mtime: new Date(0), mode: n === 1 ? constants.S_IFDIR | 0o555 : constants.S_IFREG | 0o444, nlink: 1, uid: 0, gid: 0, blksize: 4096 });
  /** How often each name was looked up, by LOOKUP or READDIRPLUS. */
  const lookups = new Map<string, number>();
  /** The name whose attributes cannot be had (a dynamic disk whose .raw cannot be mapped). */
  const broken = names[7]!;
  const fs: FuseFs = {
    lookup: (parent, name) => {
      lookups.set(name, (lookups.get(name) ?? 0) + 1);
      const i = names.indexOf(name);
      if (parent !== 1 || i < 0) return undefined;
      if (name === broken) throw new FuseError(osConstants.errno.EIO);
      return attr(ino(i));
    },
    getattr: (n) => (n === 1 ? attr(1) : undefined),
    list: (n) => (n === 1 ? [{ ino: 1, name: '.', mode: constants.S_IFDIR }, { ino: 1, name: '..', mode: constants.S_IFDIR }, ...names.map((name, i) => ({ ino: ino(i), name, mode: constants.S_IFREG }))] : undefined),
    open: async () => ({ fh: 1 }),
    read: async () => 0,
    release: () => undefined,
    statfs: () => ({ blocks: 0, files: 1, bsize: 4096, namelen: 255 }),
  };
  const mnt = join(dir, 'mnt');
  const m = await mount(mnt, fs, { allowOther: false, readOnly: true }, (line) => t.log(line));
  try {
    const listed = await readdir(mnt);
    t.deepEqual(listed.sort(), [...names].sort());
    t.is(lookups.size, names.length, 'the listing itself looked every name up (READDIRPLUS)');
    for (const [i, name] of names.entries()) {
      if (name === broken) {
        const e = await stat(join(mnt, name)).catch((x: NodeJS.ErrnoException) => x.code);
        t.is(e, 'EIO', 'a name READDIRPLUS had no attributes for is looked up, and fails as its lookup does');
        continue;
      }
      t.is((await stat(join(mnt, name))).size, 1000 + ino(i), name);
    }
    t.deepEqual([...lookups].filter(([name, n]) => n !== 1 && name !== broken), [], 'no name was looked up again');
    t.true((lookups.get(broken) ?? 0) >= 2, 'the name without attributes was looked up again');
    // The kernel drops its dentries and inodes (FORGET): the next listing must give every
    // attribute again, not leave them out as held. (This filesystem's list() is a new snapshot
    // per OPENDIR, so the listing's encoding looks every name up once more.)
    writeFileSync('/proc/sys/vm/drop_caches', '2');
    await new Promise((r) => setTimeout(r, 300));
    t.is((await readdir(mnt)).length, names.length);
    for (const [i, name] of names.entries()) if (name !== broken) t.is((await stat(join(mnt, name))).size, 1000 + ino(i), name);
    t.deepEqual([...lookups].filter(([name, n]) => n !== 2 && name !== broken), [], 'after FORGET, the listing gave the attributes again');
  } finally {
    await m.unmount();
    await rm(dir, { recursive: true, force: true });
  }
});
