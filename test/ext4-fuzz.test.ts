// Property test: real ext4 volumes with their superblock, descriptors, inodes, extent nodes,
// block maps and folders mutated never make the reader throw anything but its two error
// classes, hang, read without bound, or map a file outside the volume (fixed seeds).
import { link, mkdir, mkdtemp, open, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { openExt4 } from '../src/filesystem/ext4/ext4-fs.js';
import { makeExt4Image } from './helpers/ext4-volume.js';
import { editedVolume, editsArb, type FuzzBudget, fuzzCase, readRegions } from './helpers/fs-fuzz.js';
import { requireTool } from './helpers/run.js';

const BUDGET: FuzzBudget = { ms: 3000, readBytes: 256 * 1024 * 1024 };
const RUNS = 250;
let work: string;

async function fillExtents(root: string): Promise<void> {
  await writeFile(join(root, 'inline.txt'), 'inline\n');
  await writeFile(join(root, 'block.bin'), randomBytes(20000));
  const frag = await open(join(root, 'frag.bin'), 'w');
  for (let i = 0; i < 40; i++) await frag.write(randomBytes(4096), 0, 4096, i * 8192);
  await frag.close();
  await mkdir(join(root, 'big-dir'));
  for (let i = 0; i < 300; i++) await writeFile(join(root, 'big-dir', `entry-${i}`), '');
  await mkdir(join(root, 'small-dir'));
  await writeFile(join(root, 'small-dir', 'x'), 'x');
  await link(join(root, 'inline.txt'), join(root, 'small-dir', 'hard'));
  await symlink('inline.txt', join(root, 'fast'));
  await symlink(`${'s/'.repeat(50)}t`, join(root, 'slow'));
}

async function fillBlockMap(root: string): Promise<void> {
  await writeFile(join(root, 'double.bin'), randomBytes(300 * 1024));
  const sparse = await open(join(root, 'sparse.bin'), 'w');
  await sparse.write(randomBytes(3000), 0, 3000, 400 * 1024);
  await sparse.close();
  await mkdir(join(root, 'dir'));
  for (let i = 0; i < 40; i++) await writeFile(join(root, 'dir', `f${i}`), `${i}`);
  await symlink('dir/f1', join(root, 'link'));
}

test.before(async () => {
  requireTool('mkfs.ext4');
  work = await mkdtemp(join(tmpdir(), 'synthvhd-ext4-fuzz-'));
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const notExt4 = (e: Error): boolean => / not an ext2\/3\/4 volume /.test(e.message);

async function fuzz(name: string, sizeMiB: number, options: string[], fill: (root: string) => Promise<void>, seed: number): Promise<void> {
  const img = join(work, name);
  await makeExt4Image(img, sizeMiB, options, fill);
  const image = await readFile(img);
  const regions = await readRegions(openExt4, img, image);
  await fc.assert(
    fc.asyncProperty(editsArb(image, regions), async (edits) => {
      const problem = await fuzzCase(openExt4, editedVolume(img, image, edits, BUDGET), BUDGET, notExt4);
      if (problem) throw new Error(problem);
    }),
    { numRuns: RUNS, seed },
  );
}

test('mutated extents, inline data, htree folder, symlinks (4 KiB blocks)', async (t) => {
  await fuzz('extents.img', 8, ['-b', '4096', '-I', '256', '-O', 'inline_data'], fillExtents, 22);
  t.pass();
});

test('mutated block maps and linear folders (1 KiB blocks, 128-byte inodes)', async (t) => {
  await fuzz('blockmap.img', 4, ['-b', '1024', '-I', '128', '-O', '^extents,^64bit,^flex_bg,^metadata_csum,^huge_file,^extra_isize'], fillBlockMap, 23);
  t.pass();
});
