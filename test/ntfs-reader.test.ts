// The NTFS reader (src/filesystem/ntfs) against ntfs-3g reading the same volume: every name,
// type, size, mtime, link count and byte equal (docs/filesystems-ntfs.md).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { readSafeI64, readSafeU64 } from '../src/base/int64.js';
import { decodeRuns } from '../src/filesystem/ntfs/data-runs.js';
import { NtfsFormatError } from '../src/filesystem/ntfs/format-error.js';
import { ntTimeToMs } from '../src/filesystem/ntfs/nt-time.js';
import { looksLikeNtfs, openNtfs } from '../src/filesystem/ntfs/ntfs-filesystem.js';
import { CorruptVolumeError, UnsupportedDataError, type FsNode } from '../src/filesystem/volume-fs.js';
import { parseBootSector } from '../src/filesystem/ntfs/boot-sector.js';
import { AttrType } from '../src/filesystem/ntfs/mft-record.js';
import { openMft } from '../src/filesystem/ntfs/open-mft.js';
import { parseLinkTarget, relativeLinkPath } from '../src/filesystem/ntfs/reparse-point.js';
import { openFileVolume } from '../src/io/file-volume.js';
import { RAW_VOLUME_OFFSET } from '../src/urbackup/raw-file.js';
import { fileBytes, makeNtfsImage, mountedTree, mtimeDifferences, readerTree, withNtfs3g, type NtfsGeometry, type Tree } from './helpers/ntfs-volume.js';
import { hexValue, junction, otherReparse, symlink } from './helpers/ntfs-reparse.js';
import { run } from './helpers/run.js';
import { syntheticMbr } from './helpers/urbackup-storage.js';

let work: string;

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-ntfs-'));
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const sha = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex');

/** Files of every kind the reader handles without compression, written through ntfs-3g. */
const POPULATE = String.raw`
set -e
mkdir -p docs/deep/deeper 'empty folder' big
: > empty.txt
echo small > docs/small.txt
head -c 5000 /dev/urandom > docs/5k.bin
head -c 3000000 /dev/urandom > docs/deep/3m.bin
ln docs/5k.bin docs/deep/hard-5k.bin
echo dos > 'Long File Name.txt'
setfattr -n system.ntfs_dos_name -v 'LONGFI~1.TXT' 'Long File Name.txt'
truncate -s 10M sparse.bin
dd if=/dev/urandom of=sparse.bin bs=4096 count=3 seek=100 conv=notrunc status=none
printf tail | dd of=sparse.bin bs=1 seek=9000000 conv=notrunc status=none
echo data > ads.txt
setfattr -n user.secret -v hidden-stream ads.txt
echo x > 'ünïcödé € 名前.txt'
echo h > hidden.txt
setfattr -n system.ntfs_attrib_be -v 0x00000006 hidden.txt
(cd big && for i in $(seq 1 3000); do echo $i > "entry-$i-with-a-longer-name.txt"; done)
touch -d '2001-02-03 04:05:06.789' docs/small.txt
touch docs/deep/link
setfattr -n system.ntfs_reparse_data -v "$LINK" docs/deep/link
`;

async function populated(name: string, geometry: NtfsGeometry): Promise<string> {
  const image = join(work, `${name}.img`);
  await makeNtfsImage(image, 64, geometry);
  await withNtfs3g(image, join(work, `${name}-mnt`), ['streams_interface=xattr'], (mnt) =>
    run('bash', ['-c', `cd "${mnt}" && ${POPULATE}`], { env: { ...process.env, LINK: hexValue(symlink('..\\small.txt', true)) } }),
  );
  return image;
}

function sameTree(t: import('ava').ExecutionContext, actual: Tree, expected: Tree): void {
  t.deepEqual(actual.lines, expected.lines);
  t.deepEqual(mtimeDifferences(actual, expected), []);
}

