// The generic FUSE session over a real mount, with a filesystem of the test's own that counts
// what the kernel asks: request sizes follow from what INIT answered.
import { execFile } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { constants, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { mount } from '../src/fuse/mount.js';
import type { Attr, Dirent } from '../src/fuse/protocol.js';
import { FuseError, type FuseFs } from '../src/fuse/fuse-fs.js';
import { copyLayout } from '../src/io/shared-layout.js';
import { cachedBytesOf } from './helpers/page-cache.js';
import { posixFadvise } from '../src/sys/libc.js';

/** O_ACCMODE, <fcntl.h> (node's constants lack it). */
const O_ACCMODE = 3;

/** The calls of a FuseFs that serves no file's bytes. */
const noFiles = {
  open: async () => ({ fh: 1 }),
  read: async () => 0,
  release: () => undefined,
  statfs: () => ({ blocks: 0, files: 1, bsize: 4096, namelen: 255 }),
} satisfies Partial<FuseFs>;

/** POSIX_FADV_DONTNEED, <fcntl.h> on Linux: drop the range's clean pages from the page cache. */
const POSIX_FADV_DONTNEED = 4;
const SIZE = 64 << 20;
const MiB = 1 << 20;

/** Waits up to a second for what another thread tells by message. */
async function until(t: ExecutionContext, ok: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  t.true(ok(), what);
}

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

// Serial: its drop_caches evicts the other tests' dentries too (ava runs serial tests first, alone).
test.serial('READDIRPLUS: a listing brings every entry\'s attributes, so stat(2) of the listed names asks nothing more; a name without them is looked up', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-session-'));
  // More entries than one request holds, with names of different lengths (padding).
  const names = Array.from({ length: 500 }, (_, i) => `disk-${i}${'x'.repeat(i % 9)}.vhdx`);
  const ino = (i: number): number => 10 + i;
  const attr = (n: number): Attr => ({ ino: n, size: n === 1 ? 4096 : 1000 + n, blocks: 0, mtime: new Date(0), mode: n === 1 ? constants.S_IFDIR | 0o555 : constants.S_IFREG | 0o444, nlink: 1, uid: 0, gid: 0, blksize: 4096 });
  /** How often each name was looked up, by LOOKUP or READDIRPLUS. */
  const lookups = new Map<string, number>();
  /** The name whose attributes cannot be had (a dynamic disk whose .raw cannot be mapped). */
  const broken = names[7]!;
  const forgotten = new Set<number>();
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
    forget: (n) => void forgotten.add(n),
    ...noFiles,
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
    // per OPENDIR, so the listing's encoding looks every name up once more.) The folder's own
    // listing, cached in its page cache, is dropped too, or the next readdir asks the server
    // nothing; only it: the other tests here count pages of their files.
    writeFileSync('/proc/sys/vm/drop_caches', '2');
    await until(t, () => forgotten.size === names.length - 1, 'the kernel forgot every inode it was given (not the broken name\'s: it had none)');
    const root = await open(mnt, 'r'); // not openSync: this process serves the mount
    t.is(posixFadvise(root.fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    await root.close();
    t.is((await readdir(mnt)).length, names.length);
    for (const [i, name] of names.entries()) if (name !== broken) t.is((await stat(join(mnt, name))).size, 1000 + ino(i), name);
    t.deepEqual([...lookups].filter(([name, n]) => n !== 2 && name !== broken), [], 'after FORGET, the listing gave the attributes again');
  } finally {
    await m.unmount();
    await rm(dir, { recursive: true, force: true });
  }
});

test('offered files: a request worker answers their OPENs and RELEASEs (small ones stored in the page cache); the file system only adopts and releases; a withdrawn offer or a write opens as usual', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-session-'));
  const files = new Map([2, 3, 4].map((ino) => [ino, Buffer.from(`file ${ino} `.repeat(300 + ino))]));
  const attr = (ino: number): Attr => ({ ino, size: ino === 1 ? 4096 : files.get(ino)!.length, blocks: 0, mtime: new Date(0), mode: ino === 1 ? constants.S_IFDIR | 0o555 : constants.S_IFREG | 0o444, nlink: 1, uid: 0, gid: 0, blksize: 4096 });
  const opened: number[] = [];
  const adopted: [number, number | undefined][] = [];
  const released: number[] = [];
  const fs: FuseFs = {
    lookup: (parent, name) => (parent === 1 && files.has(Number(name.slice(1))) ? attr(Number(name.slice(1))) : undefined),
    getattr: (ino) => (ino === 1 || files.has(ino) ? attr(ino) : undefined),
    list: () => undefined,
    open: async (ino, flags) => {
      opened.push(ino);
      if ((flags & O_ACCMODE) !== constants.O_RDONLY) throw new FuseError(osConstants.errno.EROFS);
      return { fh: 100 + ino };
    },
    read: async (fh, offset, size, into) => files.get(fh - 100)!.copy(into, 0, offset, offset + size),
    release: (fh) => void released.push(fh),
    adopt: (ino, fh) => void adopted.push([ino, fh]),
    statfs: () => ({ blocks: 0, files: 1, bsize: 4096, namelen: 255 }),
  };
  const mnt = join(dir, 'mnt');
  const m = await mount(mnt, fs, { allowOther: false, readOnly: false }, (line) => t.log(line));
  const offer = (ino: number): void => {
    const data = files.get(ino)!;
    t.true(m.offers.offer(ino, copyLayout({ size: data.length, segments: [{ kind: 'bytes', start: 0, length: data.length, data }] }, () => -1)), `f${ino} offered`);
  };
  try {
    for (const ino of files.keys()) await stat(join(mnt, `f${ino}`)); // the kernel knows the inodes
    for (const ino of files.keys()) offer(ino);
    t.true(m.offers.withdraw(3), 'no worker had taken f3');
    // Opened, never read: the bytes are in the page cache all the same. (Every call into the
    // mount here is asynchronous: this process serves it.)
    const f2 = await open(join(mnt, 'f2'), 'r');
    t.is(cachedBytesOf(f2.fd), 4096, 'stored with the open');
    await f2.close();
    t.deepEqual(opened, [], 'the file system was not asked to open f2');
    m.offers.heard();
    t.is(adopted.length, 1);
    const [ino, fh] = adopted[0]!;
    t.is(ino, 2);
    t.true(fh !== undefined && fh >= 2 ** 48, `a worker's handle: ${fh}`);
    await until(t, () => released.includes(fh!), 'the worker told of its RELEASE once idle');
    t.deepEqual(await readFile(join(mnt, 'f2')), files.get(2), 'a second open of f2 is the file system\'s, and reads the bytes');
    t.deepEqual(await readFile(join(mnt, 'f3')), files.get(3));
    t.deepEqual(opened, [2, 3], 'f2 again (its offer was used) and f3 (withdrawn) opened through the file system');
    const e = await open(join(mnt, 'f4'), 'r+').catch((x: NodeJS.ErrnoException) => x.code);
    t.is(e, 'EROFS', 'a write open of an offered file is the file system\'s to answer');
    t.deepEqual(opened, [2, 3, 4]);
  } finally {
    await m.unmount();
    await rm(dir, { recursive: true, force: true });
  }
});

