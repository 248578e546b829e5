// Whole machines: SYSVOL/ESP partners from UrBackup's database or the heuristic, --unique-ids,
// and disks over 2 TiB.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { synthvhd } from './helpers/cli.js';
import { qemuRead } from './helpers/container-read.js';
import type { BuiltDisk } from './helpers/disk-builder.js';
import { hashFilesOnDisk } from './helpers/disk-builder.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { serializeMbrData } from './helpers/mbr-writer.js';
import { run } from './helpers/run.js';
import * as sc from './helpers/scenarios.js';
import { eventually, forceUnmount, startServe } from './helpers/serve-process.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { captureMbrData, writeImageBackup } from './helpers/urbackup-storage.js';

interface ListedDisk {
  folder: string;
  identity: string;
  images: { folder: string }[];
  partnersFrom: string | null;
  files: { name: string; size: number }[];
  diskSize: number;
}

let fs: LoopFs;
let work: string;
let storage: string; // UEFI + BIOS, no database
let dbStorage: string; // the same machines with a database copy in <storage>/urbackup
let ambiguous: string; // two ESP candidates
let uefi: sc.Scenario;
let bios: sc.Scenario;
let incr: sc.Scenario;
let dbUefi: sc.Scenario;
let dbBios: sc.Scenario;
let before: Record<string, string>;

const base = (p: string): string => p.split('/').at(-1)!;
let builds = 0;

/** A backup_server.db with UrBackup's real table layout (server_tables.sql), paths from another mount point. */
async function writeDatabase(path: string, rows: { id: number; client: string; folder: string; letter: string; time: string }[], assoc: [number, number][]): Promise<void> {
  const sql = [
    'PRAGMA journal_mode=WAL;',
    'CREATE TABLE clients (id INTEGER PRIMARY KEY, name TEXT, lastbackup DATE, lastseen DATE, lastbackup_image DATE);',
    `CREATE TABLE backup_images (id INTEGER PRIMARY KEY, clientid INTEGER REFERENCES clients(id) ON DELETE CASCADE, backuptime DATE DEFAULT CURRENT_TIMESTAMP,
      incremental INTEGER, incremental_ref INTEGER, path TEXT, complete INTEGER, running DATE DEFAULT CURRENT_TIMESTAMP, size_bytes INTEGER,
      version INTEGER DEFAULT 0, letter TEXT, synctime INTEGER, archived INTEGER DEFAULT 0, archive_timeout INTEGER, mounttime INTEGER DEFAULT 0, delete_pending INTEGER DEFAULT 0);`,
    'CREATE TABLE assoc_images (img_id INTEGER REFERENCES backup_images(id) ON DELETE CASCADE, assoc_id INTEGER REFERENCES backup_images(id) ON DELETE CASCADE);',
    ...[...new Set(rows.map((r) => r.client))].map((c, i) => `INSERT INTO clients (id, name) VALUES (${i + 1}, '${c}');`),
    ...rows.map((r) => {
      const ts = r.folder.slice(0, 11);
      const raw = `/media/old-backup-disk/urbackup/${r.client}/${r.folder}/Image_${r.letter.replace(':', '')}_${ts}.raw`;
      return `INSERT INTO backup_images (id, clientid, backuptime, incremental, incremental_ref, path, complete, size_bytes, version, letter)
        VALUES (${r.id}, (SELECT id FROM clients WHERE name='${r.client}'), CURRENT_TIMESTAMP, 0, 0, '${raw}', 1, 0, 0, '${r.letter}');`;
    }),
    ...assoc.map(([a, b]) => `INSERT INTO assoc_images (img_id, assoc_id) VALUES (${a}, ${b});`),
  ].join('\n');
  await run('sqlite3', [path], { input: sql });
}

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-partners-'));
  fs = await makeLoopFs('btrfs', 4096);
  storage = join(fs.mountpoint, 'storage');
  dbStorage = join(fs.mountpoint, 'db-storage');
  ambiguous = join(fs.mountpoint, 'ambiguous');
  for (const d of [storage, dbStorage, ambiguous]) await mkdir(d);
  const ctx = { storage, workDir: work, kind: 'btrfs' as const };
  const u = await sc.uefiGptIncremental(ctx);
  uefi = u.base;
  incr = u.incremental;
  bios = await sc.biosMbr(ctx);

  // Same machines again; the database copy names the partners. The ESP is made to look like it
  // belongs to nothing by time (newer than C:), so only the database can pair it.
  const dctx = { storage: dbStorage, workDir: work, kind: 'btrfs' as const };
  dbUefi = await sc.uefiGpt(dctx);
  dbBios = await sc.biosMbr(dctx);
  await mkdir(join(dbStorage, 'urbackup'));
  const f = (s: sc.Scenario, l: string): string => base(s.images[l]!.folder);
  await writeDatabase(
    join(dbStorage, 'urbackup', 'backup_server.db'),
    [
      { id: 1, client: dbUefi.client, folder: f(dbUefi, 'C'), letter: 'C:', time: '' },
      { id: 2, client: dbUefi.client, folder: f(dbUefi, 'ESP'), letter: 'ESP', time: '' },
      { id: 3, client: dbBios.client, folder: f(dbBios, 'C'), letter: 'C:', time: '' },
      { id: 4, client: dbBios.client, folder: f(dbBios, 'SYSVOL'), letter: 'SYSVOL', time: '' },
    ],
    [[1, 2], [3, 4]],
  );

  // Two ESP images in the window of one C: image.
  const a = await sc.uefiGpt({ storage: ambiguous, workDir: work, kind: 'btrfs' });
  await writeImageBackup({ storage: ambiguous, client: a.client, time: '240101-1157', letter: 'ESP', disk: a.disk, partition: 1, kind: 'btrfs' });
  before = await storagesFingerprint();
});