async function compareWithNtfs3g(t: import('ava').ExecutionContext, name: string, geometry: NtfsGeometry): Promise<void> {
  const image = await populated(name, geometry);
  const before = await sha(image);
  const expected = await withNtfs3g(image, join(work, `${name}-ro`), ['ro', 'streams_interface=xattr'], mountedTree);
  const volume = await openFileVolume(image, 0, (await stat(image)).size);
  try {
    const fs = await openNtfs(volume);
    sameTree(t, await readerTree(fs), expected);
    t.is(Object.keys(expected.lines).filter((p) => p.startsWith('/big/')).length, 3000);
    t.is(expected.lines['/docs/deep/link'], 'symlink 12 ../small.txt');
  } finally {
    await volume.close();
  }
  t.is(await sha(image), before, 'the reader wrote nothing to the volume');
}

test('a volume of 512-byte sectors and 4 KiB clusters reads as ntfs-3g shows it', (t) => compareWithNtfs3g(t, 'c4k', {}));
test('512-byte clusters (index blocks larger than a cluster)', (t) => compareWithNtfs3g(t, 'c512', { clusterSize: 512 }));
test('4 KiB sectors and 64 KiB clusters (records and index blocks as 2^-n)', (t) => compareWithNtfs3g(t, 'c64k', { sectorSize: 4096, clusterSize: 65536 }));

test('lookups ignore case as NTFS does, in a folder of thousands of entries', async (t) => {
  const image = await populated('lookup', {});
  const volume = await openFileVolume(image, 0, (await stat(image)).size);
  try {
    const fs = await openNtfs(volume);
    const root = await fs.root();
    const big = (await fs.lookup(root, 'BIG'))!;
    t.is(big.node.type, 'dir');
    t.true(hasInnerIndexBlock(await readFile(image)), 'the big folder\'s B-tree has index blocks with sub-nodes (three levels)');
    // A fresh reader finds every name by descending the B-tree; this one, from the listing's map.
    const fresh = await openNtfs(volume);
    const freshBig = (await fresh.lookup(await fresh.root(), 'big'))!.node;
    const listed = await fs.list(big.node);
    t.is(listed.length, 3000);
    for (const e of listed) {
      t.is((await fresh.lookup(freshBig, e.name.toUpperCase()))?.node.id, e.node.id, e.name);
      t.is((await fs.lookup(big.node, e.name.toUpperCase()))?.node.id, e.node.id, e.name);
    }
    for (const reader of [fs, fresh]) {
      t.is(await reader.lookup(big.node, 'entry-3001-with-a-longer-name.txt'), undefined);
      t.is(await reader.lookup(big.node, 'a'), undefined);
      t.is(await reader.lookup(big.node, 'zzz'), undefined);
    }
    t.is(await fresh.lookup(await fresh.root(), 'LONGFI~1.TXT'), undefined);
    t.is((await fresh.lookup(await fresh.root(), 'long file name.TXT'))?.name, 'Long File Name.txt');
    t.is((await fs.lookup(root, 'ÜNÏCÖDÉ € 名前.TXT'))?.name, 'ünïcödé € 名前.txt');
    // Listed once, by its long name, not by its DOS 8.3 name.
    t.deepEqual((await fs.list(root)).filter((e) => e.name.startsWith('LONGFI')), []);
    t.is(await fs.lookup(root, '$MFT'), undefined);
    t.is((await fs.lookup(root, 'hidden.txt'))!.node.dosAttributes! & 0x6, 0x6, 'FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM');
    t.is((await fs.lookup(root, 'empty.txt'))!.node.dosAttributes! & 0x6, 0);
    const docs = (await fs.lookup(root, 'docs'))!;
    const small = (await fs.lookup(docs.node, 'small.txt'))!;
    t.is(Math.round(small.node.mtimeMs), new Date('2001-02-03T04:05:06.789').getTime());
    const hard = (await fs.lookup((await fs.lookup(docs.node, 'deep'))!.node, 'hard-5k.bin'))!;
    t.is(hard.node.id, (await fs.lookup(docs.node, '5k.bin'))!.node.id);
    t.is(hard.node.nlink, 2);
    const ads = (await fs.lookup(root, 'ads.txt'))!;
    t.is((await fileBytes((await fs.streamData(ads.node, 'secret'))!)).toString(), 'hidden-stream');
    t.is(await fs.streamData(ads.node, 'none'), undefined);
    t.is((await fileBytes(await fs.data(ads.node))).toString(), 'data\n');
  } finally {
    await volume.close();
  }
});