test('offered folders: a request worker answers their OPENDIR and READDIRPLUS; the file system adopts the listing and counts each entry given; a withdrawn offer is listed as usual', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-session-'));
  const folders = [10, 11];
  const attr = (ino: number): Attr => ({ ino, size: 4096, blocks: 0, mtime: new Date(0), mode: ino === 1 || folders.includes(ino) ? constants.S_IFDIR | 0o555 : constants.S_IFREG | 0o444, nlink: 1, uid: 0, gid: 0, blksize: 4096 });
  const file = (ino: number): Dirent => ({ ino, name: `f${ino}`, mode: constants.S_IFREG, attr: attr(ino) });
  const listOf = (d: number): Dirent[] => [{ ino: d, name: '.', mode: constants.S_IFDIR }, { ino: d, name: '..', mode: constants.S_IFDIR }, ...Array.from({ length: 50 }, (_, i) => file(d * 100 + i))];
  const listed: number[] = [];
  const given = new Map<number, number>();
  const adopted: [number, number][] = [];
  const fs: FuseFs = {
    lookup: (parent, name) => (parent === 1 && folders.includes(Number(name.slice(1))) ? attr(Number(name.slice(1))) : undefined),
    getattr: (ino) => attr(ino),
    list: (ino) => {
      listed.push(ino);
      return folders.includes(ino) ? listOf(ino) : undefined;
    },
    given: (_dir, e) => void given.set(e.ino, (given.get(e.ino) ?? 0) + 1),
    adoptDir: (ino, list) => void adopted.push([ino, list.length]),
    ...noFiles,
  };
  const mnt = join(dir, 'mnt');
  const m = await mount(mnt, fs, { allowOther: false, readOnly: true }, (line) => t.log(line));
  try {
    for (const d of folders) await stat(join(mnt, `d${d}`)); // the kernel knows the folders
    for (const d of folders) t.true(m.offers.offerListing(d, listOf(d)), `d${d} offered`);
    t.false(m.offers.offerListing(10, listOf(10)), 'a folder is offered once at a time');
    t.true(m.offers.withdrawListing(11), 'no worker had taken d11');
    const names = listOf(10).slice(2).map((e) => e.name).sort();
    t.deepEqual((await readdir(join(mnt, 'd10'))).sort(), names);
    t.deepEqual(listed, [], 'the file system was not asked to list d10');
    m.offers.heard();
    t.deepEqual(adopted, [[10, 52]], 'the file system adopted the listing it offered');
    // The worker tells which entries it gave by message, which may come after the readdir's answer.
    await until(t, () => given.size === 50, 'the worker told of the entries it gave');
    t.deepEqual([...given.keys()].sort(), listOf(10).slice(2).map((e) => e.ino).sort(), 'every entry the worker gave was counted as a lookup (the worker told the main thread of its open before its first READDIRPLUS)');
    t.true([...given.values()].every((n) => n === 1));
    for (const e of listOf(10).slice(2)) t.is((await stat(join(mnt, 'd10', e.name))).size, 4096, 'its attributes came with the listing');
    t.deepEqual(listed, [], 'nothing was looked up or listed for them');
    t.is((await readdir(join(mnt, 'd11'))).length, 50);
    t.deepEqual(listed, [11], 'd11, withdrawn, was listed by the file system');
    t.is((await readdir(join(mnt, 'd10'))).length, 50);
    t.deepEqual(listed, [11, 10], 'an offer answers one OPENDIR: the next is the file system\'s');
  } finally {
    await m.unmount();
    await rm(dir, { recursive: true, force: true });
  }
});
