// Memory stays bounded when every disk of a storage is opened once: a file's layout is built on
// open (never for a listing) and kept in a cache bounded by the bytes it holds. The disks here
// are 32 TiB (a small partition on a large GPT disk), so each fixed VHDX layout carries an 8 MiB BAT.
// A scan computes no dynamic kind's data map either: that waits for the file's first stat.
import { mkdir, mkdtemp, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import test from 'ava';
import { StorageCatalog } from '../src/catalog/storage-catalog.js';
import { buildDisk } from './helpers/disk-builder.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { ServeTracker, eventually } from './helpers/serve-process.js';
import { computeSourceData, sourceData } from '../src/io/source-data.js';
import { warmSourceData } from '../src/io/source-data-warmer.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { writeImageBackup } from './helpers/urbackup-storage.js';

/** 32 TiB: the BAT of its fixed VHDX (32 MiB blocks, 8 bytes an entry) is 8 MiB. */
const DISK_MIB = 32 * 1024 * 1024;
const DISKS = 24;
const MiB = 1024 * 1024;
/** The layout cache's bound (catalog/container-file.ts); unbounded, the 24 layouts would hold 192 MiB. */
const LAYOUT_CACHE_BYTES = 64 * MiB;

let fs: LoopFs | undefined;
let work: string | undefined;
let storage = '';
let before: Record<string, string> = {};
const tracker = new ServeTracker();

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-scale-'));
  fs = await makeLoopFs('btrfs', 1024);
  storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  const disk = await buildDisk({ table: 'gpt', sizeMiB: DISK_MIB, partitions: [{ sizeMiB: 2, type: 'msr' }] }, fs.mountpoint);
  for (let n = 0; n < DISKS; n++) {
    const time = `2401${String(1 + (n % 28)).padStart(2, '0')}-${String(10 + Math.floor(n / 28)).padStart(2, '0')}00`;
    await writeImageBackup({ storage, client: 'big', time, letter: 'C', disk, partition: 1, kind: 'plain' });
  }
  await disk.cleanup();
  before = await treeFingerprint(storage);
});

guardStorage(() => ({ tracker, fs, work, storage, before }));

test('opening every 32 TiB disk of a storage once keeps the catalog within its layout cache bound', async (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const catalog = new StorageCatalog(storage, ['vhd', 'vhdx-fixed']);
  const { files } = await catalog.scan();
  t.is(files.length, DISKS, files.map((f) => f.name).join(' '));
  t.true(files.every((f) => f.name.endsWith('-fixed.vhdx')), 'no .vhd of a disk over 2040 GiB');
  // V8 frees the memory of collected ArrayBuffers on a concurrent sweeper, after gc() returns
  // (CI once measured 73 MiB here, two layouts more than the cache holds): take the settled value.
  const settled = async (): Promise<number> => {
    let least = Number.POSITIVE_INFINITY;
    for (let round = 0; round < 5; round++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
      least = Math.min(least, process.memoryUsage().arrayBuffers);
    }
    return least;
  };
  const start = await settled();
  // What an open does with a file: build (or take from the cache) its layout, read, let it go.
  for (const f of files) t.is(f.layout().size, f.computeSize());
  const grown = (await settled()) - start;
  t.true(grown <= LAYOUT_CACHE_BYTES, `layouts kept ${(grown / MiB).toFixed(0)} MiB after opening ${DISKS} disks`);
  t.true(grown >= LAYOUT_CACHE_BYTES / 2, `the cache keeps recent layouts (${(grown / MiB).toFixed(0)} MiB)`);
});

