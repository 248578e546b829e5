// The NTFS reader (src/filesystem/ntfs) against ntfs-3g reading the same volume: every name,
// type, size, mtime, link count and byte equal (docs/filesystems-ntfs.md).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { looksLikeNtfs, openNtfs } from '../src/filesystem/ntfs/ntfs-filesystem.js';
import { CorruptVolumeError } from '../src/filesystem/volume-fs.js';
import { openFileVolume } from '../src/io/file-volume.js';
import { fileBytes, makeNtfsImage, mountedTree, mtimeDifferences, readerTree, withNtfs3g, type NtfsGeometry, type Tree } from './helpers/ntfs-volume.js';
import { hexValue, symlink } from './helpers/ntfs-reparse.js';
import { run } from './helpers/run.js';

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
    const listed = await fs.list(big.node);
    for (const e of listed) t.is((await fs.lookup(big.node, e.name.toUpperCase()))?.node.id, e.node.id);
    t.is(await fs.lookup(big.node, 'entry-3001-with-a-longer-name.txt'), undefined);
    t.is((await fs.lookup(root, 'ÜNÏCÖDÉ € 名前.TXT'))?.name, 'ünïcödé € 名前.txt');
    // Listed once, by its long name, not by its DOS 8.3 name.
    t.deepEqual((await fs.list(root)).filter((e) => e.name.startsWith('LONGFI')), []);
    t.is(await fs.lookup(root, '$MFT'), undefined);
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

test('a volume imaged the UrBackup way (inside a .raw from byte 524288) reads the same', async (t) => {
  const image = await populated('raw', {});
  const raw = join(work, 'Image_C_240101-1200.raw');
  await run('dd', [`if=${image}`, `of=${raw}`, 'bs=1M', 'seek=524288', 'oflag=seek_bytes', 'conv=sparse', 'status=none']);
  const expected = await withNtfs3g(image, join(work, 'raw-ro'), ['ro', 'streams_interface=xattr'], mountedTree);
  const size = (await stat(image)).size;
  const volume = await openFileVolume(raw, 524288, size);
  try {
    const fs = await openNtfs(volume);
    sameTree(t, await readerTree(fs), expected);
    const big = (await fs.lookup((await fs.lookup(await fs.root(), 'docs'))!.node, 'deep'))!;
    const data = await fs.data((await fs.lookup(big.node, '3m.bin'))!.node);
    t.is(data.kind, 'layout');
    if (data.kind !== 'layout') return;
    for (const s of data.layout.segments) {
      if (s.kind === 'file') t.true(s.source.path === raw && s.offset >= 524288 && s.offset + s.length <= 524288 + size);
    }
  } finally {
    await volume.close();
  }
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
