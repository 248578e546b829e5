// qemu's own VHDX and VHD writers on a disk of the mount, opened read-write (docs/overlays.md):
// qemu-io writes into a block the dynamic container does not store (qemu extends the file and
// updates the BAT, headers and log), reads it back in a new process, and `qemu-img check` of the
// writer's view is clean; after the last close the disk is byte for byte `build`'s output again.
// A held O_RDWR handle of the same user keeps the overlay alive between the qemu runs (§1).
// Both modes: in reflink mode the held handle opens first and alone, so the kernel writes the
// view (a reflinked clone of the built disk) itself, and qemu's handles share it (§4).
import { constants } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { synthvhd } from './helpers/cli.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { OpenFileChild } from './helpers/open-file-child.js';
import { requireTool, run, runToEnd } from './helpers/run.js';
import * as sc from './helpers/scenarios.js';
import { ServeTracker } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { builtDisks } from './helpers/built-disks.js';
import { sharedMap } from './helpers/shared-map.js';
import { treeFingerprint } from './helpers/tree-hash.js';

const MiB = 1 << 20;
let fs: LoopFs;
let work: string;
let storage: string;
let before: Record<string, string>;
/** The mount of each mode. */
const mounts = new Map<string, string>();
let uefi: sc.Scenario;
const tracker = new ServeTracker();
/** By the name's ending after the backup's folder: the `build --format` and qemu's format. */
const KINDS = [
  { ext: '.vhdx', format: 'vhdx', qemu: 'vhdx', dynamic: true },
  { ext: '-dynamic.vhd', format: 'vhd-dynamic', qemu: 'vpc', dynamic: true },
  { ext: '.vhd', format: 'vhd', qemu: 'vpc', dynamic: false },
] as const;
const built = new Map<string, string>();

const nameOf = (ext: string): string => `${uefi.client}/${uefi.images.C!.folder.split('/').at(-1)}${ext}`;

test.before(async () => {
  for (const tool of ['qemu-io', 'qemu-img']) requireTool(tool);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-overlay-qemu-'));
  fs = await makeLoopFs('btrfs', 1024);
  storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  uefi = await sc.uefiGpt({ storage, workDir: work, kind: 'btrfs' });
  for (const k of KINDS) {
    const out = join(work, `built${k.ext}`);
    const r = await synthvhd(['build', uefi.images.C!.folder, '-o', out, '--format', k.format]);
    if (r.code !== 0) throw new Error(r.stderr);
    built.set(k.ext, out);
  }
  before = await treeFingerprint(storage);
  const formats = ['--formats', 'vhd,vhdx,vhd-dynamic'];
  mounts.set('passthrough', await tracker.mountpoint(work, 'mnt'));
  await tracker.serve(['--storage', storage, '--mount', mounts.get('passthrough')!, '--mode', 'passthrough', ...formats, '--overlay-dir', join(fs.mountpoint, 'overlays')]);
  mounts.set('reflink', await tracker.mountpoint(work, 'mnt-reflink'));
  const cache = join(fs.mountpoint, 'cache');
  await tracker.serve(['--storage', storage, '--mount', mounts.get('reflink')!, '--mode', 'reflink', ...formats, '--cache-dir', cache, '--overlay-limit', '4G']);
  // A first open builds each disk; writers then start from clones of the built disks.
  for (const k of KINDS) await run('cmp', [join(mounts.get('reflink')!, nameOf(k.ext)), built.get(k.ext)!]);
  await builtDisks(cache, KINDS.length, 60_000);
});

guardStorage(() => ({ tracker, fs, work, storage, before }));

/**
 * The first MiB-aligned MiB of the disk that the dynamic VHD does not store, from qemu-img map's
 * JSON (qemu's vhdx driver reports every block as data). The dynamic VHDX stores the same disk's
 * present blocks in smaller blocks, so it lacks that MiB too (the test sees its file grow).
 */
async function unstored(image: string, format: string): Promise<number> {
  const map = JSON.parse(await run('qemu-img', ['map', '--output=json', '-f', format, image])) as { start: number; length: number; data: boolean }[];
  for (const e of map.filter((m) => !m.data)) {
    const at = Math.ceil(e.start / MiB) * MiB;
    if (at + MiB <= e.start + e.length) return at;
  }
  throw new Error(`${image}: every block is stored`);
}

const qemuIo = (format: string, path: string, cmd: string): Promise<{ code: number; stderr: string; stdout: string }> => runToEnd('qemu-io', ['-f', format, '-c', cmd, path]);

for (const [mode, k] of (['passthrough', 'reflink'] as const).flatMap((m) => KINDS.map((kind) => [m, kind] as const))) {
  test.serial(`${mode} mode: qemu-io writes into ${k.dynamic ? `a block the dynamic ${k.format} does not store` : `the fixed ${k.format}`}; the writer's view stays valid; after the last close the disk is build's again`, async (t) => {
    const path = join(mounts.get(mode)!, nameOf(k.ext));
    const ref = built.get(k.ext)!;
    const hold = new OpenFileChild(path, constants.O_RDWR);
    t.teardown(() => hold.kill());
    await hold.opened;
    if (mode === 'reflink') await t.notThrowsAsync(sharedMap(path, 0), 'the kernel writes the view: a shared map works');
    const size = await hold.seekEnd();
    const at = k.dynamic ? await unstored(built.get('-dynamic.vhd')!, 'vpc') : 100 * MiB;
    const wrote = await qemuIo(k.qemu, path, `write -P 0xa5 ${at} 1M`);
    t.is(wrote.code, 0, wrote.stderr + wrote.stdout);
    if (k.dynamic) t.true((await hold.seekEnd()) > size, 'qemu extended the file for the new block');
    const read = await qemuIo(k.qemu, path, `read -P 0xa5 ${at} 1M`);
    t.is(read.code, 0, read.stderr + read.stdout);
    t.not((await qemuIo(k.qemu, path, `read -P 0x00 ${at} 1M`)).code, 0, 'a pattern that is not there fails');
    if (k.qemu === 'vhdx') {
      // -r leaks opens the image read-write, so it sees the writer's view; a clean image needs no repair.
      const check = await runToEnd('qemu-img', ['check', '-r', 'leaks', '--output=json', '-f', 'vhdx', path]);
      t.is(check.code, 0, check.stderr + check.stdout);
    }
    t.is((await runToEnd('cmp', ['-s', path, ref])).code, 0, 'readers see build\'s bytes meanwhile');
    await hold.close();
    t.is((await runToEnd('cmp', ['-s', path, ref])).code, 0, 'byte-exact after the last close');
    t.is(Number((await run('stat', ['-c', '%s', path])).trim()), size);
    t.is((await qemuIo(k.qemu, path, `read -P 0xa5 ${at} 1M`)).code === 0, false, 'a new writer starts from the pristine disk');
    if (k.qemu === 'vhdx') t.is((await runToEnd('qemu-img', ['check', '-f', 'vhdx', path])).code, 0);
  });
}
