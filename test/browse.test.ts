// The files inside each backup, through the real FUSE mount (issue 22, docs/browsing.md): an
// image folder beside each disk file shows its NTFS volume's tree as ntfs-3g shows the same
// volume (every name, type, size, link count, mtime and byte), WOF files decoded, owner and
// modes those of the disk file, and a volume no reader opens shows why in a text file.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parseBootSector } from '../src/filesystem/ntfs/boot-sector.js';
import { openNtfs } from '../src/filesystem/ntfs/ntfs-filesystem.js';
import { openFileVolume } from '../src/io/file-volume.js';
import { buildDisk } from './helpers/disk-builder.js';
import { cachedBytes } from './helpers/page-cache.js';
import { hexValue, symlink } from './helpers/ntfs-reparse.js';
import { makeNtfsImage, mountedTree, withNtfs3g, type Tree } from './helpers/ntfs-volume.js';
import { mountReadOnly } from './helpers/ext4-volume.js';
import { requireTool, run } from './helpers/run.js';
import { addSambaUser, freePort, startSmbd } from './helpers/samba-server.js';
import { ServeTracker, type ServeProcess } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { realRawPath, unpackRealFixture } from './helpers/real-fixture.js';
import { RAW_VOLUME_OFFSET } from '../src/urbackup/raw-file.js';
import { getxattr, lastErrno } from '../src/sys/libc.js';
import { constants } from 'node:os';
import { imageFolderName, writeImageBackup } from './helpers/urbackup-storage.js';
import { wofCompressedData, wofReparsePoint } from './helpers/wimlib.js';

const CLIENT = 'pc1';
const TIME = '240520-0143';
const NTFS_MIB = 48;
/** hidden.txt's creation time, 2002-03-04 05:06:07 UTC, as ntfs-3g's system.ntfs_crtime_be takes it (a big-endian NTTIME). */
const CRTIME_BE = '0x01c1c33a4a96c980';
/** Files of every kind the mount shows, written through ntfs-3g. */
const POPULATE = String.raw`
set -e
mkdir -p Users/alice/Documents 'empty folder' big
: > empty.txt
echo hello > Users/alice/Documents/note.txt
head -c 3000000 /dev/urandom > Users/alice/Documents/3m.bin
ln Users/alice/Documents/note.txt hard-note.txt
truncate -s 10M sparse.bin
dd if=/dev/urandom of=sparse.bin bs=4096 count=3 seek=100 conv=notrunc status=none
echo x > 'ünïcödé € 名前.txt'
(cd big && for i in $(seq 1 2000); do echo $i > "entry-$i.txt"; done)
touch -d '2001-02-03 04:05:06.789' Users/alice/Documents/note.txt
touch link
setfattr -n system.ntfs_reparse_data -v "$LINK" link
echo secret > hidden.txt
setfattr -n system.ntfs_attrib_be -v 0x00000022 hidden.txt
setfattr -n system.ntfs_crtime_be -v ${CRTIME_BE} hidden.txt
`;
/** The WOF file's bytes: compressible, over several LZX chunks. */
const WOF_DATA = Buffer.concat(Array.from({ length: 20 }, (_, i) => Buffer.concat([Buffer.from(`row ${i} `.repeat(500)), randomBytes(300)])));

let work: string;
let storage: string;
let expected: Tree;
let before: Record<string, string>;
let mount: string;
let server: ServeProcess;
const tracker = new ServeTracker();

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-browse-'));
  // Samba serves the share as its user: the storage and the mount must be reachable by others.
  await chmod(work, 0o755);
  storage = join(work, 'storage');
  const ntfs = join(work, 'ntfs.img');
  await makeNtfsImage(ntfs, NTFS_MIB);
  await withNtfs3g(ntfs, join(work, 'ntfs-rw'), ['streams_interface=xattr'], async (mnt) => {
    await run('bash', ['-c', `cd "${mnt}" && ${POPULATE}`], { env: { ...process.env, LINK: hexValue(symlink('Users\\alice\\Documents\\note.txt', true)) } });
    await run('truncate', ['-s', String(WOF_DATA.length), join(mnt, 'wof.bin')]);
    await run('setfattr', ['-n', 'user.WofCompressedData', '-v', hexValue(wofCompressedData(WOF_DATA, 1)), join(mnt, 'wof.bin')]);
    await run('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', hexValue(wofReparsePoint(1)), join(mnt, 'wof.bin')]);
  });
  expected = await withNtfs3g(ntfs, join(work, 'ntfs-ro'), ['ro'], withoutWof);
  // A disk with the NTFS volume in partition 1 and, in partition 2, no filesystem at all.
  const disk = await buildDisk({ table: 'gpt', sizeMiB: NTFS_MIB + 20, partitions: [{ sizeMiB: NTFS_MIB, type: 'msr' }, { sizeMiB: 16, type: 'msr' }] }, work);
  await run('dd', [`if=${ntfs}`, `of=${disk.path}`, 'bs=1M', `seek=${disk.partitions[0]!.startByte}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
  await writeImageBackup({ storage, client: CLIENT, time: TIME, letter: 'C', disk, partition: 1, kind: 'plain' });
  await writeImageBackup({ storage, client: CLIENT, time: TIME, letter: 'D', disk, partition: 2, kind: 'plain' });
  // Another client's C: with the MFT record of one file destroyed.
  await corruptRecord(ntfs, 'Users/alice/Documents/3m.bin');
  await run('dd', [`if=${ntfs}`, `of=${disk.path}`, 'bs=1M', `seek=${disk.partitions[0]!.startByte}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
  await writeImageBackup({ storage, client: 'pc2', time: TIME, letter: 'C', disk, partition: 1, kind: 'plain' });
  await disk.cleanup();
  before = await treeFingerprint(storage);
  mount = await tracker.mountpoint(work, 'mnt');
  server = await tracker.serve(['--storage', storage, '--mount', mount, '--mode', 'passthrough', '--formats', 'vhdx', '--allow-other', '--dos-attributes']);
});