async function storagesFingerprint(): Promise<Record<string, string>> {
  return { ...(await treeFingerprint(storage)), ...(await treeFingerprint(dbStorage)), ...(await treeFingerprint(ambiguous)) };
}

test.after.always(async () => {
  await fs?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

async function list(t: ExecutionContext, dir: string, ...args: string[]): Promise<{ disks: ListedDisk[]; warnings: string[] }> {
  const r = await synthvhd(['list', '--storage', dir, '--json', ...args]);
  t.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { disks: ListedDisk[]; warnings: string[] };
}

async function assertAssembled(t: ExecutionContext, s: sc.Scenario, letters: [string, string], expected: string, extra: string[] = []): Promise<void> {
  const out = join(work, `assembled-${++builds}.vhd`);
  const r = await synthvhd(['build', s.images.C!.folder, '-o', out, ...extra]);
  t.is(r.code, 0, r.stderr);
  t.regex(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'vpc', s.expected[expected]!.path, out]), /identical/);
  for (const l of letters) {
    const index = s.images[l]!.partition as number;
    const files = s.files[index]!;
    t.deepEqual(await hashFilesOnDisk(out, 512, s.disk.partitions[index - 1]!, Object.keys(files), work), files, `${l} files`);
  }
  await rm(out);
}

test('without a database: C: disks take their ESP/SYSVOL by the heuristic; partners are not listed alone', async (t) => {
  const { disks, warnings } = await list(t, storage);
  t.deepEqual(warnings, []);
  const folders = disks.map((d) => d.folder);
  t.false(folders.some((f) => /_Image_(ESP|SYSVOL)$/.test(f)), folders.join(' '));
  const c = disks.find((d) => d.folder === base(uefi.images.C!.folder))!;
  t.deepEqual(c.images.map((i) => i.folder), [base(uefi.images.C!.folder), base(uefi.images.ESP!.folder)]);
  t.is(c.partnersFrom, 'heuristic');
  // The incremental C: an hour later has no ESP of its own in its window.
  t.deepEqual(disks.find((d) => d.folder === base(incr.images.C!.folder))!.images.length, 1);
  const text = await synthvhd(['list', '--storage', storage]);
  t.regex(text.stdout, /assembled from .*_Image_C \+ .*_Image_ESP \(partners from the heuristic\)/);
  await assertAssembled(t, uefi, ['C', 'ESP'], 'C+ESP');
  await assertAssembled(t, bios, ['C', 'SYSVOL'], 'C+SYSVOL');
});

