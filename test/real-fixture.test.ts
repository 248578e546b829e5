// Genuine image backups written by UrBackup Server 2.5.33 (test/fixtures): list, inspect and build
// them, and read every file of the imaged partition back from the virtual disk.
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { synthvhd } from './helpers/cli.js';
import { checkDynamicVhd, checkVhdx } from './helpers/container-check.js';
import { hashFilesOnDisk } from './helpers/disk-builder.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { type RealFixture, realRawPath, unpackRealFixture } from './helpers/real-fixture.js';
import { run } from './helpers/run.js';
import { treeFingerprint } from './helpers/tree-hash.js';

/** The volume starts at byte 524288 of every `.raw` (docs/urbackup-raw-format.md §2.1). */
const RAW_VOLUME_OFFSET = 524288;

let fs: LoopFs;
let work: string;
let fx: RealFixture;
let before: Record<string, string>;

test.before(async () => {
  fs = await makeLoopFs('btrfs', 1024);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-real-'));
  const storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  fx = await unpackRealFixture(storage);
  before = await treeFingerprint(storage);
});

test.after.always(async () => {
  await fs?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

test.after('the storage is unchanged', async (t) => {
  t.deepEqual(await treeFingerprint(fx.storage), before);
});

test('list shows one MBR disk per image, with the partition it fills and its filesystem', async (t) => {
  const r = await synthvhd(['list', '--storage', fx.storage, '--json']);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { disks: { folder: string; table: string; identity: string; diskSize: number; partitions: { number: number; imagedFrom: string | null; start: number }[]; filesystems: unknown[] }[]; warnings: string[] };
  t.deepEqual(j.warnings, []);
  t.is(j.disks.length, fx.images.length);
  for (const img of fx.images) {
    const d = j.disks.find((x) => x.folder === img.folder)!;
    t.is(d.table, 'mbr');
    t.is(d.identity, '5eed0b00');
    t.is(d.diskSize, 256 << 20);
    t.deepEqual(d.partitions.filter((p) => p.imagedFrom).map((p) => p.number), [img.partnum]);
    t.deepEqual(d.filesystems, [{ folder: img.folder, name: 'ext4', browsable: true }]);
  }
});

test('build of every genuine image: the partition holds the .raw volume and every file; every other kind has the same disk', async (t) => {
  for (const img of fx.images) {
    const src = join(fx.storage, img.client, img.folder);
    const vhd = join(work, `${img.folder}.vhd`);
    const r = await synthvhd(['build', src, '-o', vhd]);
    t.is(r.code, 0, r.stderr);
    const info = JSON.parse((await synthvhd(['inspect', src, '--json'])).stdout) as { partitions: { number: number; start: number; volumeLength: number | null }[] };
    const p = info.partitions.find((x) => x.number === img.partnum)!;
    await run('cmp', ['-n', String(p.volumeLength), `--ignore-initial=${p.start}:${RAW_VOLUME_OFFSET}`, vhd, realRawPath(fx, img)]);
    const files = img.partitions[String(img.partnum)]!.files;
    t.deepEqual(await hashFilesOnDisk(vhd, 512, { index: img.partnum, startByte: p.start, fs: 'ext4' }, Object.keys(files), work), files, img.folder);
    for (const [suffix, format, qemu, check] of [
      ['.vhdx', 'vhdx', 'vhdx', checkVhdx],
      ['-dynamic.vhd', 'vhd-dynamic', 'vpc', checkDynamicVhd],
      ['-fixed.vhdx', 'vhdx-fixed', 'vhdx', checkVhdx],
    ] as const) {
      const out = join(work, `${img.folder}${suffix}`);
      const b = await synthvhd(['build', src, '-o', out, '--format', format]);
      t.is(b.code, 0, b.stderr);
      if (qemu === 'vhdx') await run('qemu-img', ['check', '-f', 'vhdx', out]);
      t.regex(await run('qemu-img', ['compare', '-f', 'vpc', '-F', qemu, vhd, out]), /identical/, `${img.folder} ${format}`);
      t.deepEqual(await check(out), [], `${img.folder} ${format}`);
      // Only what the .raw.bitmap and the file's data say: a few MiB of the 256 MiB disk.
      if (format !== 'vhdx-fixed') t.true((await stat(out)).size < 32 << 20, `${format}: ${(await stat(out)).size} bytes`);
      await rm(out);
    }
    await rm(vhd);
  }
});