/** Whether an INDX block's node header (at 0x18) has the 0x01 "has sub-nodes" flag (docs/filesystems-ntfs.md §9). */
function hasInnerIndexBlock(image: Buffer): boolean {
  for (let at = 0; at + 512 <= image.length; at += 512) if (image.toString('latin1', at, at + 4) === 'INDX' && image[at + 0x18 + 0x0c]! & 1) return true;
  return false;
}

test('a volume imaged the UrBackup way (inside a .raw from byte 524288) reads the same', async (t) => {
  const image = await populated('raw', {});
  const raw = join(work, 'Image_C_240101-1200.raw');
  const size = (await stat(image)).size;
  // The server's synthetic MBR, then the volume from byte 524288 (docs/urbackup-raw-format.md §2.1).
  await writeFile(raw, syntheticMbr(size, 0x12345678));
  await run('dd', [`if=${image}`, `of=${raw}`, 'bs=1M', `seek=${RAW_VOLUME_OFFSET}`, 'oflag=seek_bytes', 'conv=sparse,notrunc', 'status=none']);
  await run('truncate', ['-s', String(RAW_VOLUME_OFFSET + size), raw]);
  const before = await sha(raw);
  const expected = await withNtfs3g(image, join(work, 'raw-ro'), ['ro', 'streams_interface=xattr'], mountedTree);
  const volume = await openFileVolume(raw, RAW_VOLUME_OFFSET, size);
  try {
    const fs = await openNtfs(volume);
    sameTree(t, await readerTree(fs), expected);
    const big = (await fs.lookup((await fs.lookup(await fs.root(), 'docs'))!.node, 'deep'))!;
    const data = await fs.data((await fs.lookup(big.node, '3m.bin'))!.node);
    t.is(data.kind, 'layout');
    if (data.kind !== 'layout') return;
    for (const s of data.layout.segments) {
      if (s.kind === 'file') t.true(s.source.path === raw && s.offset >= RAW_VOLUME_OFFSET && s.offset + s.length <= RAW_VOLUME_OFFSET + size);
    }
  } finally {
    await volume.close();
  }
  t.is(await sha(raw), before, 'the reader wrote nothing to the .raw');
});

test('a volume that is not NTFS is rejected with an error naming it', async (t) => {
  const image = join(work, 'ext4.img');
  await run('truncate', ['-s', '16M', image]);
  await run('mkfs.ext4', ['-q', '-F', image]);
  const volume = await openFileVolume(image, 0, (await stat(image)).size);
  try {
    t.false(looksLikeNtfs(await volume.read(0, 512)));
    const e = await t.throwsAsync(openNtfs(volume), { instanceOf: CorruptVolumeError });
    t.true(e!.message.includes(image));
  } finally {
    await volume.close();
  }
  const ntfs = join(work, 'blank.img');
  await makeNtfsImage(ntfs, 8);
  t.true(looksLikeNtfs((await readFile(ntfs)).subarray(0, 512)));
});

/** Writes `script` into a fresh volume through ntfs-3g with `options`; returns the image. */
async function volumeWith(name: string, sizeMiB: number, options: readonly string[], script: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const image = join(work, `${name}.img`);
  await makeNtfsImage(image, sizeMiB);
  await withNtfs3g(image, join(work, `${name}-mnt`), options, (mnt) => run('bash', ['-c', `set -e; cd "${mnt}"; ${script}`], { env: { ...process.env, ...env } }));
  return image;
}