test('with the database copy in the storage: partners come from assoc_images, matched by folder although the paths are from another mount', async (t) => {
  const { disks, warnings } = await list(t, dbStorage);
  t.deepEqual(warnings, []);
  for (const [s, p] of [[dbUefi, 'ESP'], [dbBios, 'SYSVOL']] as const) {
    const d = disks.find((x) => x.folder === base(s.images.C!.folder))!;
    t.is(d.partnersFrom, 'database');
    t.deepEqual(d.images.map((i) => i.folder), [base(s.images.C!.folder), base(s.images[p]!.folder)]);
  }
  await assertAssembled(t, dbUefi, ['C', 'ESP'], 'C+ESP');
  await assertAssembled(t, dbBios, ['C', 'SYSVOL'], 'C+SYSVOL');
  // --urbackup-db names it explicitly too.
  const explicit = await list(t, dbStorage, '--urbackup-db', join(dbStorage, 'urbackup', 'backup_server.db'));
  t.is(explicit.disks.filter((d) => d.partnersFrom === 'database').length, 2);
});

test('two ESP candidates: not guessed, C: is served alone and both ESPs are disks of their own', async (t) => {
  const { disks, warnings } = await list(t, ambiguous);
  t.true(warnings.some((w) => /2 ESP images could belong to this disk.*not guessing/.test(w)), warnings.join('\n'));
  const c = disks.find((d) => d.folder.endsWith('_Image_C'))!;
  t.is(c.images.length, 1);
  t.is(disks.filter((d) => d.folder.endsWith('_Image_ESP')).length, 2);
});

test('--unique-ids: two restore points of one GPT disk get different GUIDs, valid tables, identical data', async (t) => {
  const ids: string[] = [];
  for (const s of [uefi, incr]) {
    const plain = join(work, `${s.images.C!.time}-plain.vhd`);
    const uniq = join(work, `${s.images.C!.time}-uniq.vhd`);
    t.is((await synthvhd(['build', s.images.C!.folder, '-o', plain])).code, 0);
    const r = await synthvhd(['build', s.images.C!.folder, '-o', uniq, '--unique-ids']);
    t.is(r.code, 0, r.stderr);
    const size = (await stat(uniq)).size - 512;
    const dev = (await run('losetup', ['--find', '--show', '-r', '--sizelimit', String(size), uniq])).trim();
    try {
      t.regex(await run('sgdisk', ['-v', dev]), /No problems found/);
      ids.push(/Disk identifier \(GUID\): (\S+)/.exec(await run('sgdisk', ['-p', dev]))![1]!);
      const guids = await run('sgdisk', ['-i', '3', dev]);
      t.notRegex(guids, new RegExp((/Partition unique GUID: (\S+)/.exec(await run('sgdisk', ['-i', '3', plain])) ?? ['', 'none'])[1]!));
    } finally {
      await run('losetup', ['-d', dev]);
    }
    // Only the GPT areas differ: the partitions are byte-identical.
    for (const p of s.disk.partitions) await run('cmp', ['-n', String(p.sizeBytes), `--ignore-initial=${p.startByte}:${p.startByte}`, plain, uniq]);
    await rm(plain);
    await rm(uniq);
  }
  t.not(ids[0], ids[1]);
});

test('--unique-ids on an MBR disk changes only the disk signature', async (t) => {
  const plain = join(work, 'bios-plain.vhd');
  const uniq = join(work, 'bios-uniq.vhd');
  t.is((await synthvhd(['build', bios.images.C!.folder, '-o', plain])).code, 0);
  t.is((await synthvhd(['build', bios.images.C!.folder, '-o', uniq, '--unique-ids'])).code, 0);
  const diff = await run('sh', ['-c', `cmp -l '${plain}' '${uniq}' | awk '{print $1}' | tr '\\n' ' '; true`]);
  const offsets = diff.trim().split(/\s+/).filter(Boolean).map(Number);
  // cmp counts from 1: bytes 441..444 are the signature at 440..443; the rest is the VHD footer (its checksum stays: same id).
  t.true(offsets.length > 0);
  t.true(offsets.every((o) => o >= 441 && o <= 444), offsets.join(','));
  // The dynamic kinds hold the same rewritten disk.
  for (const [name, format, qemu] of [['bios-uniq.vhdx', 'vhdx', 'vhdx'], ['bios-uniq-dynamic.vhd', 'vhd-dynamic', 'vpc']] as const) {
    const out = join(work, name);
    t.is((await synthvhd(['build', bios.images.C!.folder, '-o', out, '--format', format, '--unique-ids'])).code, 0);
    t.regex(await run('qemu-img', ['compare', '-f', 'vpc', '-F', qemu, uniq, out]), /identical/, format);
    await rm(out);
  }
  await rm(plain);
  await rm(uniq);
});

