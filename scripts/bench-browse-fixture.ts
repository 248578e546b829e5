// The browse rows' data (issue 22): an NTFS volume of many small files and one of a single large
// file made through ntfs-3g, and an ext4 volume of many more small files made through the kernel,
// kept in the bench's cache folder (keyed by their recipe), each put into a storage on a btrfs
// loop filesystem as an UrBackup image backup of its own client.
import { createHash, randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Bytes } from '../src/base/units.js';
import { buildDisk, MiB } from '../test/helpers/disk-builder.js';
import { makeExt4Image } from '../test/helpers/ext4-volume.js';
import { type LoopFs, makeLoopFs } from '../test/helpers/loopfs.js';
import { makeNtfsImage, withNtfs3g } from '../test/helpers/ntfs-volume.js';
import { run } from '../test/helpers/run.js';
import { imageFolderName, writeImageBackup } from '../test/helpers/urbackup-storage.js';
import { BENCH_CACHE } from './bench-system.js';

export interface VolumeRecipe {
  readonly fs: 'ntfs' | 'ext4';
  readonly volumeMiB: number;
  readonly folders: number;
  readonly filesPerFolder: number;
  /** Small files are 0 to this many bytes, sizes spread evenly. */
  readonly maxFileBytes: Bytes;
  /** `/big/large.bin`, random data (0: none). */
  readonly largeMiB: number;
}

/** The walks' NTFS and ext4 volumes, and the NTFS volume of the large file (kept out of the walks). */
export interface BrowseSize {
  readonly ntfs: VolumeRecipe;
  readonly ext4: VolumeRecipe;
  readonly large: VolumeRecipe;
}

export const BROWSE_FULL: BrowseSize = {
  ntfs: { fs: 'ntfs', volumeMiB: 512, folders: 200, filesPerFolder: 100, maxFileBytes: 16 * 1024, largeMiB: 0 },
  ext4: { fs: 'ext4', volumeMiB: 1024, folders: 100, filesPerFolder: 1000, maxFileBytes: 4096, largeMiB: 0 },
  large: { fs: 'ntfs', volumeMiB: 1100, folders: 0, filesPerFolder: 0, maxFileBytes: 0, largeMiB: 1024 },
};
export const BROWSE_QUICK: BrowseSize = {
  ntfs: { fs: 'ntfs', volumeMiB: 64, folders: 10, filesPerFolder: 30, maxFileBytes: 16 * 1024, largeMiB: 0 },
  ext4: { fs: 'ext4', volumeMiB: 64, folders: 10, filesPerFolder: 100, maxFileBytes: 4096, largeMiB: 0 },
  large: { fs: 'ntfs', volumeMiB: 32, folders: 0, filesPerFolder: 0, maxFileBytes: 0, largeMiB: 16 },
};

/** The large file, inside the NTFS volume. */
export const LARGE_FILE = '/big/large.bin';
/** Bumped when the way the volumes are filled changes (the recipe's numbers are in the key already). */
const FILL_VERSION = 1;
const WRITE_CHUNK: Bytes = 8 * MiB;
const TIME = '240301-1200';
/** The time of each walk volume's twin backup. */
const TWIN_TIME = '240302-1200';
/** Room on the loop filesystem beyond the two volumes' `.raw` files: the disk images written on the way, extracts. */
const LOOP_SLACK_MIB = 2048;

export interface BrowseVolume {
  readonly client: string;
  /** The image folder in the storage, and `<client>/<folder name>` under a mount. */
  readonly folder: string;
  readonly mountPath: string;
  readonly raw: string;
  readonly volumeBytes: Bytes;
  readonly files: number;
}

export interface BrowseFixture {
  readonly fs: LoopFs;
  readonly storage: string;
  readonly scratch: string;
  readonly ntfs: BrowseVolume;
  readonly ext4: BrowseVolume;
  /** A second image backup of each walk volume, its files reflinked: what a running server walks before (bench-browse.ts). */
  readonly twins: { readonly ntfs: BrowseVolume; readonly ext4: BrowseVolume };
  /** The NTFS volume holding LARGE_FILE alone. */
  readonly large: BrowseVolume;
  readonly largeBytes: Bytes;
  cleanup(): Promise<void>;
}

/** Files of the recipe, written with Node: `dNNN/fNNNN.bin`, then the large file. */
async function fill(root: string, r: VolumeRecipe): Promise<void> {
  const buf = Buffer.alloc(Math.max(WRITE_CHUNK, r.maxFileBytes));
  randomFillSync(buf);
  for (let d = 0; d < r.folders; d++) {
    const dir = join(root, `d${String(d).padStart(3, '0')}`);
    await mkdir(dir);
    for (let f = 0; f < r.filesPerFolder; f++) {
      const size = ((d * r.filesPerFolder + f) * 7919) % (r.maxFileBytes + 1);
      await writeFile(join(dir, `f${String(f).padStart(4, '0')}.bin`), buf.subarray(f % 64, (f % 64) + size));
    }
  }
  if (!r.largeMiB) return;
  await mkdir(join(root, 'big'));
  const fh = await open(join(root, LARGE_FILE), 'w');
  try {
    for (let off = 0; off < r.largeMiB * MiB; off += WRITE_CHUNK) {
      randomFillSync(buf, 0, WRITE_CHUNK);
      await fh.write(buf, 0, WRITE_CHUNK, off);
    }
  } finally {
    await fh.close();
  }
}

