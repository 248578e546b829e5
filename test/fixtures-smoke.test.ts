// Checks the fixture builders themselves with independent tools (sgdisk, sfdisk, cmp, mtools,
// ntfs-3g, filefrag, btrfs), so the project's tests can trust the storages they build.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { attachDisk, hashFilesOnDisk, readFileAt, sha256 } from './helpers/disk-builder.js';
import { makeLoopFs, type LoopFs } from './helpers/loopfs.js';
import { realRawPath, unpackRealFixture } from './helpers/real-fixture.js';
import { requireTool, run } from './helpers/run.js';
import * as scenarios from './helpers/scenarios.js';
import type { Scenario, ScenarioContext } from './helpers/scenarios.js';
import { RAW_VOLUME_OFFSET, type WrittenImage } from './helpers/urbackup-storage.js';

let btrfs: LoopFs;
let xfs: LoopFs;
let work: string;

test.before(async () => {
  for (const tool of ['sgdisk', 'sfdisk', 'mkntfs', 'ntfs-3g', 'mkfs.vfat', 'mcopy', 'mkfs.ext4', 'losetup', 'partx', 'btrfs', 'mkfs.xfs', 'filefrag', 'fallocate', 'cmp', 'zstd']) requireTool(tool);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-fixtures-'));
  btrfs = await makeLoopFs('btrfs', 2048);
  xfs = await makeLoopFs('xfs', 2048);
});

