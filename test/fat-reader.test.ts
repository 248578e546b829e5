// The FAT reader against mtools on the same volumes (FAT12, FAT16, and an ESP-like FAT32 inside a
// `.raw` at byte 524288): every name, type, size, mtime, attribute and byte equal.
import { copyFile, mkdir, mkdtemp, open, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { looksLikeFat, openFat } from '../src/filesystem/fat/fat-fs.js';
import { CorruptVolumeError, type FsType } from '../src/filesystem/volume-fs.js';
import { openFileVolume } from '../src/io/file-volume.js';
import { RAW_VOLUME_OFFSET } from '../src/urbackup/raw-file.js';
import { type FatOracleNode, mtools, mtoolsImage, mtoolsWalk } from './helpers/fat-volume.js';
import { requireTool, run } from './helpers/run.js';
import { syntheticMbr } from './helpers/urbackup-storage.js';
import { walkReader } from './helpers/volume-walk.js';

const MiB = 1024 * 1024;
/** mtools adds long names to a folder in quadratic time: a few hundred keep the build short. */
const MANY = 300;
let work: string;

interface Spec {
  readonly fat: 12 | 16 | 32;
  readonly sizeMiB: number;
  readonly mkfs: readonly string[];
  readonly many: number;
  /** Inside a `.raw` at RAW_VOLUME_OFFSET, as UrBackup stores a volume. */
  readonly inRaw: boolean;
}
const SPECS: Record<'fat12' | 'fat16' | 'fat32', Spec> = {
  fat12: { fat: 12, sizeMiB: 2, mkfs: [], many: 100, inRaw: false },
  fat16: { fat: 16, sizeMiB: 32, mkfs: [], many: MANY, inRaw: false },
  fat32: { fat: 32, sizeMiB: 64, mkfs: ['-s', '1', '-n', 'EFI'], many: MANY, inRaw: true },
};
const volumes: Record<string, { image: string; path: string; offset: number; size: number }> = {};

/** Local files with set times, copied in with mtools; attributes set; a file written into freed gaps. */
async function fill(image: string, src: string, many: number): Promise<void> {
  const files: Record<string, Buffer | string> = {
    'Long File Name.txt': 'hello\n',
    'short.txt': 'lower-case 8.3\n',
    'UPPER.TXT': 'upper-case 8.3\n',
    'Ünïcödé – ✓.txt': 'unicode\n',
    'empty.txt': '',
    'big.bin': randomBytes(300_000),
    'hidden.sys': 'hidden system\n',
    'readonly.txt': 'read-only\n',
    'noarchive.txt': 'no archive bit\n',
  };
  let t = Date.UTC(2021, 4, 6, 7, 8, 9) / 1000;
  for (const [name, data] of Object.entries(files)) {
    await writeFile(join(src, name), data);
    await utimes(join(src, name), t, (t += 86_401));
  }
  await mtools('mcopy', ['-m', '-i', image, ...Object.keys(files).map((n) => join(src, n)), '::/']);
  await mtools('mattrib', ['-i', image, '+h', '+s', '::/hidden.sys']);
  await mtools('mattrib', ['-i', image, '+r', '::/readonly.txt']);
  await mtools('mattrib', ['-i', image, '-a', '::/noarchive.txt']);
  await mtools('mmd', ['-i', image, '::/Sub', '::/Sub/Deeper']);
  await writeFile(join(src, 'deep.txt'), 'deep\n');
  await mtools('mcopy', ['-m', '-i', image, join(src, 'deep.txt'), '::/Sub/Deeper/']);
  const pieces = Array.from({ length: 20 }, (_, i) => join(src, `piece${i}.bin`));
  for (const p of pieces) await writeFile(p, randomBytes(2048));
  await mtools('mcopy', ['-i', image, ...pieces, '::/']);
  await mtools('mdel', ['-i', image, ...pieces.filter((_, i) => i % 2 === 1).map((p) => `::/${p.slice(src.length + 1)}`)]);
  await forgetNextFree(image);
  await writeFile(join(src, 'frag.bin'), randomBytes(30_000));
  await mtools('mcopy', ['-i', image, join(src, 'frag.bin'), '::/']);
  await mkdir(join(src, 'many'));
  for (let i = 0; i < many; i++) await writeFile(join(src, 'many', `A rather long name, number ${i}.txt`), `${i}\n`);
  await mtools('mmd', ['-i', image, '::/Many']);
  await mtools('mcopy', ['-m', '-i', image, ...Array.from({ length: many }, (_, i) => join(src, 'many', `A rather long name, number ${i}.txt`)), '::/Many/']);
}

/** FAT32's FSInfo sector (BPB_FSInfo @48) hints where to allocate next (FSI_Nxt_Free @492): forget it, so the gaps are filled. */
async function forgetNextFree(image: string): Promise<void> {
  const fh = await open(image, 'r+');
  try {
    const boot = Buffer.alloc(512);
    await fh.read(boot, 0, 512, 0);
    if (boot.readUInt16LE(22) !== 0) return; // BPB_FATSz16 set: not FAT32
    const fsInfo = boot.readUInt16LE(48) * boot.readUInt16LE(11);
    const unknown = Buffer.alloc(4, 0xff);
    await fh.write(unknown, 0, 4, fsInfo + 492);
  } finally {
    await fh.close();
  }
}

async function build(key: keyof typeof SPECS): Promise<void> {
  const spec = SPECS[key];
  const vol = join(work, `${key}.img`);
  const src = await mkdtemp(join(work, `${key}-src-`));
  await run('truncate', ['-s', `${spec.sizeMiB}M`, vol]);
  await run('mkfs.vfat', ['-F', String(spec.fat), ...spec.mkfs, vol]);
  await fill(vol, src, spec.many);
  const size = (await stat(vol)).size;
  if (!spec.inRaw) {
    volumes[key] = { image: mtoolsImage(vol), path: vol, offset: 0, size };
    return;
  }
  const raw = join(work, `Image_ESP_240101-1200.raw`);
  const fh = await open(raw, 'w');
  await fh.write(syntheticMbr(size, 0x5eed0b00), 0, 512, 0);
  await fh.write(await readFile(vol), 0, size, RAW_VOLUME_OFFSET);
  await fh.close();
  await rm(vol);
  volumes[key] = { image: mtoolsImage(raw, RAW_VOLUME_OFFSET), path: raw, offset: RAW_VOLUME_OFFSET, size };
}

test.before(async () => {
  for (const tool of ['mkfs.vfat', 'mcopy', 'mdir', 'mattrib', 'mmd', 'mdel', 'mshowfat']) requireTool(tool);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-fat-'));
  for (const key of Object.keys(SPECS) as (keyof typeof SPECS)[]) await build(key);
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** FILE_ATTRIBUTE_* bits as mattrib's letters. */
function letters(dosAttributes = 0): string {
  const bits: [number, string][] = [[0x20, 'A'], [0x04, 'S'], [0x02, 'H'], [0x01, 'R']];
  return bits.filter(([b]) => dosAttributes & b).map(([, l]) => l).sort().join('');
}

for (const key of Object.keys(SPECS) as (keyof typeof SPECS)[]) {
  test(`${key}: every name, type, size, mtime, attribute and byte as mtools reads them`, async (t) => {
    const v = volumes[key]!;
    const volume = await openFileVolume(v.path, v.offset, v.size);
    try {
      const fs = await openFat(volume);
      t.is(fs.type, key as FsType);
      const actual = new Map<string, FatOracleNode>();
      for (const [path, n] of await walkReader(fs)) {
        if (path === '') continue;
        actual.set(path, { type: n.type as 'file' | 'dir', size: n.size, mtimeMs: n.mtimeMs, ...(n.sha256 ? { sha256: n.sha256 } : {}), attributes: letters(n.dosAttributes) });
      }
      const expected = await mtoolsWalk(v.image);
      t.true(expected.size > SPECS[key].many);
      t.deepEqual(Object.fromEntries([...actual].sort()), Object.fromEntries([...expected].sort()));
    } finally {
      await volume.close();
    }
  });
}

test('the volumes hold what the tests claim: a fragmented chain, long names, set attributes', async (t) => {
  for (const v of Object.values(volumes)) {
    const chains = await mtools('mshowfat', ['-i', v.image, '::/frag.bin']);
    t.true((chains.match(/<\d+(-\d+)?>/g) ?? []).length > 1, chains);
  }
  const walked = await mtoolsWalk(volumes.fat16!.image);
  t.is(walked.get('hidden.sys')?.attributes, 'AHS');
  t.is(walked.get('noarchive.txt')?.attributes, '');
});

test('lookup is case-insensitive, finds 8.3 aliases, and is fast in a big folder', async (t) => {
  const v = volumes.fat32!;
  const volume = await openFileVolume(v.path, v.offset, v.size);
  try {
    const fs = await openFat(volume);
    const root = await fs.root();
    t.is((await fs.lookup(root, 'long file name.TXT'))?.name, 'Long File Name.txt');
    t.is((await fs.lookup(root, 'LONGFI~1.TXT'))?.name, 'Long File Name.txt');
    t.is(await fs.lookup(root, 'nothing.txt'), undefined);
    const many = (await fs.lookup(root, 'many'))!.node;
    const t0 = performance.now();
    for (let i = 0; i < MANY; i++) {
      const e = await fs.lookup(many, `a rather long name, NUMBER ${i}.TXT`);
      if (e?.node.size !== `${i}\n`.length) t.fail(`entry ${i}: ${JSON.stringify(e)}`);
    }
    t.true(performance.now() - t0 < 1000);
    await t.throwsAsync(fs.readlink(root));
  } finally {
    await volume.close();
  }
});

test('a volume that is not FAT is refused with a clear error; looksLikeFat reads the boot sector', async (t) => {
  const zeros = join(work, 'zeros.img');
  await writeFile(zeros, Buffer.alloc(MiB));
  const volume = await openFileVolume(zeros, 0, MiB);
  try {
    await t.throwsAsync(openFat(volume), { message: `${zeros}: not a FAT volume (no boot sector with a FAT BPB)` });
  } finally {
    await volume.close();
  }
  const v = volumes.fat12!;
  const first = Buffer.alloc(512);
  const fh = await open(v.path, 'r');
  await fh.read(first, 0, 512, v.offset);
  await fh.close();
  t.true(looksLikeFat(first));
  t.false(looksLikeFat(Buffer.alloc(512)));
});

test('a broken chain fails only its own file: the folder lists, every other file reads', async (t) => {
  const img = join(work, 'corrupt16.img');
  await copyFile(volumes.fat16!.path, img);
  const chains = await mtools('mshowfat', ['-i', img, '::/frag.bin']);
  const first = Number(/<(\d+)/.exec(chains)?.[1]);
  const fh = await open(img, 'r+');
  const boot = Buffer.alloc(512);
  await fh.read(boot, 0, 512, 0);
  await fh.write(Buffer.alloc(2), 0, 2, boot.readUInt16LE(14) * boot.readUInt16LE(11) + first * 2); // a free entry inside the chain
  await fh.close();
  const volume = await openFileVolume(img, 0, (await stat(img)).size);
  try {
    const fs = await openFat(volume);
    const root = await fs.root();
    t.true((await fs.list(root)).some((e) => e.name === 'frag.bin'));
    const frag = (await fs.lookup(root, 'frag.bin'))!.node;
    await t.throwsAsync(fs.data(frag), { instanceOf: CorruptVolumeError, message: /: FAT entry at byte \d+: cluster 0 in the chain lies outside 2\.\.\d+$/ });
    const big = (await fs.lookup(root, 'big.bin'))!.node;
    t.is((await fs.data(big)).kind, 'layout');
    t.is((await fs.list((await fs.lookup(root, 'many'))!.node)).length, MANY);
  } finally {
    await volume.close();
  }
});