guardStorage(() => ({ tracker, fs: undefined, work, storage, before }));

/** The oracle's tree of the volume, less the WOF file (ntfs-3g without its plugin cannot read it). */
async function withoutWof(mnt: string): Promise<Tree> {
  const out: Tree = { lines: {}, mtimes: {} };
  for (const name of await readdir(mnt)) {
    if (name === 'wof.bin') continue;
    const st = await lstat(join(mnt, name), { bigint: true });
    out.mtimes[`/${name}`] = Number(st.mtimeNs) / 1e6;
    if (st.isDirectory()) {
      out.lines[`/${name}`] = 'dir';
      const sub = await mountedTree(join(mnt, name));
      for (const [k, v] of Object.entries(sub.lines)) out.lines[`/${name}${k}`] = v;
      for (const [k, v] of Object.entries(sub.mtimes)) out.mtimes[`/${name}${k}`] = v;
    } else out.lines[`/${name}`] = await fileLine(join(mnt, name));
  }
  return out;
}

/** mountedTree's line of one file or symlink. */
async function fileLine(path: string): Promise<string> {
  const st = await lstat(path);
  if (st.isSymbolicLink()) return `symlink ${st.size} ${await readlink(path)}`;
  return `file ${st.size} ${st.nlink} ${createHash('sha256').update(await readFile(path)).digest('hex')}`;
}

/** Overwrites the magic of the MFT record of `path` in the NTFS image (its record lies in $MFT's first run on a fresh volume). */
async function corruptRecord(image: string, path: string): Promise<void> {
  const size = (await stat(image)).size;
  const volume = await openFileVolume(image, 0, size);
  let id: number;
  try {
    const fs = await openNtfs(volume);
    let node = await fs.root();
    for (const part of path.split('/')) node = (await fs.lookup(node, part))!.node;
    id = node.id;
  } finally {
    await volume.close();
  }
  const fh = await open(image, 'r+');
  try {
    const boot = Buffer.alloc(512);
    await fh.read(boot, 0, 512, 0);
    const b = parseBootSector(boot, size);
    const at = b.mftLcn * b.clusterSize + id * b.mftRecordSize;
    const magic = Buffer.alloc(4);
    await fh.read(magic, 0, 4, at);
    if (magic.toString('latin1') !== 'FILE') throw new Error(`${image}: record ${id} is not at ${at}`);
    await fh.write(Buffer.from('XXXX'), 0, 4, at);
  } finally {
    await fh.close();
  }
}

const imageDir = (letter: string): string => join(mount, CLIENT, imageFolderName(TIME, letter));

test.serial('the client folder shows each image’s folder beside its disk file; no volume is opened before someone looks', async (t) => {
  t.false(/Image_D: its files/.test(server.log()), server.log());
  const names = await readdir(join(mount, CLIENT));
  t.deepEqual(names.sort(), [imageFolderName(TIME, 'C'), `${imageFolderName(TIME, 'C')}.vhdx`, imageFolderName(TIME, 'D'), `${imageFolderName(TIME, 'D')}.vhdx`].sort());
  // Listing the client folder opened nothing: D's note (logged when its volume is opened) is not there yet.
  t.false(/Image_D: its files/.test(server.log()), server.log());
});

