// Reflink mode for the files inside a backup (docs/browsing.md §3): a large file is cloned into
// the cache folder at its open, shared by the opens of the file, and the kernel reads the clone
// itself (FUSE passthrough), so its reads go on while the server is stopped; without passthrough the server reads the clone; a
// cache folder that cannot clone from the storage means reads through the server, said once.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { buildDisk } from './helpers/disk-builder.js';
import { heldReader, readWhileStopped } from './helpers/held-reader.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { makeNtfsImage, withNtfs3g } from './helpers/ntfs-volume.js';
import { run } from './helpers/run.js';
import { eventually, type ServeProcess, ServeTracker } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { imageFolderName, writeImageBackup } from './helpers/urbackup-storage.js';

const CLIENT = 'pc1';
const TIME = '240520-0143';
const NTFS_MIB = 48;
const MiB = 2 ** 20;
/** Above the clone threshold (CLONE_MIN, 8 MiB); the second ends inside a cluster. */
const FILES: Record<string, Buffer> = { 'big.bin': randomBytes(12 * MiB), 'big2.bin': randomBytes(9 * MiB + 123), 'small.txt': Buffer.from('small\n') };

let fs: LoopFs;
let work: string;
let storage: string;
let cache: string;
let before: Record<string, string>;
const tracker = new ServeTracker();

test.before(async () => {
  fs = await makeLoopFs('btrfs', 512);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-browse-reflink-'));
  storage = join(fs.mountpoint, 'storage');
  cache = join(fs.mountpoint, 'cache');
  const ntfs = join(work, 'ntfs.img');
  await makeNtfsImage(ntfs, NTFS_MIB);
  await withNtfs3g(ntfs, join(work, 'ntfs-rw'), [], async (mnt) => {
    for (const [name, bytes] of Object.entries(FILES)) await writeFile(join(mnt, name), bytes);
  });
  for (const [name, bytes] of Object.entries(FILES)) await writeFile(join(work, name), bytes);
  const disk = await buildDisk({ table: 'gpt', sizeMiB: NTFS_MIB + 4, partitions: [{ sizeMiB: NTFS_MIB, type: 'msr' }] }, work);
  await run('dd', [`if=${ntfs}`, `of=${disk.path}`, 'bs=1M', `seek=${disk.partitions[0]!.startByte}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
  await writeImageBackup({ storage, client: CLIENT, time: TIME, letter: 'C', disk, partition: 1, kind: 'btrfs' });
  await disk.cleanup();
  before = await treeFingerprint(storage);
});

guardStorage(() => ({ tracker, fs, work, storage, before }));

async function serve(name: string, cacheDir: string, env: NodeJS.ProcessEnv = process.env): Promise<{ dir: string; server: ServeProcess }> {
  const mount = await tracker.mountpoint(work, name);
  const server = await tracker.serve(['--storage', storage, '--mount', mount, '--mode', 'reflink', '--cache-dir', cacheDir, '--formats', 'vhdx'], undefined, env);
  return { dir: join(mount, CLIENT, imageFolderName(TIME, 'C')), server };
}

/** The clones serve holds open: its descriptors of unnamed files in the cache folder. */
async function clonesHeld(pid: number): Promise<number> {
  let n = 0;
  for (const fd of await readdir(`/proc/${pid}/fd`)) if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')).startsWith(`${cache}/#`)) n++;
  return n;
}

async function sameBytes(dir: string): Promise<string[]> {
  const differ: string[] = [];
  for (const [name, bytes] of Object.entries(FILES)) if (!(await readFile(join(dir, name))).equals(bytes)) differ.push(name);
  return differ;
}

test.serial('a large file is cloned at its open and read by the kernel itself, even while the server is stopped', async (t) => {
  const { dir, server } = await serve('mnt-stop', cache);
  // A first close: the kernel's first FLUSH is answered ENOSYS, after which it asks no more
  // (the reader's close would wait for the stopped server otherwise).
  t.deepEqual(await readFile(join(dir, 'small.txt')), FILES['small.txt']);
  // The first open of the file; read after the stop (a read before would make the reader's fstat
  // ask the server: the kernel drops a passthrough file's atime after each read).
  const [first, second] = [0, 1].map(() => heldReader(t, join(dir, 'big.bin'), join(work, 'big.bin')));
  await Promise.all([first!.opened, second!.opened]);
  t.is(await clonesHeld(server.proc.pid!), 1, 'two opens of the file share its clone');
  t.regex(await readWhileStopped(t, server.proc, first!), /same/, server.log());
  t.regex(await second!.go(), /same/);
  t.true(await eventually(async () => (await clonesHeld(server.proc.pid!)) === 0, 5000), 'the clone is closed with its last open');
  t.deepEqual(await sameBytes(dir), []);
  // The clone has no name: nothing of it stays in the cache folder.
  t.deepEqual((await readdir(cache, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name), []);
});

test.serial('on a kernel without FUSE passthrough the server reads the clone', async (t) => {
  const served = await serve('mnt-nopass', cache, { ...process.env, SYNTHVHD_KERNEL_WITHOUT: 'passthrough' });
  t.deepEqual(await sameBytes(served.dir), []);
});

test.serial('a cache folder that cannot clone from the storage: the files are read through the server, said once a volume', async (t) => {
  const elsewhere = join(work, 'cache-elsewhere');
  await mkdir(elsewhere);
  const served = await serve('mnt-noclone', elsewhere);
  t.deepEqual(await sameBytes(served.dir), []);
  t.is(served.server.log().split('\n').filter((l) => l.includes('cannot clone its files')).length, 1, served.server.log());
});