const makers: Record<'ntfs' | 'ext4', (img: string, r: VolumeRecipe, work: string) => Promise<void>> = {
  async ntfs(img, r, work) {
    await makeNtfsImage(img, r.volumeMiB, { clusterSize: 4096 });
    await withNtfs3g(img, join(work, 'ntfs-rw'), [], (mnt) => fill(mnt, r));
  },
  ext4: (img, r) => makeExt4Image(img, r.volumeMiB, ['-N', String(r.folders * r.filesPerFolder + 1024)], (mnt) => fill(mnt, r)),
};

/** The volume image of a recipe, from the cache or made now and cached (under a temporary name until whole). */
async function cachedVolume(r: VolumeRecipe, work: string, log: (line: string) => void): Promise<string> {
  const key = createHash('sha256').update(JSON.stringify({ r, FILL_VERSION })).digest('hex').slice(0, 16);
  const img = join(BENCH_CACHE, `browse-${r.fs}-${key}.img`);
  if (existsSync(img)) return img;
  log(`fixture: making the ${r.fs} volume of ${r.folders * r.filesPerFolder} files and ${r.largeMiB} MiB more (cached in ${img})`);
  await mkdir(BENCH_CACHE, { recursive: true });
  // Another bench may be making the same one: each its own temporary name, the last rename wins.
  const tmp = `${img}.${process.pid}.tmp`;
  try {
    await makers[r.fs](tmp, r, work);
    await rename(tmp, img);
  } finally {
    await rm(tmp, { force: true });
  }
  return img;
}

/** One image backup of `client` whose single partition holds the volume image `img`. */
async function backupOf(img: string, client: string, r: VolumeRecipe, storage: string, work: string): Promise<BrowseVolume> {
  const disk = await buildDisk({ table: 'gpt', sizeMiB: r.volumeMiB + 2, partitions: [{ sizeMiB: r.volumeMiB, type: 'msr' }] }, work);
  try {
    await run('dd', [`if=${img}`, `of=${disk.path}`, 'bs=1M', `seek=${disk.partitions[0]!.startByte}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
    const written = await writeImageBackup({ storage, client, time: TIME, letter: 'C', disk, partition: 1, kind: 'plain' });
    const name = imageFolderName(TIME, 'C');
    return { client, folder: written.folder, mountPath: `${client}/${name}`, raw: written.raw, volumeBytes: written.volumeBytes, files: r.folders * r.filesPerFolder + (r.largeMiB ? 1 : 0) };
  } finally {
    await disk.cleanup();
  }
}

/** A second image backup of `v`'s client with the same volume, its files reflinked (no space, pages of their own). */
async function twinOf(v: BrowseVolume, storage: string): Promise<BrowseVolume> {
  const name = imageFolderName(TWIN_TIME, 'C');
  const folder = join(storage, v.client, name);
  await mkdir(folder);
  for (const f of await readdir(v.folder)) await run('cp', ['--reflink=always', join(v.folder, f), join(folder, f.replace(TIME, TWIN_TIME))]);
  return { ...v, folder, mountPath: `${v.client}/${name}`, raw: join(folder, basename(v.raw).replace(TIME, TWIN_TIME)) };
}

export async function makeBrowseFixture(size: BrowseSize, log: (line: string) => void): Promise<BrowseFixture> {
  const work = await mkdtemp(join(tmpdir(), 'synthvhd-bench-browse-'));
  const images = { ntfs: await cachedVolume(size.ntfs, work, log), ext4: await cachedVolume(size.ext4, work, log), large: await cachedVolume(size.large, work, log) };
  const fs = await makeLoopFs('btrfs', size.ntfs.volumeMiB + size.ext4.volumeMiB + size.large.volumeMiB + LOOP_SLACK_MIB);
  const cleanup = async (): Promise<void> => {
    await fs.cleanup();
    await rm(work, { recursive: true, force: true });
  };
  try {
    const storage = join(fs.mountpoint, 'storage');
    const scratch = join(fs.mountpoint, 'scratch');
    await mkdir(scratch);
    log('fixture: the volumes as image backups on btrfs');
    const diskWork = join(fs.mountpoint, 'disks');
    await mkdir(diskWork);
    const ntfs = await backupOf(images.ntfs, 'ntfs', size.ntfs, storage, diskWork);
    const ext4 = await backupOf(images.ext4, 'ext4', size.ext4, storage, diskWork);
    const large = await backupOf(images.large, 'large', size.large, storage, diskWork);
    const twins = { ntfs: await twinOf(ntfs, storage), ext4: await twinOf(ext4, storage) };
    await run('sync', ['-f', storage]);
    return { fs, storage, scratch, ntfs, ext4, twins, large, largeBytes: size.large.largeMiB * MiB, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
