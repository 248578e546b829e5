// `synthvhd extract` (issue 22.4, docs/browsing.md §4): a file or a whole folder out of an image
// backup on a btrfs storage, against ntfs-3g reading the same volume: every name, type, size,
// link count, mtime and byte; a reflinked extract on the storage's btrfs holds under 1 MiB of
// its own; errors name what is wrong and leave nothing behind.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { synthvhd } from './helpers/cli.js';
import { buildDisk } from './helpers/disk-builder.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { hexValue, symlink } from './helpers/ntfs-reparse.js';
import { makeNtfsImage, mountedTree, withNtfs3g, type Tree } from './helpers/ntfs-volume.js';
import { run } from './helpers/run.js';
import { ServeTracker } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { type WrittenImage, writeImageBackup } from './helpers/urbackup-storage.js';
import { wofCompressedData, wofReparsePoint } from './helpers/wimlib.js';

const NTFS_MIB = 64;
const BIG_MIB = 24;
const POPULATE = String.raw`
set -e
mkdir -p docs/deep 'empty folder'
head -c ${BIG_MIB}M /dev/urandom > docs/big.bin
echo hello > docs/note.txt
ln docs/note.txt docs/deep/hard-note.txt
truncate -s 10M docs/sparse.bin
dd if=/dev/urandom of=docs/sparse.bin bs=4096 count=3 seek=100 conv=notrunc status=none
: > empty.txt
touch -d '2001-02-03 04:05:06.789' docs/note.txt
touch docs/link
setfattr -n system.ntfs_reparse_data -v "$LINK" docs/link
`;
const WOF_DATA = Buffer.concat(Array.from({ length: 20 }, (_, i) => Buffer.concat([Buffer.from(`row ${i} `.repeat(500)), randomBytes(300)])));

