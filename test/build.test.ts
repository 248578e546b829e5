// `synthvhd build` on UrBackup storages built from real disks (btrfs and XFS), checked with
// qemu-img, vhdiinfo, sgdisk, the strict container checker and the files in every partition.
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { vhdxPayloadOffset } from '../src/container/vhdx.js';
import { synthvhd } from './helpers/cli.js';
import { checkDynamicVhd, checkVhd, checkVhdx } from './helpers/container-check.js';
import { attachDisk, buildDisk, hashFilesOnDisk } from './helpers/disk-builder.js';
import type { ExpectedDisk } from './helpers/expected-disk.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { requireTool, run } from './helpers/run.js';
import { vhdimountEquals } from './helpers/container-read.js';
import * as sc from './helpers/scenarios.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { writeImageBackup } from './helpers/urbackup-storage.js';

for (const tool of ['qemu-img', 'vhdiinfo', 'vhdimount', 'fusermount', 'sgdisk', 'mkntfs', 'mkfs.btrfs', 'mkfs.xfs', 'mcopy']) requireTool(tool);

let btrfs: LoopFs;
let xfs: LoopFs;
let work: string;
let storage: string;
let xstorage: string;
let before: Record<string, string>;
let xbefore: Record<string, string>;
const s = {} as {
  uefi: sc.Scenario;
  incr: sc.Scenario;
  bios: sc.Scenario;
  legacy: sc.Scenario;
  kn: sc.Scenario;
  grub: sc.Scenario;
  whole: sc.Scenario;
  xuefi: sc.Scenario;
  big: { folder: string };
};

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-build-'));
  btrfs = await makeLoopFs('btrfs', 6144);
  xfs = await makeLoopFs('xfs', 2048);
  storage = join(btrfs.mountpoint, 'storage');
  xstorage = join(xfs.mountpoint, 'storage');
  await mkdir(storage);
  await mkdir(xstorage);
  const ctx = { storage, workDir: work, kind: 'btrfs' as const };
  const { base, incremental } = await sc.uefiGptIncremental(ctx);
  s.uefi = base;
  s.incr = incremental;
  s.bios = await sc.biosMbr(ctx);
  s.legacy = await sc.legacyMbr(ctx);
  s.kn = await sc.gpt4Kn(ctx);
  s.grub = await sc.grubMbr(ctx);
  s.whole = await sc.wholeDisk(ctx);
  s.xuefi = await sc.uefiGpt({ storage: xstorage, workDir: work, kind: 'plain' });
  // A 2 GiB disk for the reflink space check.
  const big = await buildDisk({ table: 'gpt', sizeMiB: 2048, partitions: [{ type: 'ntfs', sizeMiB: 2000, label: 'Data', files: { 'data.bin': 8 << 20 } }] }, work);
  s.big = await writeImageBackup({ storage, client: 'big-pc', time: '240201-1000', letter: 'D', disk: big, partition: 1, kind: 'btrfs' });
  before = await treeFingerprint(storage);
  xbefore = await treeFingerprint(xstorage);
});