async function openImage(image: string): Promise<{ fs: Awaited<ReturnType<typeof openNtfs>>; close: () => Promise<void> }> {
  const volume = await openFileVolume(image, 0, (await stat(image)).size);
  return { fs: await openNtfs(volume), close: () => volume.close() };
}

async function nodeAt(fs: Awaited<ReturnType<typeof openNtfs>>, path: string): Promise<FsNode> {
  let node = await fs.root();
  for (const part of path.split('/').filter(Boolean)) {
    const e = await fs.lookup(node, part);
    if (!e) throw new Error(`${path}: no ${part}`);
    node = e.node;
  }
  return node;
}

test('LZNT1-compressed files (stored, compressed and sparse units) read as ntfs-3g decompresses them', async (t) => {
  const image = await volumeWith('lznt1', 64, ['compression'], String.raw`
mkdir z
setfattr -n system.ntfs_attrib_be -v 0x00000810 z
seq 1 100000 > z/text.txt
head -c 200000 /dev/urandom > z/random.bin
(head -c 100000 /dev/urandom; head -c 300000 /dev/zero; seq 1 50000; head -c 7 /dev/urandom) > z/mixed.bin
truncate -s 5M z/sparse.bin
printf 'x' | dd of=z/sparse.bin bs=1 seek=3000000 conv=notrunc status=none
echo tiny > z/tiny.txt
: > z/empty.bin`);
  const expected = await withNtfs3g(image, join(work, 'lznt1-ro'), ['ro'], mountedTree);
  const { fs, close } = await openImage(image);
  try {
    sameTree(t, await readerTree(fs), expected);
    for (const name of ['text.txt', 'mixed.bin', 'sparse.bin']) t.is((await fs.data(await nodeAt(fs, `z/${name}`))).kind, 'decoded', name);
    const mixed = await fs.data(await nodeAt(fs, 'z/mixed.bin'));
    const whole = await fileBytes(mixed);
    if (mixed.kind === 'decoded') t.deepEqual(await mixed.read(65530, 70000), whole.subarray(65530, 135530));
  } finally {
    await close();
  }
});

test('a file of hundreds of runs, its runs in extension records through $ATTRIBUTE_LIST', async (t) => {
  // Appends to big.bin alternate with new small files, so its clusters alternate with theirs.
  const image = await volumeWith('fragmented', 32, [], String.raw`
mkdir f
for i in $(seq 1 800); do head -c 4096 /dev/urandom >> big.bin; head -c 4096 /dev/zero > f/s$i; done`);
  const expected = await withNtfs3g(image, join(work, 'fragmented-ro'), ['ro'], mountedTree);
  const { fs, close } = await openImage(image);
  try {
    sameTree(t, await readerTree(fs), expected);
    const big = await nodeAt(fs, 'big.bin');
    const data = await fs.data(big);
    t.true(data.kind === 'layout' && data.layout.segments.length > 500, 'big.bin has hundreds of runs');
    const volume = await openFileVolume(image, 0, (await stat(image)).size);
    const base = await (await openMft(volume)).g.mft.record(big.id).finally(() => volume.close());
    t.true(base.attributes.some((a) => a.type === AttrType.attributeList), 'big.bin has an $ATTRIBUTE_LIST');
  } finally {
    await close();
  }
});

/** WOF_EXTERNAL_INFO (version 1, provider 2: file) and FILE_PROVIDER_EXTERNAL_INFO_V1 (version 1, LZX). */
const WOF_REPARSE = otherReparse(0x80000017, Buffer.from([1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]));