test.after('the storages are unchanged by all of this', async (t) => {
  t.deepEqual(await storagesFingerprint(), before);
});

test('a sparse 2.6 TiB GPT disk: .vhdx only, exact size, far-away bytes right, quick to list and open', async (t) => {
  const big = join(fs.mountpoint, 'big');
  await mkdir(big);
  // The original disk: 2.6 TiB sparse, one partition almost filling it, markers far inside.
  const diskPath = join(work, 'huge-disk.img');
  const size = 2662 * 1024 ** 3;
  await run('truncate', ['-s', String(size), diskPath]);
  await run('sgdisk', ['-n', '1:2048:0', '-t', '1:0700', '-c', '1:Data', diskPath]);
  const first = 2048 * 512;
  const partBytes = Number(/ (\d+) sectors/.exec(await run('sgdisk', ['-i', '1', diskPath]))![1]) * 512;
  const disk: BuiltDisk = {
    path: diskPath,
    sizeBytes: size,
    sectorSize: 512,
    table: 'gpt',
    partitions: [{ index: 1, startByte: first, sizeBytes: partBytes, volumeBytes: partBytes, blockBytes: 4096, type: 'ntfs', fs: 'none', label: 'Data', files: {} }],
    cleanup: async () => undefined,
  };
  const markers = [0, 1024 ** 4, 2.5 * 1024 ** 4, Math.floor(partBytes / 4096) * 4096 - 4096];
  // The image folder written by hand: hashing 2.6 TiB of zeros for .raw.hash would take hours.
  const folder = join(big, 'huge-pc', '240301-1000_Image_D');
  await mkdir(folder, { recursive: true });
  const raw = join(folder, 'Image_D_240301-1000.raw');
  await writeFile(`${raw}.mbr`, serializeMbrData(await captureMbrData(disk, 1)));
  const fh = await open(raw, 'w');
  await fh.truncate(524288 + partBytes);
  for (const m of markers) await fh.write(Buffer.from(`marker at ${m}`.padEnd(4096, '.')), 0, 4096, 524288 + m);
  await fh.close();
  await writeFile(`${raw}.sync`, '');

  const { disks } = await list(t, big);
  const files = disks[0]!.files as { name: string; size: number; presentBlocks?: number }[];
  t.deepEqual(files.map((f) => f.name), ['240301-1000_Image_D.vhdx', '240301-1000_Image_D-fixed.vhdx']);
  // The dynamic VHDX stores block 0 (MBR, primary GPT), one block per marker, the last marker's
  // shared with the backup GPT in the last MiB; and its BAT of 21 MiB.
  t.is(files[0]!.presentBlocks, markers.length + 1);
  t.true(files[0]!.size < 32 << 20, `dynamic VHDX of ${files[0]!.size} bytes`);
  const m = join(work, 'mnt-huge');
  await mkdir(m);
  const srv = await startServe(['--storage', big, '--mount', m, '--mode', 'passthrough', '--formats', 'vhd,vhdx,vhd-dynamic,vhdx-fixed']);
  try {
    let started = Date.now();
    const ls = await run('ls', ['-l', join(m, 'huge-pc')]);
    t.log(`ls -l of the mount: ${Date.now() - started} ms (with process start)`);
    t.regex(ls, /240301-1000_Image_D\.vhdx/);
    t.regex(ls, /240301-1000_Image_D-fixed\.vhdx/);
    t.notRegex(ls, /\.vhd\b/);
    for (const name of ['240301-1000_Image_D.vhdx', '240301-1000_Image_D-fixed.vhdx']) {
      const vhdx = join(m, 'huge-pc', name);
      t.is((await stat(vhdx)).size, files.find((f) => f.name === name)!.size, name);
      started = Date.now();
      await run('head', ['-c', '1', vhdx]);
      t.log(`${name}: open + first byte: ${Date.now() - started} ms (with process start)`);
      started = Date.now();
      const info = JSON.parse(await run('qemu-img', ['info', '--output=json', '-f', 'vhdx', vhdx])) as { 'virtual-size': number };
      t.is(info['virtual-size'], size);
      t.log(`${name}: qemu-img info: ${Date.now() - started} ms`);
      // Read through QEMU's VHDX driver: libvhdi 20210425 reads zeros past 4 GiB.
      for (const mk of markers) {
        t.is((await qemuRead(vhdx, 'vhdx', first + mk, 20)).toString('latin1'), `marker at ${mk}`.padEnd(20, '.').slice(0, 20), `${name} at ${mk}`);
      }
    }
  } finally {
    t.is(await srv.stop(), 0);
    await forceUnmount(m);
  }
});

