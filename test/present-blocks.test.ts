// Which blocks of a disk hold data: the data map of a `.raw` (SEEK_DATA narrowed by its
// `.raw.bitmap`, urbackup-raw-format.md §2.4) and the present blocks of a disk layout.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DATA_GRANULE, DataMap, presentBlocks } from '../src/disk/present-blocks.js';
import { paint } from '../src/disk/layout.js';
import { sourceData } from '../src/io/source-data.js';
import { rawBitmapLength } from '../src/urbackup/raw-bitmap.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** On tmpfs, which reports holes exactly like btrfs and XFS. */
async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp('/dev/shm/synthvhd-present-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A 4 MiB `.raw`: random data at [0, 64 KiB), zeros written at [1 MiB, +64 KiB), random at [3 MiB, +4 KiB). */
async function raw(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  const fh = await open(path, 'w');
  await fh.write(randomBytes(64 * KiB), 0, undefined, 0);
  await fh.write(Buffer.alloc(64 * KiB), 0, undefined, MiB);
  await fh.write(randomBytes(4 * KiB), 0, undefined, 3 * MiB);
  await fh.truncate(4 * MiB);
  await fh.close();
  return path;
}

/** A `.raw.bitmap` with the bits of the given 4 KiB blocks set, MSB-first (§2.4). */
async function bitmap(path: string, blocks: readonly number[], length = rawBitmapLength(4 * MiB)): Promise<void> {
  const b = Buffer.alloc(length);
  for (const k of blocks) b[k >> 3]! |= 0x80 >> (k & 7);
  await writeFile(`${path}.bitmap`, b);
}

async function dataOf(path: string): Promise<ReturnType<typeof sourceData>> {
  const st = await stat(path);
  return sourceData(path, { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs });
}

const granules = (m: DataMap): number[] => [...m.granules.runs()].flatMap(([a, b]) => Array.from({ length: b - a }, (_, i) => a + i));

test('without a .raw.bitmap, SEEK_DATA decides: zeros written count as data', async (t) => {
  const d = await dataOf(await raw(await tempDir(t), 'a.raw'));
  t.is(d.from, 'seek');
  t.is(d.bitmapProblem, undefined);
  t.deepEqual(granules(d.map), [0, MiB / DATA_GRANULE, (3 * MiB) / DATA_GRANULE]);
});

test('a .raw.bitmap consistent with the holes gives the same data; on a hole-free file it decides', async (t) => {
  const dir = await tempDir(t);
  const path = await raw(dir, 'b.raw');
  await bitmap(path, [0, 15, MiB / 4096, (3 * MiB) / 4096]);
  const d = await dataOf(path);
  t.is(d.from, 'bitmap');
  t.deepEqual(granules(d.map), [0, MiB / DATA_GRANULE, (3 * MiB) / DATA_GRANULE]);
  // A filesystem that reports no holes, or zeros written instead of punched: every byte is data,
  // and the bitmap says which blocks a restore writes.
  const full = join(dir, 'full.raw');
  await writeFile(full, Buffer.alloc(4 * MiB));
  await bitmap(full, [0, (3 * MiB) / 4096]);
  const f = await dataOf(full);
  t.is(f.from, 'bitmap');
  t.deepEqual(granules(f.map), [0, (3 * MiB) / DATA_GRANULE]);
});

test('a stale .raw.bitmap (data where the bits are clear) or a short one is not used', async (t) => {
  const dir = await tempDir(t);
  const stale = await raw(dir, 'c.raw');
  await bitmap(stale, [0, MiB / 4096]);
  const s = await dataOf(stale);
  t.is(s.from, 'seek');
  t.regex(s.bitmapProblem ?? '', /holds data at 3145728 where its bits are clear/);
  t.is(granules(s.map).length, 3);
  const short = await raw(dir, 'd.raw');
  await bitmap(short, [0], rawBitmapLength(4 * MiB) - 1);
  const sh = await dataOf(short);
  t.is(sh.from, 'seek');
  t.regex(sh.bitmapProblem ?? '', /short of the 128 a 4194304-byte .raw needs/);
});

test('present blocks: every block a bytes segment or a data granule of a file segment touches', (t) => {
  const source = { path: '/nonexistent/x.raw' };
  const map = new DataMap(8 * MiB);
  map.addRange(0, 4 * KiB);
  map.addRange(3 * MiB - 4 * KiB, 3 * MiB + 4 * KiB);
  // The file lands at 1 MiB + 512 KiB: its granule at 0 falls into block 1, the two around 3 MiB
  // into block 4 (2 MiB blocks: 0 and 2).
  const layout = paint(16 * MiB, [
    { kind: 'bytes', start: 0, data: Buffer.alloc(512) },
    { kind: 'file', start: MiB + 512 * KiB, length: 8 * MiB, source, offset: 0 },
    { kind: 'bytes', start: 16 * MiB - 512, data: Buffer.alloc(512) },
  ]);
  const one = presentBlocks(layout, MiB, () => map);
  t.deepEqual([...one.blocks.runs()], [[0, 2], [4, 5], [15, 16]]);
  t.is(one.count, 4);
  const two = presentBlocks(layout, 2 * MiB, () => map);
  t.deepEqual([...two.blocks.runs()], [[0, 1], [2, 3], [7, 8]]);
  // Without a map the whole file segment counts.
  t.is(presentBlocks(layout, MiB, () => undefined).count, 1 + 9 + 1);
});