const LINKS: Record<string, Buffer> = {
  'j-abs': junction('\\??\\C:\\target'),
  's-abs': symlink('\\??\\c:\\TARGET\\f.txt', false),
  's-rel': symlink('..\\target\\f.txt', true),
  's-here': symlink('\\??\\C:\\links', false),
  'j-other-letter': junction('\\??\\D:\\target'),
  's-unc': symlink('\\??\\UNC\\server\\share\\x', false),
  's-guid': symlink('\\??\\Volume{01234567-89ab-cdef-0123-456789abcdef}\\x', false),
  's-above-root': symlink('..\\..\\x', true),
};

test('junctions and symlinks: inside the volume as relative symlinks, anything else left out', async (t) => {
  const sets = Object.entries(LINKS).map(([name, b]) => `${name.startsWith('j') ? 'mkdir' : 'touch'} links/${name}; setfattr -n system.ntfs_reparse_data -v ${hexValue(b)} links/${name}`);
  const image = await volumeWith('links', 16, [], `mkdir -p target links/deeper; echo f > target/f.txt; ${sets.join('; ')}`);
  const { fs, close } = await openImage(image);
  try {
    const links = await nodeAt(fs, 'links');
    const listed = Object.fromEntries(await Promise.all((await fs.list(links)).map(async (e) => [e.name, e.node.type === 'symlink' ? await fs.readlink(e.node) : e.node.type])));
    t.deepEqual(listed, { deeper: 'dir', 'j-abs': '../target', 's-abs': '../TARGET/f.txt', 's-rel': '../target/f.txt', 's-here': '.' });
    t.is((await fs.lookup(links, 'J-ABS'))?.node.size, '../target'.length);
    t.is(await fs.lookup(links, 's-unc'), undefined);
    t.is(await fs.lookup(links, 'j-other-letter'), undefined);
  } finally {
    await close();
  }
  const volume = await openFileVolume(image, 0, (await stat(image)).size);
  try {
    const onD = await openNtfs(volume, { letter: 'D' });
    const names = (await onD.list(await nodeAt(onD, 'links'))).map((e) => e.name).sort();
    t.deepEqual(names, ['deeper', 'j-other-letter', 's-rel']);
  } finally {
    await volume.close();
  }
});

test('WOF files show their logical size and their reparse point and stream, but no data; EFS files no data', async (t) => {
  const image = await volumeWith('wof', 16, ['streams_interface=xattr'], `
head -c 10000 /dev/urandom > wof.bin
setfattr -n user.WofCompressedData -v 0x0102030405 wof.bin
setfattr -n system.ntfs_reparse_data -v ${hexValue(WOF_REPARSE)} wof.bin
echo secret > enc.txt
echo plain > plain.txt`);
  await markEncrypted(image, 'enc.txt');
  const { fs, close } = await openImage(image);
  try {
    const wof = await nodeAt(fs, 'wof.bin');
    t.is(wof.type, 'file');
    t.is(wof.size, 10000);
    await t.throwsAsync(fs.data(wof), { instanceOf: UnsupportedDataError });
    t.deepEqual(await fs.reparseData(wof), WOF_REPARSE);
    t.deepEqual(await fileBytes((await fs.streamData(wof, 'WofCompressedData'))!), Buffer.from([1, 2, 3, 4, 5]));
    const enc = await nodeAt(fs, 'enc.txt');
    t.is(enc.size, 7);
    t.is(enc.dosAttributes! & 0x4000, 0x4000);
    await t.throwsAsync(fs.data(enc), { instanceOf: UnsupportedDataError });
    t.is((await fileBytes(await fs.data(await nodeAt(fs, 'plain.txt')))).toString(), 'plain\n');
    t.is(await fs.reparseData(await nodeAt(fs, 'plain.txt')), undefined);
  } finally {
    await close();
  }
});

/**
 * Sets FILE_ATTRIBUTE_ENCRYPTED in the $STANDARD_INFORMATION of the root's file `name` in the
 * image (ntfs-3g refuses to set it): the record lies in $MFT's first run on a fresh volume.
 */