test.serial('an image folder shows its NTFS volume as ntfs-3g does: names, types, sizes, links, bytes, mtimes', async (t) => {
  const got = await mountedTree(imageDir('C'));
  const wof = got.lines['/wof.bin'];
  delete got.lines['/wof.bin'];
  delete got.mtimes['/wof.bin'];
  const differ = [...new Set([...Object.keys(got.lines), ...Object.keys(expected.lines)])].filter((p) => got.lines[p] !== expected.lines[p]);
  t.deepEqual(differ.map((p) => `${p}: ${got.lines[p]} | ${expected.lines[p]}`), [], server.log());
  // FUSE attributes carry the mtime to the millisecond here (fuse/protocol.ts Attr), truncated; a
  // double of milliseconds since 1970 is itself off by up to 0.3 µs (a file written 0.1 µs before
  // the next millisecond failed at < 1).
  const off = Object.keys(expected.mtimes).filter((p) => !(Math.abs(got.mtimes[p]! - expected.mtimes[p]!) < 1.001)).map((p) => `${p}: ${got.mtimes[p]} | ${expected.mtimes[p]}`);
  t.deepEqual(off, []);
  t.is(wof?.split(' ')[1], String(WOF_DATA.length));
  t.true((await readFile(join(imageDir('C'), 'wof.bin'))).equals(WOF_DATA), 'the WOF file decoded');
});

test.serial('hard links are one inode; owner and modes are the disk file’s, read-only', async (t) => {
  const a = await stat(join(imageDir('C'), 'hard-note.txt'));
  const b = await stat(join(imageDir('C'), 'Users/alice/Documents/note.txt'));
  t.is(a.ino, b.ino);
  t.is(a.nlink, 2);
  const disk = await stat(join(mount, CLIENT, `${imageFolderName(TIME, 'C')}.vhdx`));
  for (const p of ['', 'Users', 'Users/alice/Documents/3m.bin', 'big/entry-7.txt']) {
    const s = await stat(join(imageDir('C'), p));
    t.is(s.uid, disk.uid, p);
    t.is(s.gid, disk.gid, p);
    const perm = s.mode & 0o777;
    t.is(perm, s.isDirectory() ? (disk.mode & 0o444) | ((disk.mode & 0o444) >> 2) : disk.mode & 0o444, p);
    t.is(perm & 0o222, 0, `${p}: no write bits`);
  }
  const e = await readFile(join(imageDir('C'), 'x-not-there')).catch((err: NodeJS.ErrnoException) => err.code);
  t.is(e, 'ENOENT');
});

test.serial('a folder of 2000 files: ls -l in one pass', async (t) => {
  const started = Date.now();
  const out = await run('ls', ['-l', join(imageDir('C'), 'big')]);
  t.log(`ls -l of 2000 entries: ${Date.now() - started} ms`);
  t.is(out.split('\n').filter((l) => /entry-\d+\.txt$/.test(l)).length, 2000);
});

/** cachedBytes of `path` once an open of it finds no other handle open (at most 50 opens, 20 ms apart). */
async function storedOnceAlone(path: string): Promise<number> {
  let bytes = cachedBytes(path);
  for (let i = 0; i < 50 && bytes === 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
    bytes = cachedBytes(path);
  }
  return bytes;
}

test.serial('a small file is in the page cache once open() returns; not when another open of it may be reading', async (t) => {
  const note = join(imageDir('C'), 'Users/alice/Documents/note.txt');
  const size = (await stat(note)).size;
  // cachedBytes opens the file itself: the first open stores its bytes (docs/browsing.md §4).
  t.is(cachedBytes(note), Math.ceil(size / 4096) * 4096, 'stored by the open');
  const held = await open(note, 'r');
  try {
    await run('sh', ['-c', 'echo 1 > /proc/sys/vm/drop_caches']);
    t.is(cachedBytes(note), 0, 'another handle is open: nothing stored');
  } finally {
    await held.close();
  }
  // The kernel sends RELEASE in the background: an open right after close() may reach serve before it.
  t.is(await storedOnceAlone(note), Math.ceil(size / 4096) * 4096, 'stored again once alone');
  t.is(await readFile(note, 'utf8'), 'hello\n');
});

test.serial('a volume no reader opens shows one text file saying why, logged once', async (t) => {
  const names = await readdir(imageDir('D'));
  t.deepEqual(names, ['CANNOT BROWSE - UNKNOWN.txt']);
  const text = await readFile(join(imageDir('D'), names[0]!), 'utf8');
  t.regex(text, /unknown/);
  t.true(text.includes(`${imageFolderName(TIME, 'D')}.vhdx`), text);
  await readdir(imageDir('D'));
  t.is(server.log().split('\n').filter((l) => l.includes('its files are not shown')).length, 1, server.log());
});