test.after.always(async () => {
  await btrfs?.cleanup();
  await xfs?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

function ctx(kind: 'btrfs' | 'plain'): ScenarioContext {
  return { storage: (kind === 'btrfs' ? btrfs : xfs).mountpoint, workDir: work, kind };
}

/** A minimal reader for the `.mbr` head, written from docs/urbackup-raw-format.md §3.1–3.2 for these checks only. */
function mbrHead(b: Buffer): { version: number; device: number; partition: number; strings: Buffer[]; rest: number } {
  let pos = 10;
  const strings: Buffer[] = [];
  for (let i = 0; i < 4; i++) {
    const len = b.readUInt32LE(pos);
    strings.push(b.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  return { version: b[1]!, device: b.readInt32LE(2), partition: b.readInt32LE(6), strings, rest: pos };
}

/** Counts 4 KiB blocks of a `.raw` that hold data but whose `.raw.bitmap` bit (MSB-first, docs/urbackup-raw-format.md §4.2) is clear. */
async function dataBlocksWithoutBit(raw: string, size: number, bitmap: Buffer): Promise<number> {
  let missing = 0;
  const zero = Buffer.alloc(4096);
  for (let off = 0; off < size; off += 1 << 20) {
    const buf = await readFileAt(raw, off, Math.min(1 << 20, size - off));
    for (let b = 0; b < buf.length; b += 4096) {
      const block = (off + b) / 4096;
      const bit = (bitmap[block >> 3]! >> (7 - (block % 8))) & 1;
      if (!bit && !buf.subarray(b, b + 4096).equals(zero.subarray(0, Math.min(4096, buf.length - b)))) missing++;
    }
  }
  return missing;
}

/** What every partition image must look like: names, sizes, synthetic MBR, sidecars, the volume bytes. */
async function checkImage(t: ExecutionContext, s: Scenario, img: WrittenImage): Promise<void> {
  const part = s.disk.partitions.find((p) => p.index === img.partition)!;
  t.is(basename(img.folder), `${img.time}_Image_${img.letter}`);
  t.is(basename(img.raw), `Image_${img.letter}_${img.time}.raw`);
  const size = (await stat(img.raw)).size;
  t.is(size, part.volumeBytes + RAW_VOLUME_OFFSET, `${img.raw}: size = volume + 512 KiB`);
  t.true((await stat(img.raw)).blocks * 512 < size, `${img.raw} is sparse`);
  // The synthetic MBR, read by sfdisk (docs/urbackup-raw-format.md §2.1).
  const dump = JSON.parse(await run('sfdisk', ['-J', img.raw])) as { partitiontable: { label: string; partitions: { start: number; size: number; type: string; bootable?: boolean }[] } };
  t.is(dump.partitiontable.label, 'dos');
  t.deepEqual(dump.partitiontable.partitions.map((p) => [p.start, p.size, p.type, p.bootable]), [[1024, Math.floor(part.volumeBytes / 512), '7', true]]);
  t.deepEqual(await readFileAt(img.raw, 512, RAW_VOLUME_OFFSET - 512), Buffer.alloc(RAW_VOLUME_OFFSET - 512));
  // The volume is the partition's bytes: compare the first 1 MiB with cmp (an independent tool).
  await run('cmp', ['-n', String(1 << 20), '-i', `${RAW_VOLUME_OFFSET}:${part.startByte}`, img.raw, s.disk.path]);
  // Sidecars (docs/urbackup-raw-format.md §1.2, §4.2, §4.4).
  const bitmap = await readFile(img.raw + '.bitmap');
  t.is(bitmap.length, Math.ceil(Math.ceil(size / 4096) / 8));
  t.is(bitmap.subarray(0, 16).toString('hex'), 'ff'.repeat(16), 'header blocks 0..127 are written');
  t.is(await dataBlocksWithoutBit(img.raw, size, bitmap), 0, 'every 4 KiB block with data has its bit (restore sends only those)');
  const hash = await readFile(img.raw + '.hash');
  t.is(hash.length, 32 * Math.ceil(part.volumeBytes / (512 * 1024)));
  t.is(hash.subarray(0, 32).toString('hex'), sha256(await readFileAt(img.raw, RAW_VOLUME_OFFSET, 512 * 1024)));
  t.is((await stat(img.raw + '.sync')).size, 0);
  t.deepEqual((await readdir(img.folder)).sort(), ['', '.bitmap', '.hash', '.mbr', '.sync'].map((e) => basename(img.raw) + e).sort());
  // The .mbr head (docs/urbackup-raw-format.md §3.2): status 1, version, device 0, partition number, mbr_data = the disk's sector 0.
  const mbr = await readFile(img.raw + '.mbr');
  const head = mbrHead(mbr);
  t.is(mbr[0], 1);
  t.is(head.version, s.disk.table === 'gpt' ? 1 : 0);
  t.is(head.device, 0);
  t.is(head.partition, part.index);
  t.deepEqual(head.strings[3], await readFileAt(s.disk.path, 0, 512));
  if (s.disk.table === 'gpt') {
    const lss = s.disk.sectorSize;
    t.is(Number(mbr.readBigInt64LE(head.rest)), lss, 'gpt_header_pos = logical sector size');
    t.is(mbr.readUInt32LE(head.rest + 8), lss);
    t.deepEqual(mbr.subarray(head.rest + 12, head.rest + 12 + lss), await readFileAt(s.disk.path, lss, lss));
  }
  if (img.folder.startsWith(btrfs.mountpoint)) {
    t.is((await run('btrfs', ['property', 'get', '-ts', img.folder, 'ro'])).trim(), 'ro=true');
  }
}

/** An expected disk: valid table, the restored partitions hold their files and equal the `.raw` volumes, the rest is zero. */
async function checkExpected(t: ExecutionContext, s: Scenario, name: string, restored: readonly WrittenImage[]): Promise<void> {
  const exp = s.expected[name]!;
  t.is((await stat(exp.path)).size, exp.sizeBytes);
  await tableOk(t, exp.path, s.disk.table, s.disk.sectorSize);
  t.deepEqual(await readFileAt(exp.path, 0, 512), await readFileAt(s.disk.path, 0, 512));
  for (const p of s.disk.partitions) {
    const img = restored.find((i) => i.partition === p.index);
    if (!img) {
      if (p.startByte < exp.sizeBytes) t.deepEqual(await readFileAt(exp.path, p.startByte, 4096), Buffer.alloc(4096), `${name}: unimaged partition ${p.index} stays zero`);
      continue;
    }
    await run('cmp', ['-n', String(img.volumeBytes), '-i', `${RAW_VOLUME_OFFSET}:${p.startByte}`, img.raw, exp.path]);
    const want = s.files[p.index]!;
    t.deepEqual(await hashFilesOnDisk(exp.path, s.disk.sectorSize, p, Object.keys(want), work), want, `${name}: files of partition ${p.index}`);
  }
}

/** The partition table of a disk image passes `sgdisk -v` (GPT, through a loop device for 4Kn) or `sfdisk -V` (MBR). */
async function tableOk(t: ExecutionContext, path: string, table: 'gpt' | 'mbr', sectorSize: 512 | 4096): Promise<void> {
  if (table === 'mbr') {
    t.regex(await run('sfdisk', ['-V', path]), /No errors detected/, path);
    return;
  }
  const loop = await attachDisk(path, sectorSize, { readOnly: true });
  try {
    t.regex(await run('sgdisk', ['-v', loop.device]), /No problems found/, path);
  } finally {
    await loop.detach();
  }
}

/** FIEMAP physical extents (in filesystem blocks) of a file, with filefrag. */
async function physicalExtents(path: string): Promise<{ start: number; end: number; shared: boolean }[]> {
  const out = await run('filefrag', ['-s', '-v', path]);
  return [...out.matchAll(/^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+\d+:.*$/gm)].map((m) => ({ start: Number(m[1]), end: Number(m[2]), shared: m[0].includes('shared') }));
}

async function incrementalCase(t: ExecutionContext, kind: 'btrfs' | 'plain'): Promise<void> {
  const { base, incremental } = await scenarios.uefiGptIncremental(ctx(kind));
  t.teardown(() => Promise.all([base.disk.cleanup(), incremental.disk.cleanup()]));
  await tableOk(t, base.disk.path, 'gpt', 512);
  for (const img of Object.values(base.images)) await checkImage(t, base, img);
  await checkExpected(t, base, 'C', [base.images.C!]);
  await checkExpected(t, base, 'C+ESP', [base.images.C!, base.images.ESP!]);
  const incr = incremental.images.C!;
  await checkImage(t, incremental, incr);
  await checkExpected(t, incremental, 'C-incr', [incr]);
  t.notDeepEqual(incremental.files[3], base.files[3], 'files on C: changed');
  // (The checks of `base` above ran after the incremental was made: the parent is untouched.)
  const parent = await physicalExtents(base.images.C!.raw);
  const child = await physicalExtents(incr.raw);
  const overlaps = child.filter((c) => parent.some((p) => c.start <= p.end && p.start <= c.end));
  t.true(overlaps.length > 0 && overlaps.every((c) => c.shared), 'incremental shares extents with its parent');
  t.true(child.some((c) => !parent.some((p) => c.start <= p.end && p.start <= c.end)), 'changed chunks got new extents');
  if (kind === 'btrfs') {
    const show = (f: string): Promise<string> => run('btrfs', ['subvolume', 'show', f]);
    const parentUuid = /^\s*UUID:\s*(\S+)/m.exec(await show(base.images.C!.folder))![1];
    t.regex(await show(incr.folder), new RegExp(`Parent UUID:\\s*${parentUuid}`), 'incremental is a snapshot of its parent');
  }
}

test.serial('(1)+(7) GPT UEFI disk, C: + ESP and an incremental of C:, on btrfs', (t) => incrementalCase(t, 'btrfs'));

test.serial('(1)+(7) GPT UEFI disk, C: + ESP and an incremental of C:, plain folders with reflinks on XFS', (t) => incrementalCase(t, 'plain'));

test.serial('(2) BIOS MBR disk: SYSVOL + C:', async (t) => {
  const s = await scenarios.biosMbr(ctx('btrfs'));
  t.teardown(() => s.disk.cleanup());
  await tableOk(t, s.disk.path, s.disk.table, s.disk.sectorSize);
  for (const img of Object.values(s.images)) await checkImage(t, s, img);
  t.is(mbrHead(await readFile(s.images.SYSVOL!.raw + '.mbr')).strings[1]!.toString(), 'System Reserved');
  await checkExpected(t, s, 'C', [s.images.C!]);
  await checkExpected(t, s, 'C+SYSVOL', [s.images.C!, s.images.SYSVOL!]);
  t.is(s.expected.C!.sizeBytes, s.disk.partitions[1]!.startByte + s.disk.partitions[1]!.sizeBytes, 'MBR disk size = furthest partition end (docs/urbackup-raw-format.md §6.3)');
});

test.serial('(3) legacy MBR disk with C: at sector 63', async (t) => {
  const s = await scenarios.legacyMbr(ctx('btrfs'));
  t.teardown(() => s.disk.cleanup());
  t.is(s.disk.partitions[0]!.startByte, 63 * 512);
  await tableOk(t, s.disk.path, 'mbr', 512);
  await checkImage(t, s, s.images.C!);
  const dump = JSON.parse(await run('sfdisk', ['-J', s.expected.C!.path])) as { partitiontable: { partitions: { start: number }[] } };
  t.is(dump.partitiontable.partitions[0]!.start, 63);
  await checkExpected(t, s, 'C', [s.images.C!]);
});

test.serial('(4) 4Kn GPT disk', async (t) => {
  const s = await scenarios.gpt4Kn(ctx('btrfs'));
  t.teardown(() => s.disk.cleanup());
  t.is(s.disk.sectorSize, 4096);
  await tableOk(t, s.disk.path, 'gpt', 4096);
  t.is(s.disk.partitions[0]!.volumeBytes, s.disk.partitions[0]!.sizeBytes - 4096, 'NTFS leaves its last 4096-byte sector out');
  await checkImage(t, s, s.images.C!);
  await checkExpected(t, s, 'C', [s.images.C!]);
});

test.serial('(5) MBR disk with GRUB extra data and ext4', async (t) => {
  const s = await scenarios.grubMbr(ctx('btrfs'));
  t.teardown(() => s.disk.cleanup());
  await checkImage(t, s, s.images._dev_sda1!);
  const mbr = await readFile(s.images._dev_sda1!.raw + '.mbr');
  const head = mbrHead(mbr);
  t.is(head.strings[1]!.toString(), 'LINUX:/dev/sda1');
  t.is(head.strings[2]!.toString(), 'ext4');
  t.is(mbr.readUInt32LE(head.rest), 0, 'empty errmsg');
  t.is(mbr.subarray(head.rest + 4, head.rest + 9).toString('hex'), '840081fc00', 'varint 512, varint 32256 (docs/urbackup-raw-format.md §3.1)');
  const extra = await readFileAt(s.disk.path, 512, 32256);
  t.deepEqual(mbr.subarray(head.rest + 9), extra);
  t.deepEqual(await readFileAt(s.expected._dev_sda1!.path, 512, 32256), extra);
  await checkExpected(t, s, '_dev_sda1', [s.images._dev_sda1!]);
});

test.serial('(6) whole-disk v100 image', async (t) => {
  const s = await scenarios.wholeDisk(ctx('btrfs'));
  t.teardown(() => s.disk.cleanup());
  const img = s.images.C!;
  t.is((await stat(img.raw)).size, s.disk.sizeBytes + RAW_VOLUME_OFFSET);
  await run('cmp', ['-n', String(s.disk.sizeBytes), img.raw, s.disk.path]);
  t.deepEqual(await readFileAt(img.raw, s.disk.sizeBytes, RAW_VOLUME_OFFSET), Buffer.alloc(RAW_VOLUME_OFFSET));
  t.is((await readFile(img.raw + '.mbr')).subarray(0, 2).toString('hex'), '0164');
  await run('cmp', [s.expected.C!.path, s.disk.path]);
  const part = s.disk.partitions[0]!;
  t.deepEqual(await hashFilesOnDisk(s.expected.C!.path, 512, part, Object.keys(part.files), work), part.files);
});

test.serial('the genuine UrBackup 2.5.33 fixture unpacks with its sparse .raw files', async (t) => {
  const storage = await mkdtemp(join(work, 'real-'));
  const fx = await unpackRealFixture(storage);
  t.is(fx.images.length, 4);
  for (const img of fx.images) {
    const raw = realRawPath(fx, img);
    const st = await stat(raw);
    t.is(st.size, img.partnum === 1 ? 64 * 1024 * 1024 + RAW_VOLUME_OFFSET : 191 * 1024 * 1024 + RAW_VOLUME_OFFSET, raw);
    t.true(st.blocks * 512 < st.size / 4, `${raw} stays sparse`);
    const head = mbrHead(await readFile(raw + '.mbr'));
    t.is(head.version, 0);
    t.is(head.partition, img.partnum);
  }
});