test('UrBackup 2.5.x image of a volume over 2 TiB: the volume ends where the synthetic GPT says, not at the padded file end', async (t) => {
  // docs/urbackup-raw-format.md §2.3: file size = R + 1024 with R = (524288 + volume) rounded strictly up to
  // 1 MiB; a synthetic GPT at 512 whose one entry, "VOLUME BACKUP", ends at LBA (524288 + volume)/512.
  const volume = 2 * 1024 ** 4 + 7 * 4096;
  const R = (Math.floor((524288 + volume) / 2 ** 20) + 1) * 2 ** 20;
  const dir = join(work, 'v25x', 'client', '240401-1000_Image_E');
  await mkdir(dir, { recursive: true });
  const raw = join(dir, 'Image_E_240401-1000.raw');
  const fh = await open(raw, 'w');
  await fh.truncate(R + 1024);
  const head = Buffer.alloc(1024 + 128);
  head.write('EFI PART', 512, 'latin1');
  head.writeBigUInt64LE(1024n, 1024 + 32);
  head.writeBigUInt64LE(BigInt((524288 + volume) / 512), 1024 + 40);
  head.write('VOLUME BACKUP', 1024 + 56, 'utf16le');
  await fh.write(head, 0, head.length, 0);
  await fh.close();
  // The original disk: GPT with one partition just large enough.
  const diskPath = join(work, 'v25x-disk.img');
  await run('truncate', ['-s', String(volume + 64 * 2 ** 20), diskPath]);
  await run('sgdisk', ['-n', '1:2048:0', '-t', '1:0700', diskPath]);
  const mbrData = await captureMbrData({ path: diskPath, sizeBytes: volume + 64 * 2 ** 20, sectorSize: 512, table: 'gpt', partitions: [{ index: 1, startByte: 2048 * 512, sizeBytes: volume, volumeBytes: volume, blockBytes: 4096, type: 'ntfs', fs: 'none', label: '', files: {} }], cleanup: async () => undefined }, 1);
  await writeFile(`${raw}.mbr`, serializeMbrData(mbrData));
  await writeFile(`${raw}.sync`, '');
  const r = await synthvhd(['inspect', dir, '--json']);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { partitions: { number: number; volumeLength: number | null }[] };
  t.is(j.partitions[0]!.volumeLength, volume);
});

test('rows still in the database -wal file (the server has the database open) are honoured', async (t) => {
  const db = join(work, 'wal', 'backup_server.db');
  await mkdir(join(work, 'wal'));
  const f = (l: string): string => base(dbUefi.images[l]!.folder);
  await writeDatabase(db, [
    { id: 1, client: dbUefi.client, folder: f('C'), letter: 'C:', time: '' },
    { id: 2, client: dbUefi.client, folder: f('ESP'), letter: 'ESP', time: '' },
  ], []);
  // A writer that keeps its connection open: its insert stays in backup_server.db-wal.
  const writer = spawn('sqlite3', [db], { stdio: ['pipe', 'ignore', 'inherit'] });
  writer.stdin.write('PRAGMA wal_autocheckpoint=0;\nINSERT INTO assoc_images (img_id, assoc_id) VALUES (1, 2);\n');
  try {
    t.true(await eventually(async () => (await stat(`${db}-wal`).then((s) => s.size, () => 0)) > 0, 5000), 'the insert is in the WAL');
    const { disks } = await list(t, dbStorage, '--urbackup-db', db);
    t.is(disks.find((d) => d.folder === f('C'))!.partnersFrom, 'database');
    // Nothing was written next to the database (no -shm of ours; the writer made its own).
    t.deepEqual((await readdir(join(work, 'wal'))).sort(), ['backup_server.db', 'backup_server.db-shm', 'backup_server.db-wal']);
  } finally {
    writer.stdin.end();
    await new Promise((r) => writer.once('exit', r));
  }
});