test.after.always(async () => {
  await btrfs?.cleanup();
  await xfs?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

test.after('the backup storage is byte-for-byte unchanged', async (t) => {
  t.deepEqual(await treeFingerprint(storage), before);
  t.deepEqual(await treeFingerprint(xstorage), xbefore);
});

function folderOf(sc: sc.Scenario, letter: string): string {
  return sc.images[letter]!.folder;
}

async function build(t: ExecutionContext, source: string, out: string, ...args: string[]): Promise<void> {
  const r = await synthvhd(['build', source, '-o', out, ...args]);
  t.is(r.code, 0, r.stderr);
}

async function identical(t: ExecutionContext, expected: ExpectedDisk, file: string, format: 'vpc' | 'vhdx'): Promise<void> {
  const out = await run('qemu-img', ['compare', '-f', 'raw', '-F', format, expected.path, file]);
  t.regex(out, /Images are identical/);
  const info = JSON.parse(await run('qemu-img', ['info', '--output=json', '-f', format, file])) as { 'virtual-size': number };
  t.true(info['virtual-size'] >= expected.sizeBytes && info['virtual-size'] - expected.sizeBytes < 1 << 20, `size ${info['virtual-size']} vs ${expected.sizeBytes}`);
}

async function sgdiskClean(t: ExecutionContext, vhd: string, sectorSize: 512 | 4096): Promise<void> {
  const size = (await stat(vhd)).size - 512;
  const dev = (await run('losetup', ['--find', '--show', '-r', '-b', String(sectorSize), '--sizelimit', String(size), vhd])).trim();
  try {
    const out = await run('sgdisk', ['-v', dev]);
    t.regex(out, /No problems found/, out);
  } finally {
    await run('losetup', ['-d', dev]);
  }
}

async function filesMatch(t: ExecutionContext, sc: sc.Scenario, vhd: string, parts: readonly number[]): Promise<void> {
  for (const index of parts) {
    const part = sc.disk.partitions[index - 1]!;
    const files = sc.files[index]!;
    t.deepEqual(await hashFilesOnDisk(vhd, sc.disk.sectorSize, part, Object.keys(files), work), files, `partition ${index}`);
  }
}

/** The four kinds `build` writes, with the options and name that pick each, and how QEMU opens it. */
const KINDS = [
  { kind: 'vhd', suffix: '.vhd', args: [], qemu: 'vpc', type: 'Fixed' },
  { kind: 'vhdx', suffix: '.vhdx', args: [], qemu: 'vhdx', type: 'Dynamic' },
  { kind: 'vhd-dynamic', suffix: '-dynamic.vhd', args: ['--format', 'vhd-dynamic'], qemu: 'vpc', type: 'Dynamic' },
  { kind: 'vhdx-fixed', suffix: '-fixed.vhdx', args: ['--format', 'vhdx-fixed'], qemu: 'vhdx', type: 'Fixed' },
] as const;

function strictCheck(kind: (typeof KINDS)[number]['kind'], path: string): Promise<string[]> {
  return kind === 'vhd' ? checkVhd(path) : kind === 'vhd-dynamic' ? checkDynamicVhd(path) : checkVhdx(path);
}

/**
 * Every kind of the disk: identical to the restored disk and to the fixed VHD for qemu-img,
 * clean for qemu-img check, vhdiinfo and the strict checker; every file of every partition read
 * from a loop device, over the fixed VHD and over each dynamic file converted back to raw.
 */
async function fullCheck(t: ExecutionContext, sc: sc.Scenario, source: string, expected: ExpectedDisk, parts: readonly number[], args: string[] = []): Promise<void> {
  const base = join(work, t.title.replace(/\W+/g, '_'));
  const vhd = `${base}.vhd`;
  for (const k of KINDS) {
    const out = `${base}${k.suffix}`;
    await build(t, source, out, ...args, ...k.args);
    await identical(t, expected, out, k.qemu);
    if (k.kind !== 'vhd') t.regex(await run('qemu-img', ['compare', '-f', 'vpc', '-F', k.qemu, vhd, out]), /Images are identical/, k.kind);
    if (k.qemu === 'vhdx') await run('qemu-img', ['check', '-f', 'vhdx', out]);
    t.deepEqual(await strictCheck(k.kind, out), [], k.kind);
    t.regex(await run('vhdiinfo', [out]), new RegExp(`Disk type\\s*: ${k.type}`), k.kind);
    if (k.type === 'Dynamic') {
      const raw = `${out}.raw`;
      await run('qemu-img', ['convert', '-f', k.qemu, '-O', 'raw', out, raw]);
      await filesMatch(t, sc, raw, parts);
      await rm(raw);
      await rm(out);
    }
  }
  if (sc.disk.table === 'gpt') await sgdiskClean(t, vhd, 512);
  await filesMatch(t, sc, vhd, parts);
  for (const k of KINDS) await rm(`${base}${k.suffix}`, { force: true });
}

test('GPT UEFI disk: C: with its ESP assembled (found by the heuristic)', async (t) => {
  await fullCheck(t, s.uefi, folderOf(s.uefi, 'C'), s.uefi.expected['C+ESP']!, [3, 1]);
});

test('GPT UEFI disk: --no-partners builds C: alone, ESP stays zero', async (t) => {
  await fullCheck(t, s.uefi, folderOf(s.uefi, 'C'), s.uefi.expected.C!, [3], ['--no-partners']);
});

test('BIOS MBR disk: System Reserved (SYSVOL) + C:', async (t) => {
  await fullCheck(t, s.bios, folderOf(s.bios, 'C'), s.bios.expected['C+SYSVOL']!, [2, 1]);
});

test('incremental (btrfs snapshot of the previous backup) gives the changed files', async (t) => {
  await fullCheck(t, s.incr, folderOf(s.incr, 'C'), s.incr.expected['C-incr']!, [3]);
});

test('MBR disk with GRUB extra data', async (t) => {
  await fullCheck(t, s.grub, folderOf(s.grub, '_dev_sda1'), s.grub.expected._dev_sda1!, [1]);
});

test('whole-disk (v100) image', async (t) => {
  await fullCheck(t, s.whole, folderOf(s.whole, 'C'), s.whole.expected.C!, []);
  const vhd = join(work, 'whole.vhd');
  await build(t, s.whole.images.C!.raw, vhd);
  await filesMatch(t, s.whole, vhd, [1].filter((i) => s.whole.files[i]));
});

test('legacy disk with C: at sector 63: reflink always fails clearly, auto copies correctly', async (t) => {
  const src = folderOf(s.legacy, 'C');
  const out = join(btrfs.mountpoint, 'legacy.vhd');
  const r = await synthvhd(['build', src, '-o', out, '--reflink', 'always']);
  t.is(r.code, 1);
  t.regex(r.stderr, /Image_C_.*\.raw.*(align|offset)/i);
  await t.throwsAsync(stat(out));
  const auto = await synthvhd(['build', src, '-o', out, '--reflink', 'auto']);
  t.is(auto.code, 0, auto.stderr);
  t.regex(auto.stderr, /copied/);
  await identical(t, s.legacy.expected.C!, out, 'vpc');
  await filesMatch(t, s.legacy, out, [1]);
  await rm(out);
});

test('4Kn GPT disk: only a .vhdx, with 4096-byte logical sectors', async (t) => {
  const src = folderOf(s.kn, 'C');
  const vhd = join(work, 'kn.vhd');
  const r = await synthvhd(['build', src, '-o', vhd]);
  t.is(r.code, 1);
  t.regex(r.stderr, /4096-byte sectors.*\.vhdx/);
  await t.throwsAsync(stat(vhd));
  t.is((await synthvhd(['build', src, '-o', vhd, '--format', 'vhd-dynamic'])).code, 1);
  const vhdx = join(work, 'kn.vhdx');
  const fixed = join(work, 'kn-fixed.vhdx');
  await build(t, src, vhdx);
  await build(t, src, fixed, '--format', 'vhdx-fixed');
  for (const [file, type] of [[vhdx, 'Dynamic'], [fixed, 'Fixed']] as const) {
    t.deepEqual(await checkVhdx(file), []);
    const info = await run('vhdiinfo', [file]);
    t.regex(info, /Bytes per sector\s*: 4096/);
    t.regex(info, new RegExp(`Disk type\\s*: ${type}`));
    t.regex(info, new RegExp(`Media size\\s*:.*\\(${s.kn.expected.C!.sizeBytes} bytes\\)`));
  }
  // The fixed payload is the disk, byte for byte (qemu-img 7.2 cannot open 4Kn VHDX)...
  const p = vhdxPayloadOffset(s.kn.expected.C!.sizeBytes, 4096);
  await run('cmp', ['-n', String(s.kn.expected.C!.sizeBytes), `--ignore-initial=${p}:0`, fixed, s.kn.expected.C!.path]);
  // ...and libvhdi reads the dynamic one as the same disk (the disk is under its 4 GiB limit).
  t.true(await vhdimountEquals(vhdx, s.kn.expected.C!.path), 'vhdimount shows the restored disk');
  const loop = await attachDisk(s.kn.expected.C!.path, 4096, { readOnly: true });
  try {
    t.regex(await run('sgdisk', ['-v', loop.device]), /No problems found/);
  } finally {
    await loop.detach();
  }
});

test('reflink on btrfs: a 2 GiB disk built on the same filesystem adds under 1 MiB, in every kind', async (t) => {
  await run('sync', []);
  for (const k of KINDS) {
    const ext = k.kind;
    const out = join(btrfs.mountpoint, `big${k.suffix}`);
    const started = Date.now();
    await build(t, s.big.folder, out, '--reflink', 'always', ...k.args);
    t.log(`${ext}: built in ${Date.now() - started} ms`);
    await run('sync', []);
    const du = await run('btrfs', ['filesystem', 'du', '--raw', '-s', out]);
    const [total, exclusive] = du.trim().split('\n').at(-1)!.trim().split(/\s+/).map(Number) as [number, number];
    t.log(`${ext}: btrfs du total ${total}, exclusive ${exclusive}`);
    t.true(exclusive < 1 << 20, `exclusive ${exclusive} bytes`);
    t.true(total > 8 << 20, 'the data is shared, not missing');
    await rm(out);
  }
});

test('reflink on XFS: built on the same filesystem with --reflink always, identical, little new space', async (t) => {
  const out = join(xfs.mountpoint, 'uefi.vhdx');
  await run('sync', []);
  const used = async (): Promise<number> => Number((await run('df', ['--output=used', '-B1', xfs.mountpoint])).trim().split('\n')[1]);
  const u0 = await used();
  await build(t, folderOf(s.xuefi, 'C'), out, '--reflink', 'always');
  await run('sync', []);
  const added = (await used()) - u0;
  t.log(`XFS space added: ${added} bytes`);
  t.true(added < 2 << 20, `${added} bytes`);
  await identical(t, s.xuefi.expected['C+ESP']!, out, 'vhdx');
  await rm(out);
});
