// The ext4 reader against the kernel's own ext4 on read-only loop mounts of the same volumes:
// every name, type, size, mtime, inode number, link count, symlink target and byte equal.
import { copyFile, link, mkdir, mkdtemp, open, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { looksLikeExt4, openExt4 } from '../src/filesystem/ext4/ext4-fs.js';
import { CorruptVolumeError } from '../src/filesystem/volume-fs.js';
import { openFileVolume } from '../src/io/file-volume.js';
import { makeExt4Image, type Mounted, mountReadOnly, walkMount } from './helpers/ext4-volume.js';
import { requireTool, run } from './helpers/run.js';
import { fileDataSha256, walkReader } from './helpers/volume-walk.js';

const MiB = 1024 * 1024;
const HTREE_ENTRIES = 5000;
const FRAG_BLOCKS = 1600;

let work: string;
const images: Record<'main' | 'inline' | 'blockmap', string> = { main: '', inline: '', blockmap: '' };

async function fillMain(root: string): Promise<void> {
  await writeFile(join(root, 'hello.txt'), 'hello, ext4\n');
  await writeFile(join(root, 'empty'), '');
  await writeFile(join(root, 'big.bin'), randomBytes(3 * MiB + 17));
  const sparse = await open(join(root, 'sparse.bin'), 'w');
  await sparse.write(randomBytes(65536), 0, 65536, 0);
  await sparse.write(randomBytes(5000), 0, 5000, 50 * MiB);
  await sparse.truncate(100 * MiB + 123);
  await sparse.close();
  // Every other block written: one extent per block, more than an inode's 4 root entries hold.
  const frag = await open(join(root, 'frag.bin'), 'w');
  for (let i = 0; i < FRAG_BLOCKS; i++) await frag.write(randomBytes(4096), 0, 4096, i * 8192);
  await frag.close();
  await run('fallocate', ['-l', String(MiB), join(root, 'prealloc.bin')]);
  const pre = await open(join(root, 'prealloc.bin'), 'r+');
  await pre.write(randomBytes(4096), 0, 4096, 512 * 1024);
  await pre.close();
  const huge = await open(join(root, 'huge.bin'), 'w');
  await huge.write(randomBytes(4096), 0, 4096, 4 * 1024 * MiB - 2048);
  await huge.truncate(4 * 1024 * MiB + 4097);
  await huge.close();
  await mkdir(join(root, 'htree'));
  for (let i = 0; i < HTREE_ENTRIES; i++) await writeFile(join(root, 'htree', `file-${i}-ünïcödé.txt`), `${i}\n`);
  await link(join(root, 'hello.txt'), join(root, 'htree', 'hello-link'));
  await symlink('hello.txt', join(root, 'fast-link'));
  await symlink(`${'d/'.repeat(60)}target`, join(root, 'slow-link'));
  await mkdir(join(root, 'a/b/c/d'), { recursive: true });
  await writeFile(join(root, 'a/b/c/d/deep.txt'), 'deep\n');
  await run('mkfifo', [join(root, 'fifo')]);
  await writeFile(join(root, 'future.txt'), 'after 2038\n');
  await utimes(join(root, 'future.txt'), 4102444800.25, 4102444800.123456);
  await writeFile(join(root, 'past.txt'), 'before 1970\n');
  await utimes(join(root, 'past.txt'), -315619200.5, -315619200.75);
}

async function fillInline(root: string): Promise<void> {
  await writeFile(join(root, 'tiny.txt'), 'ten bytes\n');
  await writeFile(join(root, 'mid.txt'), 'm'.repeat(100));
  await writeFile(join(root, 'over.txt'), randomBytes(3000));
  await writeFile(join(root, 'empty'), '');
  await mkdir(join(root, 'small-dir'));
  for (const n of ['a', 'bb', 'ccc']) await writeFile(join(root, 'small-dir', n), n);
  await mkdir(join(root, 'grown-dir'));
  for (let i = 0; i < 300; i++) await writeFile(join(root, 'grown-dir', `entry-${i}`), `${i}`);
  // Preallocated blocks that held a deleted file's data still read as zeros (uninitialized extents).
  await writeFile(join(root, 'garbage.bin'), randomBytes(20 * MiB));
  await run('sync', []);
  await rm(join(root, 'garbage.bin'));
  await run('sync', []);
  await run('fallocate', ['-l', String(4 * MiB), join(root, 'prealloc.bin')]);
  await symlink('tiny.txt', join(root, 'fast-link'));
  await symlink(`${'long/'.repeat(30)}target`, join(root, 'slow-link'));
}

async function fillBlockMap(root: string): Promise<void> {
  await writeFile(join(root, 'two-mib.bin'), randomBytes(2 * MiB + 3));
  const sparse = await open(join(root, 'holes.bin'), 'w');
  await sparse.write(randomBytes(10000), 0, 10000, 0);
  await sparse.write(randomBytes(10000), 0, 10000, 5 * MiB);
  await sparse.close();
  await mkdir(join(root, 'dir'));
  await writeFile(join(root, 'dir', 'small.txt'), 'block-mapped\n');
  await symlink('dir/small.txt', join(root, 'link'));
  // Top-level folders are spread over the groups (Orlov), so some inodes lie in groups whose
  // descriptors are in the second meta_bg descriptor block.
  for (let i = 0; i < 60; i++) {
    await mkdir(join(root, `spread-${i}`));
    await writeFile(join(root, `spread-${i}`, 'f.txt'), `${i}\n`);
  }
}

test.before(async () => {
  for (const tool of ['mkfs.ext4', 'losetup', 'debugfs', 'lsattr', 'fallocate', 'mkfifo']) requireTool(tool);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-ext4-'));
  images.main = join(work, 'main.img');
  images.inline = join(work, 'inline.img');
  images.blockmap = join(work, 'blockmap.img');
  await makeExt4Image(images.main, 256, ['-I', '256'], fillMain);
  await makeExt4Image(images.inline, 32, ['-b', '1024', '-I', '256', '-O', 'inline_data,^64bit'], fillInline);
  // 320 MiB of 1 KiB blocks: 40 groups, more than one block of 32-byte descriptors (meta_bg).
  await makeExt4Image(images.blockmap, 320, ['-b', '1024', '-I', '128', '-O', '^extents,^64bit,^flex_bg,^metadata_csum,^huge_file,^extra_isize,^resize_inode,meta_bg'], fillBlockMap);
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function compareWithKernel(img: string, offset = 0, size?: number): Promise<{ paths: number }> {
  const volumeSize = size ?? (await stat(img)).size;
  const mounted = await mountReadOnly(img, offset, size);
  const volume = await openFileVolume(img, offset, volumeSize);
  try {
    const expected = await walkMount(mounted.mountpoint);
    const actual = await walkReader(await openExt4(volume));
    const diff = [...new Set([...expected.keys(), ...actual.keys()])].filter((p) => JSON.stringify(expected.get(p)) !== JSON.stringify(actual.get(p)));
    if (diff.length > 0) throw new Error(`${img}: ${diff.length} paths differ, e.g. ${diff.slice(0, 3).map((p) => `${p}: kernel ${JSON.stringify(expected.get(p))} reader ${JSON.stringify(actual.get(p))}`).join('; ')}`);
    return { paths: expected.size };
  } finally {
    await volume.close();
    await mounted.cleanup();
  }
}

test('main volume (4 KiB blocks, 64-bit, metadata_csum): every path as the kernel reads it', async (t) => {
  const { paths } = await compareWithKernel(images.main);
  t.true(paths > HTREE_ENTRIES);
});

test('inline-data volume (1 KiB blocks, 32-bit descriptors): every path as the kernel reads it', async (t) => {
  await compareWithKernel(images.inline);
  t.pass();
});

test('block-mapped volume (ext3-style indirect blocks, 128-byte inodes, meta_bg): every path as the kernel reads it', async (t) => {
  await compareWithKernel(images.blockmap);
  t.pass();
});

/** lsattr's flag letters for a path on a read-only mount (e: extents, I: hash-indexed folder, N: inline data). */
async function flags(path: string): Promise<string> {
  return (await run('lsattr', ['-d', path], { env: { ...process.env, LC_ALL: 'C' } })).split(/\s+/)[0]!;
}

test('the volumes hold what the tests claim: a depth>1 extent tree, an htree folder, inline data, block maps', async (t) => {
  const depthLine = (await run('debugfs', ['-R', 'ex -n /frag.bin', images.main], { env: { ...process.env, LC_ALL: 'C' } })).split('\n')[1] ?? '';
  t.true(Number(/^\s*\d+\/\s*(\d+)/.exec(depthLine)?.[1]) >= 2, depthLine);
  const mounts: Mounted[] = [];
  try {
    for (const img of [images.main, images.inline, images.blockmap]) mounts.push(await mountReadOnly(img));
    const [main, inline, blockmap] = mounts as [Mounted, Mounted, Mounted];
    t.regex(await flags(join(main.mountpoint, 'htree')), /I/);
    t.regex(await flags(join(inline.mountpoint, 'tiny.txt')), /N/);
    t.regex(await flags(join(inline.mountpoint, 'small-dir')), /N/);
    t.regex(await flags(join(inline.mountpoint, 'grown-dir')), /I/);
    t.notRegex(await flags(join(blockmap.mountpoint, 'two-mib.bin')), /e/);
  } finally {
    for (const m of mounts) await m.cleanup();
  }
});

test('lookup by name in a 5000-entry folder: every name, exact case, fast', async (t) => {
  const volume = await openFileVolume(images.main, 0, (await stat(images.main)).size);
  try {
    const fs = await openExt4(volume);
    const dir = (await fs.lookup(await fs.root(), 'htree'))!.node;
    const t0 = performance.now();
    for (let i = 0; i < HTREE_ENTRIES; i++) {
      const e = await fs.lookup(dir, `file-${i}-ünïcödé.txt`);
      if (e?.node.size !== `${i}\n`.length) t.fail(`file-${i}: ${JSON.stringify(e)}`);
    }
    t.true(performance.now() - t0 < 5000);
    t.is(await fs.lookup(dir, 'FILE-1-ünïcödé.txt'), undefined);
    t.is(await fs.lookup(dir, 'no such file'), undefined);
    const link = await fs.lookup(dir, 'hello-link');
    t.is(link?.node.id, (await fs.lookup(await fs.root(), 'hello.txt'))?.node.id);
    t.is(link?.node.nlink, 2);
    t.is(await fs.lookup(await fs.root(), 'fifo'), undefined, 'FIFOs are not served');
  } finally {
    await volume.close();
  }
});

test('a volume that is not ext4 is refused with a clear error; looksLikeExt4 reads the magic', async (t) => {
  const zeros = join(work, 'zeros.img');
  await writeFile(zeros, Buffer.alloc(MiB));
  const volume = await openFileVolume(zeros, 0, MiB);
  try {
    await t.throwsAsync(openExt4(volume), { message: `${zeros}: not an ext2/3/4 volume (no magic 0xEF53 at byte 1080)` });
  } finally {
    await volume.close();
  }
  const head = Buffer.alloc(4096);
  const fh = await open(images.main, 'r');
  await fh.read(head, 0, 4096, 0);
  await fh.close();
  t.true(looksLikeExt4(head));
  t.false(looksLikeExt4(Buffer.alloc(4096)));
  t.false(looksLikeExt4(head.subarray(0, 512)));
});

test('a corrupt extent tree fails only its own file: the folder lists, every other file reads', async (t) => {
  const img = join(work, 'corrupt.img');
  await copyFile(images.inline, img);
  const where = await run('debugfs', ['-R', 'imap /over.txt', img], { env: { ...process.env, LC_ALL: 'C' } });
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(where);
  if (!m) throw new Error(`debugfs imap: ${where}`);
  const fh = await open(img, 'r+');
  await fh.write(Buffer.alloc(2), 0, 2, Number(m[1]) * 1024 + parseInt(m[2]!, 16) + 0x28); // eh_magic of the root in i_block
  await fh.close();
  const volume = await openFileVolume(img, 0, (await stat(img)).size);
  try {
    const fs = await openExt4(volume);
    const root = await fs.root();
    const names = (await fs.list(root)).map((e) => e.name);
    t.true(names.includes('over.txt') && names.includes('tiny.txt'));
    const over = (await fs.lookup(root, 'over.txt'))!.node;
    await t.throwsAsync(fs.data(over), { instanceOf: CorruptVolumeError, message: /: ext4 inode \d+: extent tree root: no extent header magic$/ });
    const tiny = (await fs.lookup(root, 'tiny.txt'))!.node;
    t.is((await fileDataSha256(await fs.data(tiny))).length, 64);
    t.is(await fs.readlink((await fs.lookup(root, 'slow-link'))!.node), `${'long/'.repeat(30)}target`);
    t.is((await fs.list((await fs.lookup(root, 'grown-dir'))!.node)).length, 300);
  } finally {
    await volume.close();
  }
});
