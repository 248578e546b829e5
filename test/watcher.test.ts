// Changes UrBackup makes to a storage show in the mount within 5 s, found by the inotify watcher
// alone: every server here runs with a safety-net rescan of an hour. On a filesystem where
// inotify sees nothing (a FUSE mirror), the server says so once and polls instead.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { type BuiltDisk, buildDisk } from './helpers/disk-builder.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { run } from './helpers/run.js';
import { ServeTracker, eventually, forceUnmount } from './helpers/serve-process.js';
import { type StorageKind, writeImageBackup } from './helpers/urbackup-storage.js';
import { StorageWatcher } from '../src/serve/storage-watcher.js';

const FUSE_MIRROR = fileURLToPath(new URL('./helpers/fuse-mirror.js', import.meta.url));
/** The bound for a change to show. */
const SHOWS_WITHIN_MS = 5000;
/** Long enough that only the watcher can be what found a change. */
const NO_SAFETY_NET = ['--safety-scan', '3600'];

let fs: LoopFs | undefined;
let work = '';
let disk: BuiltDisk;
let mirror: ChildProcess | undefined;
let mirrorMount = '';
const tracker = new ServeTracker();

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-watch-'));
  fs = await makeLoopFs('btrfs', 1024);
  // Partition 1 stands for the ESP, partition 2 for C: (no filesystems: only names and sizes matter here).
  disk = await buildDisk({ table: 'gpt', sizeMiB: 12, partitions: [{ sizeMiB: 4, type: 'msr' }, { sizeMiB: 4, type: 'msr' }] }, work);
});

