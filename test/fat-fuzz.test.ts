// Property test: real FAT12/16/32 volumes with their boot sector, FATs and folders mutated never
// make the reader throw anything but its two error classes, hang, read without bound, or map a
// file outside the volume (fixed seeds).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { parseBootSector } from '../src/filesystem/fat/boot-sector.js';
import { openFat } from '../src/filesystem/fat/fat-fs.js';
import { mtools } from './helpers/fat-volume.js';
import { type ByteEdit, editedVolume, editsArb, type FuzzBudget, fuzzCase, readRegions } from './helpers/fs-fuzz.js';
import { requireTool, run } from './helpers/run.js';

const BUDGET: FuzzBudget = { ms: 3000, readBytes: 256 * 1024 * 1024 };
const RUNS = 300;
let work: string;

test.before(async () => {
  for (const tool of ['mkfs.vfat', 'mcopy', 'mmd']) requireTool(tool);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-fat-fuzz-'));
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/**
 * Edits of the allocated entries of the first FAT pointing them at other allocated clusters, at
 * themselves, or out of range: cycles, cross-links, chains into free space.
 */
function rewiredChains(image: Buffer, name: string): fc.Arbitrary<ByteEdit[]> {
  const plain = editedVolume(name, image, [], BUDGET);
  const bpb = parseBootSector(image.subarray(0, 512), plain);
  const width = { fat12: 1.5, fat16: 2, fat32: 4 }[bpb.type];
  const allocated: number[] = [];
  for (let n = 2; n < bpb.clusterCount + 2; n++) {
    const at = bpb.fatOffset + Math.floor(n * width);
    const v = bpb.type === 'fat12' ? (n % 2 ? image.readUInt16LE(at) >> 4 : image.readUInt16LE(at) & 0xfff) : bpb.type === 'fat16' ? image.readUInt16LE(at) : image.readUInt32LE(at);
    if (v !== 0) allocated.push(n);
  }
  const target = fc.oneof(fc.constantFrom(...allocated), fc.constantFrom(0, 1, bpb.clusterCount + 2, 0xfff7, 0x0ffffff7));
  return fc.array(fc.record({ cluster: fc.constantFrom(...allocated), to: target }), { minLength: 1, maxLength: 3 }).map((rewires) =>
    rewires.flatMap(({ cluster, to }): ByteEdit[] => {
      const at = bpb.fatOffset + Math.floor(cluster * width);
      if (bpb.type !== 'fat12') return [{ at, value: to, width: bpb.type === 'fat16' ? 2 : 4 }];
      const old = image.readUInt16LE(at);
      const value = cluster % 2 ? (old & 0xf) | ((to & 0xfff) << 4) : (old & 0xf000) | (to & 0xfff);
      return [{ at, value, width: 2 }];
    }),
  );
}

const notFat = (e: Error): boolean => / not a FAT volume /.test(e.message);

async function fuzz(fat: 12 | 16 | 32, sizeMiB: number, seed: number): Promise<void> {
  const img = join(work, `fat${fat}.img`);
  await run('truncate', ['-s', `${sizeMiB}M`, img]);
  await run('mkfs.vfat', ['-F', String(fat), ...(fat === 32 ? ['-s', '1'] : []), img]);
  const files = ['Long name one.txt', 'b.bin', 'short.txt', 'Another long name.bin'].map((n) => join(work, n));
  for (const [i, f] of files.entries()) await writeFile(f, randomBytes(i * 3000));
  await mtools('mmd', ['-i', img, '::/Folder', '::/Folder/Sub']);
  await mtools('mcopy', ['-i', img, ...files, '::/']);
  await mtools('mcopy', ['-i', img, ...files, '::/Folder/Sub/']);
  const image = await readFile(img);
  const regions = await readRegions(openFat, img, image);
  await fc.assert(
    fc.asyncProperty(fc.oneof(editsArb(image, regions), rewiredChains(image, img)), async (edits) => {
      const problem = await fuzzCase(openFat, editedVolume(img, image, edits, BUDGET), BUDGET, notFat);
      if (problem) throw new Error(problem);
    }),
    { numRuns: RUNS, seed },
  );
}

test('mutated FAT12 boot sector, FAT, root folder and folders', async (t) => {
  await fuzz(12, 2, 31);
  t.pass();
});

test('mutated FAT16 boot sector, FAT, root folder and folders', async (t) => {
  await fuzz(16, 20, 32);
  t.pass();
});

test('mutated FAT32 boot sector, FAT and folders', async (t) => {
  await fuzz(32, 40, 33);
  t.pass();
});