test('a scan maps no .raw: a dynamic file\'s size is computed on its first stat, a fixed one\'s from the table alone', async (t) => {
  // A storage of the test's own (the guarded one stays untouched): its .raw goes away after the scan.
  const own = join(fs!.mountpoint, 'lazy-storage');
  const disk = await buildDisk({ table: 'gpt', sizeMiB: 10, partitions: [{ sizeMiB: 8, type: 'msr' }] }, fs!.mountpoint);
  const img = await writeImageBackup({ storage: own, client: 'pc', time: '240301-1000', letter: 'C', disk, partition: 1, kind: 'plain' });
  await disk.cleanup();
  const catalog = new StorageCatalog(own, ['vhd', 'vhdx', 'vhd-dynamic']);
  const { files, warnings } = await catalog.scan();
  t.deepEqual(warnings, []);
  const byName = new Map(files.map((f) => [f.name.slice(f.name.indexOf('_Image_C')), f]));
  const [vhd, vhdx, dynamic] = ['_Image_C.vhd', '_Image_C.vhdx', '_Image_C-dynamic.vhd'].map((n) => byName.get(n)!);
  t.true(vhd!.sizeKnown !== false, 'a fixed kind\'s size is known from the scan');
  t.is(vhdx!.sizeKnown, false, 'the dynamic VHDX\'s size waits for its first stat');
  t.is(dynamic!.sizeKnown, false, 'so does the dynamic VHD\'s');
  // The .raw gone (UrBackup deleting the backup) after the scan: only what the scan did not compute is missed.
  await rename(img.raw, `${img.raw}.gone`);
  t.is(vhd!.computeSize(), 10 * MiB + 512);
  t.throws(() => vhdx!.computeSize(), { message: new RegExp(`${img.raw.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot map its data \\(ENOENT\\)`) });
  await rename(`${img.raw}.gone`, img.raw);
  t.true(dynamic!.computeSize() > 0);
  t.true(dynamic!.sizeKnown !== false, 'kept once computed');
});

test('a thread maps the .raw files of the dynamic disks ahead of their first stat, with the bytes computing them gives', async (t) => {
  const own = join(fs!.mountpoint, 'warm-storage');
  const disk = await buildDisk({ table: 'gpt', sizeMiB: 10, partitions: [{ sizeMiB: 8, type: 'msr' }] }, fs!.mountpoint);
  const imgs = [];
  for (const time of ['240302-1000', '240303-1000']) imgs.push(await writeImageBackup({ storage: own, client: 'pc', time, letter: 'C', disk, partition: 1, kind: 'plain' }));
  await disk.cleanup();
  const { files } = await new StorageCatalog(own, ['vhdx', 'vhd-dynamic']).scan();
  t.is(files.length, 4);
  const sources = files.flatMap((f) => f.sizeSources ?? []);
  t.is(sources.length, 4, 'each dynamic file names its .raw');
  t.is(await warmSourceData(sources).done, 2, 'one map per .raw, though two files need each');
  // Unreadable now: the sizes can only come from the maps the thread sent.
  for (const img of imgs) await rename(img.raw, `${img.raw}.gone`);
  try {
    for (const f of files) {
      t.true(f.computeSize() > 0);
      t.deepEqual(f.sizeSources, [], `${f.name}: its size is known`);
    }
  } finally {
    for (const img of imgs) await rename(`${img.raw}.gone`, img.raw);
  }
  for (const s of sources) {
    const fresh = computeSourceData(s.path, s.identity.size);
    const adopted = sourceData(s.path, s.identity);
    t.deepEqual([adopted.from, adopted.map.size, Buffer.from(adopted.map.granules.bytes)], [fresh.from, fresh.map.size, Buffer.from(fresh.map.granules.bytes)], s.path);
  }
  t.is(await warmSourceData(sources).done, 0, 'maps known already are not computed again');
});

test('serve maps the dynamic disks\' data on a thread once mounted, and says so in one line', async (t) => {
  const mnt = await tracker.mountpoint(work!, 'mnt-warm');
  const s = await tracker.serve(['--storage', storage, '--mount', mnt, '--formats', 'vhdx']);
  const line = /mapped the data of (\d+) backing files in [\d.]+ s/;
  t.true(await eventually(async () => line.test(s.log()), 20_000), s.log());
  t.is(Number(line.exec(s.log())![1]), DISKS);
  t.is(s.log().match(new RegExp(line.source, 'g'))!.length, 1);
  await s.stop();
});