async function markEncrypted(image: string, name: string): Promise<void> {
  const { fs, close } = await openImage(image);
  const id = (await nodeAt(fs, name)).id;
  await close();
  const bytes = await readFile(image);
  const boot = parseBootSector(bytes.subarray(0, 512), bytes.length);
  const at = boot.mftLcn * boot.clusterSize + id * boot.mftRecordSize;
  if (bytes.toString('latin1', at, at + 4) !== 'FILE' || bytes.readUInt32LE(at + 0x2c) !== id) throw new Error(`record ${id} is not at ${at}`);
  const si = at + bytes.readUInt16LE(at + 0x14);
  if (bytes.readUInt32LE(si) !== AttrType.standardInformation) throw new Error(`record ${id} does not start with $STANDARD_INFORMATION`);
  const flags = si + bytes.readUInt16LE(si + 0x14) + 0x20;
  bytes.writeUInt32LE(bytes.readUInt32LE(flags) | 0x4000, flags);
  await writeFile(image, bytes);
}

test('link targets: drive-absolute ones relative to the link folder, climbs above the root and other volumes refused', (t) => {
  const fold = (a: string, b: string): boolean => a.toUpperCase() === b.toUpperCase();
  const path = (b: Buffer, folder: string[], letter = 'C'): string | undefined => relativeLinkPath(parseLinkTarget(b)!, letter, folder, fold);
  t.is(path(junction('\\??\\C:\\'), ['a', 'b']), '../..');
  t.is(path(junction('\\??\\C:\\a\\b\\c'), ['a', 'b']), 'c');
  t.is(path(symlink('\\??\\c:\\A\\x', false), ['a', 'b']), '../x');
  t.is(path(symlink('\\\\?\\C:\\a', false), []), 'a');
  t.is(path(symlink('\\??\\C:\\a', false), ['a']), '.');
  t.is(path(symlink('..\\..', true), ['a']), undefined);
  t.is(path(symlink('..\\..', true), ['a', 'b']), '../..');
  t.is(path(symlink('x\\.\\y', true), []), 'x/y');
  t.is(path(symlink('\\??\\C:\\a\\..\\b', false), []), undefined);
  t.is(path(junction('\\??\\D:\\x'), []), undefined);
  t.is(path(junction('\\??\\D:\\x'), [], 'd'), 'x');
  t.is(path(symlink('\\??\\UNC\\server\\share', false), []), undefined);
  t.is(path(junction('\\??\\Volume{01234567-89ab-cdef-0123-456789abcdef}\\x'), []), undefined);
  t.is(path(symlink('\\x', true), ['a']), undefined);
  t.is(parseLinkTarget(otherReparse(0x80000017, Buffer.alloc(16))), undefined);
});

test('64-bit fields, NT times and data run fields read without BigInt equal the BigInt reading, or are refused past 2^53', (t) => {
  const nt = (b: Buffer): number => {
    const v = b.readBigUInt64LE(0) - 116444736000000000n;
    return Number(v / 10000n) + Number(v % 10000n) / 10000;
  };
  const safe = (v: bigint): number | undefined => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined);
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: 1, max: 8 }), (v, size) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(v);
      t.is(readSafeU64(b, 0), safe(v));
      t.is(readSafeI64(b, 0), safe(b.readBigInt64LE(0)));
      t.is(ntTimeToMs(b, 0), nt(b));
      const signed = BigInt.asIntN(8 * size, v);
      const run = Buffer.concat([Buffer.from([0x10 | size]), b.subarray(0, size), Buffer.alloc(8)]);
      const want = safe(signed);
      if (want === undefined || want <= 0) t.throws(() => decodeRuns(run, 0, 0, 1 << 30, 2 ** 52), { instanceOf: NtfsFormatError });
      else t.is(decodeRuns(run, 0, 0, want - 1, 2 ** 53)[0]!.length, want);
    }),
    { seed: 64, numRuns: 20000 },
  );
});