test.after.always(async () => {
  await tracker.cleanup();
  mirror?.kill('SIGTERM');
  if (mirrorMount) await forceUnmount(mirrorMount);
  await disk?.cleanup();
  await fs?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

async function storageOf(name: string): Promise<string> {
  const s = join(fs!.mountpoint, name);
  await mkdir(s, { recursive: true });
  return s;
}

interface Image {
  storage: string;
  client: string;
  time: string;
  letter?: string;
  kind?: StorageKind;
  complete?: boolean;
}

const image = (i: Image): ReturnType<typeof writeImageBackup> =>
  writeImageBackup({ storage: i.storage, client: i.client, time: i.time, letter: i.letter ?? 'C', disk, partition: i.letter === 'ESP' ? 1 : 2, kind: i.kind ?? 'btrfs', complete: i.complete ?? true });

const listing = (m: string): Promise<string> => run('ls', ['-R', m]).catch(() => '');
const shows = (m: string, re: RegExp): Promise<boolean> => eventually(async () => re.test(await listing(m)), SHOWS_WITHIN_MS);
const gone = (m: string, re: RegExp): Promise<boolean> => eventually(async () => !re.test(await listing(m)), SHOWS_WITHIN_MS);

async function deleteSubvolume(folder: string): Promise<void> {
  await run('btrfs', ['property', 'set', '-ts', folder, 'ro', 'false']);
  await run('btrfs', ['subvolume', 'delete', folder]);
}

test.serial('new and finished image folders, ZFS-style links, deleted subvolumes and renamed clients show within 5 s, by the watcher', async (t) => {
  const storage = await storageOf('live');
  await image({ storage, client: 'pc1', time: '240101-0100' });
  const m = await tracker.mountpoint(work, 'mnt-live');
  const srv = await tracker.serve(['--storage', storage, '--mount', m, '--mode', 'passthrough', ...NO_SAFETY_NET]);
  t.regex(await listing(m), /240101-0100_Image_C\.vhdx/);

  await image({ storage, client: 'pc1', time: '240102-0100' });
  t.true(await shows(m, /240102-0100_Image_C\.vhd\b/), 'a new subvolume image folder');

  await image({ storage, client: 'pc3', time: '240102-0200' });
  // The image's folder of files lists first (docs/browsing.md §1).
  t.true(await shows(m, /pc3:\n240102-0200_Image_C\n240102-0200_Image_C\.vhd/), 'a new client folder');

  // As UrBackup makes one: an empty subvolume first, the .raw and .raw.mbr written into it, the .raw.sync last.
  const lateFolder = join(storage, 'pc1', '240103-0100_Image_C');
  await run('btrfs', ['subvolume', 'create', lateFolder]);
  await new Promise((r) => setTimeout(r, 1500));
  const staged = await image({ storage: await storageOf('staging'), client: 'pc1', time: '240103-0100', kind: 'plain', complete: false });
  const lateRaw = join(lateFolder, basename(staged.raw));
  for (const ext of ['', '.mbr']) await run('cp', ['--reflink=always', staged.raw + ext, lateRaw + ext]);
  await new Promise((r) => setTimeout(r, 1500));
  t.notRegex(await listing(m), /240103-0100/, 'an image without .raw.sync is not shown');
  await writeFile(`${lateRaw}.sync`, '');
  t.true(await shows(m, /240103-0100_Image_C\.vhd/), 'the .raw.sync appears later');

  // ZFS: the dataset is mounted elsewhere, the link is written as <folder>_new and renamed into place.
  const datasets = await storageOf('zfs-datasets');
  const zfs = await image({ storage: datasets, client: 'pc1', time: '240104-0100', kind: 'plain' });
  const link = join(storage, 'pc1', basename(zfs.folder));
  await symlink(zfs.folder, `${link}_new`);
  await rename(`${link}_new`, link);
  t.true(await shows(m, /240104-0100_Image_C\.vhd/), 'a ZFS-style symlinked image folder');

  await deleteSubvolume(join(storage, 'pc1', '240102-0100_Image_C'));
  t.true(await gone(m, /240102-0100/), 'a deleted subvolume');

  await rename(join(storage, 'pc1'), join(storage, 'pc2'));
  t.true(await eventually(async () => /\/pc2:$/m.test(await listing(m)) && !/\/pc1:$/m.test(await listing(m)), SHOWS_WITHIN_MS), 'a renamed client folder');
  // The disks (beside them, each image's folder of files: docs/browsing.md §1).
  t.deepEqual((await readdir(join(m, 'pc2'))).filter((n) => /\.vhdx?$/.test(n)).sort(), ['240101-0100_Image_C.vhd', '240101-0100_Image_C.vhdx', '240103-0100_Image_C.vhd', '240103-0100_Image_C.vhdx', '240104-0100_Image_C.vhd', '240104-0100_Image_C.vhdx']);

  // The kernel keeps a folder's listing (FOPEN_CACHE_DIR) and checks it against the folder's mtime,
  // the newest backup's: a backup older than that leaves it unchanged, so the rescan drops the listing.
  await image({ storage, client: 'pc2', time: '231201-0100' });
  t.true(await shows(m, /231201-0100_Image_C\.vhd\b/), 'a backup older than the newest, in a folder listed before');

  t.notRegex(srv.log(), /instead of watching/);
  t.is(await srv.stop(), 0);
});

/** A backup_server.db (UrBackup's table layout, urbackup-raw-format.md §1.4) associating `assoc` (main folder → partner folder). */
async function writeDatabase(path: string, client: string, folders: string[], assoc: [string, string][]): Promise<void> {
  const id = (f: string): number => folders.indexOf(f) + 1;
  const sql = [
    'CREATE TABLE clients (id INTEGER PRIMARY KEY, name TEXT);',
    'CREATE TABLE backup_images (id INTEGER PRIMARY KEY, clientid INTEGER, backuptime DATE, path TEXT, complete INTEGER, letter TEXT);',
    'CREATE TABLE assoc_images (img_id INTEGER, assoc_id INTEGER);',
    `INSERT INTO clients (id, name) VALUES (1, '${client}');`,
    ...folders.map((f) => `INSERT INTO backup_images VALUES (${id(f)}, 1, CURRENT_TIMESTAMP, '/media/backup/${client}/${f}/Image_${f.split('_Image_')[1]}_${f.slice(0, 11)}.raw', 1, '${f.split('_Image_')[1]}');`),
    ...assoc.map(([a, b]) => `INSERT INTO assoc_images VALUES (${id(a)}, ${id(b)});`),
  ].join('\n');
  await run('sqlite3', [path], { input: sql });
}

test.serial('the database copy replaced: partners regroup within 5 s, by the watcher', async (t) => {
  const storage = await storageOf('with-db');
  // The ESP is newer than C:, so the heuristic does not pair them; only the database can.
  const c = await image({ storage, client: 'pc', time: '240201-0100' });
  const esp = await image({ storage, client: 'pc', time: '240201-0200', letter: 'ESP' });
  const folders = [basename(c.folder), basename(esp.folder)];
  await mkdir(join(storage, 'urbackup'));
  const db = join(storage, 'urbackup', 'backup_server.db');
  await writeDatabase(db, 'pc', folders, []);
  const m = await tracker.mountpoint(work, 'mnt-db');
  const srv = await tracker.serve(['--storage', storage, '--mount', m, '--mode', 'passthrough', ...NO_SAFETY_NET]);
  t.regex(await listing(m), /240201-0200_Image_ESP\.vhd/, 'the ESP is a disk of its own');
  // UrBackup's nightly copy: written next to the old one, then renamed over it.
  await writeDatabase(`${db}.new`, 'pc', folders, [[folders[0]!, folders[1]!]]);
  await rename(`${db}.new`, db);
  // Its disk goes; its folder of files stays beside C:'s (docs/browsing.md §1).
  t.true(await gone(m, /_Image_ESP\.vhd/), 'the ESP went into the C: disk');
  t.regex(await listing(m), /240201-0100_Image_C\.vhd/);
  t.is(await srv.stop(), 0);
});

test.serial('on a filesystem without inotify events (a FUSE mirror) the server polls, says so once, and new backups still show', async (t) => {
  const underlying = await storageOf('mirrored');
  await image({ storage: underlying, client: 'pc', time: '240301-0100' });
  mirrorMount = join(work, 'mirror');
  await mkdir(mirrorMount);
  const proc = spawn(process.execPath, [FUSE_MIRROR, underlying, mirrorMount], { stdio: ['ignore', 'pipe', 'inherit'] });
  mirror = proc;
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.once('data', () => resolve());
    proc.once('exit', (code) => reject(new Error(`FUSE mirror exited (${code})`)));
  });
  const m = await tracker.mountpoint(work, 'mnt-mirror');
  const srv = await tracker.serve(['--storage', mirrorMount, '--mount', m, '--mode', 'passthrough', ...NO_SAFETY_NET]);
  t.regex(await listing(m), /240301-0100_Image_C\.vhd/);
  await image({ storage: underlying, client: 'pc', time: '240302-0100' });
  t.true(await shows(m, /240302-0100_Image_C\.vhd/), 'a new backup behind the mirror');
  await deleteSubvolume(join(underlying, 'pc', '240301-0100_Image_C'));
  t.true(await gone(m, /240301-0100/), 'a deleted one');
  t.is(srv.log().match(/is on FUSE, where inotify does not see changes made elsewhere: scanning the storage every 2 s instead of watching it/g)?.length, 1, srv.log());
  t.is(await srv.stop(), 0);
});

test('a folder first watched after the rescan that found it is read once more: what changed in it before its watch raised no event', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-watch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const seen: string[][] = [];
  const watcher = new StorageWatcher((dirs) => seen.push([...dirs]), (why) => t.fail(why));
  t.teardown(() => watcher.close());
  const settled = (): Promise<void> => new Promise((r) => setTimeout(r, 500));
  await watcher.sync(new Map([[dir, false]]));
  await settled();
  t.deepEqual(seen, [], 'the first sync follows the full scan: nothing to read again');
  const client = join(dir, 'client');
  await mkdir(client);
  await settled();
  t.deepEqual(seen, [[dir]], 'a new folder is an event of its parent');
  // Between the rescan of `dir` and the watch on `client`: no event can tell of this file.
  await writeFile(join(client, 'image.raw.sync'), '');
  await watcher.sync(new Map([[dir, false], [client, false]]));
  await settled();
  t.deepEqual(seen, [[dir], [client]]);
});