test.serial('over SMB with the shipped share: Explorer’s path, a folder of 2000 files, bytes, case-insensitive names', async (t) => {
  for (const tool of ['smbd', 'smbclient', 'smbpasswd', 'useradd']) requireTool(tool);
  const smbd = await startSmbd({ sharePath: mount, port: await freePort(), dir: join(work, 'smbd') });
  t.teardown(() => smbd.stop());
  const user = await addSambaUser(smbd.conf, `svhd-b${randomBytes(3).toString('hex')}`);
  t.teardown(() => user.remove().catch(() => undefined));
  const smb = (command: string): Promise<string> =>
    run('smbclient', ['//127.0.0.1/backups', '-p', String(smbd.port), '-U', `${user.name}%${user.password}`, '-c', command], { env: { ...process.env, TZ: 'UTC' } });
  const folder = `${CLIENT}\\${imageFolderName(TIME, 'C')}`;
  const big = await smb(`ls "${folder}\\big\\*"`);
  t.is(big.split('\n').filter((l) => /^\s+entry-\d+\.txt\s/.test(l)).length, 2000);
  const local = join(work, 'dl-3m.bin');
  await smb(`get "${folder}\\Users\\alice\\Documents\\3m.bin" "${local}"`);
  t.is(`file 3000000 1 ${createHash('sha256').update(await readFile(local)).digest('hex')}`, expected.lines['/Users/alice/Documents/3m.bin']);
  const note = join(work, 'dl-note.txt');
  await smb(`get "${folder.toUpperCase()}\\USERS\\ALICE\\documents\\NOTE.TXT" "${note}"`);
  t.is(await readFile(note, 'utf8'), 'hello\n');
  // NTFS's hidden and archive bits and creation time, through user.DOSATTRIB (docs/browsing.md §3).
  const hidden = await smb(`allinfo "${folder}\\hidden.txt"`);
  t.regex(hidden, /^attributes: HA \(22\)$/m, hidden);
  t.regex(hidden, /^create_time:\s+Mon Mar  4 05:06:07 2002 UTC$/m, hidden);
  const disk = await smb(`allinfo "${CLIENT}\\${imageFolderName(TIME, 'C')}.vhdx"`);
  t.regex(disk, /^attributes: [A-Z]* \((0|20|80)\)$/m, `the disk file is neither sparse nor compressed: ${disk}`);
});

test.serial('a corrupt record: EIO for that file, one log line naming the backup and the path, the rest works', async (t) => {
  const docs = join(mount, 'pc2', imageFolderName(TIME, 'C'), 'Users/alice/Documents');
  const names = await readdir(docs);
  t.true(names.includes('note.txt') && !names.includes('3m.bin'), names.join(', '));
  for (let i = 0; i < 3; i++) t.is(await stat(join(docs, '3m.bin')).catch((e: NodeJS.ErrnoException) => e.code), 'EIO');
  t.is(await readFile(join(docs, 'note.txt'), 'utf8'), 'hello\n');
  const lines = server.log().split('\n').filter((l) => l.includes('3m.bin'));
  t.is(lines.length, 1, server.log());
  t.true(lines[0]!.startsWith(`pc2/${imageFolderName(TIME, 'C')}/Users/alice/Documents/3m.bin: `), lines[0]);
  t.is((await stat(join(imageDir('C'), 'Users/alice/Documents/3m.bin'))).size, 3_000_000, 'the other backup is whole');
});

test.serial('the genuine UrBackup images (ext4): each image folder shows its volume as the kernel’s ext4 does', async (t) => {
  const real = join(work, 'real');
  await mkdir(real);
  const fx = await unpackRealFixture(real);
  const fingerprint = await treeFingerprint(real);
  const m = await tracker.mountpoint(work, 'mnt-real');
  await tracker.serve(['--storage', real, '--mount', m, '--mode', 'passthrough', '--formats', 'vhdx']);
  for (const img of fx.images) {
    const raw = realRawPath(fx, img);
    const kernel = await mountReadOnly(raw, RAW_VOLUME_OFFSET, (await stat(raw)).size - RAW_VOLUME_OFFSET);
    try {
      const want = await mountedTree(kernel.mountpoint);
      const got = await mountedTree(join(m, img.client, img.folder));
      t.true(Object.keys(want.lines).length > 0, img.folder);
      t.deepEqual(got.lines, want.lines, img.folder);
      // The mount's times are whole milliseconds (Attr.mtime is a Date); ext4 keeps nanoseconds.
      t.deepEqual(Object.keys(want.mtimes).filter((p) => !(Math.abs(want.mtimes[p]! - got.mtimes[p]!) < 1)), [], img.folder);
      // Without --dos-attributes the mount has no extended attributes: the kernel stops asking.
      const file = Object.keys(want.lines).find((p) => want.lines[p]!.startsWith('file '))!;
      t.is(getxattr(join(m, img.client, img.folder, file), 'user.DOSATTRIB', null, 0), -1);
      t.is(lastErrno().errno, constants.errno.EOPNOTSUPP, file);
    } finally {
      await kernel.cleanup();
    }
  }
  t.deepEqual(await treeFingerprint(real), fingerprint, 'the genuine storage is unchanged');
});