let fs: LoopFs;
let work: string;
let storage: string;
let image: WrittenImage;
let expected: Tree;
let bigBytes: Buffer;
let before: Record<string, string>;
const tracker = new ServeTracker();

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-extract-'));
  fs = await makeLoopFs('btrfs', 1024);
  storage = join(fs.mountpoint, 'storage');
  const ntfs = join(work, 'ntfs.img');
  await makeNtfsImage(ntfs, NTFS_MIB);
  await withNtfs3g(ntfs, join(work, 'ntfs-rw'), ['streams_interface=xattr'], async (mnt) => {
    await run('bash', ['-c', `cd "${mnt}" && ${POPULATE}`], { env: { ...process.env, LINK: hexValue(symlink('note.txt', true)) } });
    const wof = join(mnt, 'wof.bin');
    await run('truncate', ['-s', String(WOF_DATA.length), wof]);
    await run('setfattr', ['-n', 'user.WofCompressedData', '-v', hexValue(wofCompressedData(WOF_DATA, 2)), wof]);
    await run('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', hexValue(wofReparsePoint(2)), wof]);
  });
  expected = await withNtfs3g(ntfs, join(work, 'ntfs-ro'), ['ro'], async (mnt) => {
    bigBytes = await readFile(join(mnt, 'docs/big.bin'));
    const docs = await mountedTree(join(mnt, 'docs'));
    return { lines: prefix(docs.lines, '/docs', { '/docs': 'dir', '/empty folder': 'dir', '/empty.txt': (await mountedTree(mnt)).lines['/empty.txt']! }), mtimes: prefix(docs.mtimes, '/docs', {}) } as Tree;
  });
  const disk = await buildDisk({ table: 'gpt', sizeMiB: NTFS_MIB + 2, partitions: [{ sizeMiB: NTFS_MIB, type: 'msr' }] }, work);
  await run('dd', [`if=${ntfs}`, `of=${disk.path}`, 'bs=1M', `seek=${disk.partitions[0]!.startByte}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
  image = await writeImageBackup({ storage, client: 'pc1', time: '240520-0143', letter: 'C', disk, partition: 1, kind: 'plain' });
  await disk.cleanup();
  await run('sync', []);
  before = await treeFingerprint(storage);
});

guardStorage(() => ({ tracker, fs, work, storage, before }));

function prefix<T>(r: Record<string, T>, at: string, extra: Record<string, T>): Record<string, T> {
  return { ...extra, ...Object.fromEntries(Object.entries(r).map(([k, v]) => [`${at}${k}`, v])) };
}

test('a large file extracted with --reflink always onto the storage’s btrfs: the same bytes, under 1 MiB of its own', async (t) => {
  const out = join(fs.mountpoint, 'big.bin');
  const r = await synthvhd(['extract', image.folder, '/docs/big.bin', '-o', out, '--reflink', 'always']);
  t.is(r.code, 0, r.stderr);
  t.true((await readFile(out)).equals(bigBytes));
  await run('sync', []);
  const du = await run('btrfs', ['filesystem', 'du', '--raw', '-s', out]);
  const [total, exclusive] = du.trim().split('\n').at(-1)!.trim().split(/\s+/).map(Number) as [number, number];
  t.true(exclusive < 1 << 20, `exclusive ${exclusive} bytes`);
  t.true(total >= BIG_MIB << 20, 'the data is shared, not missing');
  t.true(Math.abs(Number((await stat(out, { bigint: true })).mtimeNs) / 1e6 - expected.mtimes['/docs/big.bin']!) < 0.01, 'its mtime kept');
});

test('the whole volume from the .raw: every name, type, size, link, mtime and byte as ntfs-3g shows them', async (t) => {
  const out = join(work, 'all');
  const r = await synthvhd(['extract', image.raw, '/', '-o', out]);
  t.is(r.code, 0, r.stderr);
  const got = await mountedTree(out);
  t.true((await readFile(join(out, 'wof.bin'))).equals(WOF_DATA), 'the WOF file decoded');
  delete got.lines['/wof.bin'];
  const differ = [...new Set([...Object.keys(got.lines), ...Object.keys(expected.lines)])].filter((p) => got.lines[p] !== expected.lines[p]);
  t.deepEqual(differ.map((p) => `${p}: ${got.lines[p]} | ${expected.lines[p]}`), []);
  const off = Object.keys(expected.mtimes).filter((p) => !(Math.abs(got.mtimes[p]! - expected.mtimes[p]!) < 0.01));
  t.deepEqual(off, []);
  t.is((await stat(join(out, 'docs/note.txt'))).ino, (await stat(join(out, 'docs/deep/hard-note.txt'))).ino, 'hard links kept');
  t.true((await lstat(join(out, 'docs/link'))).isSymbolicLink());
});

test('inspect and list name the filesystem of the image', async (t) => {
  const text = await synthvhd(['inspect', image.folder]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^ {2}filesystem of 240520-0143_Image_C: NTFS$/m);
  const json = await synthvhd(['inspect', image.raw, '--json']);
  t.deepEqual(JSON.parse(json.stdout).filesystems, [{ folder: '240520-0143_Image_C', name: 'NTFS', browsable: true }]);
  const list = await synthvhd(['list', '--storage', storage]);
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, /^ {2}filesystem of 240520-0143_Image_C: NTFS$/m);
  const listJson = await synthvhd(['list', '--storage', storage, '--json']);
  t.deepEqual((JSON.parse(listJson.stdout) as { disks: { filesystems: unknown }[] }).disks.map((d) => d.filesystems), [[{ folder: '240520-0143_Image_C', name: 'NTFS', browsable: true }]]);
});

test('errors: a path not in the volume, a folder that exists, --reflink always of compressed data; nothing left behind', async (t) => {
  const dest = join(work, 'errors');
  await mkdir(dest);
  const missing = await synthvhd(['extract', image.folder, '/docs/nope.txt', '-o', join(dest, 'x')]);
  t.not(missing.code, 0, missing.stderr);
  t.regex(missing.stderr, /\/docs\/nope\.txt: no such file or folder/);
  await mkdir(join(dest, 'docs'));
  const exists = await synthvhd(['extract', image.folder, '/docs', '-o', join(dest, 'docs')]);
  t.not(exists.code, 0, exists.stderr);
  t.regex(exists.stderr, /it exists/);
  const wof = await synthvhd(['extract', image.folder, '/wof.bin', '-o', join(dest, 'wof.bin'), '--reflink', 'always']);
  t.not(wof.code, 0, wof.stderr);
  t.regex(wof.stderr, /compressed/);
  t.deepEqual(await readdir(dest), ['docs']);
  t.deepEqual(await readdir(join(dest, 'docs')), []);
});
