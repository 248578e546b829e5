// The benchmark's own data: a storage on a btrfs loop filesystem with one GPT disk backup whose
// volume holds data and holes, a fragmented copy of it, and a storage of many small backups.
import { randomFillSync } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bytes } from '../src/base/units.js';
import { buildDisk, MiB } from '../test/helpers/disk-builder.js';
import { type LoopFs, makeLoopFs } from '../test/helpers/loopfs.js';
import { run } from '../test/helpers/run.js';
import { RAW_VOLUME_OFFSET, imageFolderName, rawFileName, writeImageBackup } from '../test/helpers/urbackup-storage.js';

export interface FixtureSize {
  /** The loop filesystem; sparse, so only what is written takes space. */
  readonly fsMiB: number;
  readonly volumeMiB: number;
  /** The volume is cut into this many stripes, each data then a hole. */
  readonly stripes: number;
  /** Fraction of each stripe that holds data. */
  readonly dataFraction: number;
  /** Blocks of 4–64 KiB rewritten in the fragmented copy: each splits one extent into three. */
  readonly rewrites: number;
  readonly listingBackups: number;
  readonly listingClients: number;
}

export const FULL: FixtureSize = { fsMiB: 8192, volumeMiB: 2048, stripes: 16, dataFraction: 0.75, rewrites: 15000, listingBackups: 1000, listingClients: 50 };
export const QUICK: FixtureSize = { fsMiB: 1024, volumeMiB: 64, stripes: 8, dataFraction: 0.75, rewrites: 200, listingBackups: 40, listingClients: 4 };

export const CLIENT = 'pc';
const FULL_TIME = '240101-1200';
const FRAG_TIME = '240102-1200';
const LETTER = 'C';
/** The scale storage's loop filesystem: its backups are reflinked copies, so only metadata takes space. */
const SCALE_FS_MIB = 4096;
/** Partition size of the many small backups of the listing storage. */
const SMALL_PARTITION_MIB = 8;
/** Write size while filling the volume. */
const FILL_CHUNK: Bytes = 8 * MiB;
const MIN_REWRITE: Bytes = 4096;
const MAX_REWRITE: Bytes = 64 * 1024;

export class BenchFixtureError extends Error {
  override name = 'BenchFixtureError';
}

export interface BenchFixture {
  readonly fs: LoopFs;
  /** Scratch space on the same btrfs (caches, build outputs). */
  readonly scratch: string;
  readonly storage: string;
  /** The full backup's image folder and `.raw`. */
  readonly folder: string;
  readonly raw: string;
  readonly fragFolder: string;
  readonly fragRaw: string;
  /** Extents of the fragmented `.raw` (filefrag). */
  readonly fragExtents: number;
  /** Where the volume starts on the virtual disk, i.e. in synthvhd's `.vhd`. */
  readonly volumeOnDisk: Bytes;
  readonly volumeBytes: Bytes;
  readonly dataBytes: Bytes;
  /** `<client>/<folder>.vhd` under a synthvhd mount. */
  readonly vhdPath: string;
  readonly listing: string;
  readonly listingBackups: number;
  readonly listingClients: number;
  cleanup(): Promise<void>;
}

/** Fills stripe after stripe with random data followed by a hole (the `.raw` is already sparse). */
async function fillVolume(raw: string, size: FixtureSize): Promise<Bytes> {
  const fh = await open(raw, 'r+');
  const buf = Buffer.alloc(FILL_CHUNK);
  const stripe = (size.volumeMiB * MiB) / size.stripes;
  const dataPerStripe = Math.floor((stripe * size.dataFraction) / MiB) * MiB;
  try {
    for (let s = 0; s < size.stripes; s++) {
      for (let off = 0; off < dataPerStripe; off += FILL_CHUNK) {
        const n = Math.min(FILL_CHUNK, dataPerStripe - off);
        randomFillSync(buf, 0, n);
        await fh.write(buf, 0, n, RAW_VOLUME_OFFSET + s * stripe + off);
      }
    }
  } finally {
    await fh.close();
  }
  return dataPerStripe * size.stripes;
}

/**
 * Rewrites size.rewrites blocks of 4–64 KiB, spread evenly over the data of a reflinked copy,
 * each after at least one untouched block: every rewrite splits a shared extent into three.
 */
async function fragment(raw: string, size: FixtureSize, dataBytes: Bytes): Promise<void> {
  const pool = Buffer.alloc(MAX_REWRITE * 16);
  randomFillSync(pool);
  const stripe = (size.volumeMiB * MiB) / size.stripes;
  const perStripe = Math.ceil(size.rewrites / size.stripes);
  const step = Math.floor(dataBytes / size.stripes / perStripe / MIN_REWRITE) * MIN_REWRITE;
  if (step < 2 * MIN_REWRITE) throw new BenchFixtureError(`${raw}: ${size.rewrites} rewrites do not fit in ${dataBytes} bytes of data`);
  const fh = await open(raw, 'r+');
  try {
    for (let s = 0; s < size.stripes; s++) {
      for (let i = 0; i < perStripe; i++) {
        const len = Math.min(MIN_REWRITE * (1 + Math.floor(Math.random() * (MAX_REWRITE / MIN_REWRITE))), step - MIN_REWRITE);
        const from = Math.floor(Math.random() * (pool.length - len));
        await fh.write(pool, from, len, RAW_VOLUME_OFFSET + s * stripe + i * step + MIN_REWRITE);
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function extentsOf(path: string): Promise<number> {
  const out = await run('filefrag', [path]);
  const m = /: (\d+) extents? found/.exec(out);
  if (!m) throw new BenchFixtureError(`${path}: cannot read the extent count from filefrag: ${out.trim()}`);
  return Number(m[1]);
}

/** `YYMMDD-HHMM` of the n-th backup of a client: one per day from 2023-01-01. */
function backupTime(n: number): string {
  const d = new Date(Date.UTC(2023, 0, 1 + n, 3, 15));
  const p = (v: number): string => String(v).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}

/** Many backups that cost nothing: reflinked copies of one small sparse image and its `.raw.mbr`. */
async function writeListing(dest: string, template: string, work: string, size: Pick<FixtureSize, 'listingBackups' | 'listingClients'>): Promise<void> {
  const disk = await buildDisk({ table: 'gpt', sizeMiB: SMALL_PARTITION_MIB + 2, partitions: [{ sizeMiB: SMALL_PARTITION_MIB, type: 'msr' }] }, work);
  const img = await writeImageBackup({ storage: template, client: 'x', time: FULL_TIME, letter: LETTER, disk, partition: 1, kind: 'plain' });
  await disk.cleanup();
  const perClient = Math.ceil(size.listingBackups / size.listingClients);
  for (let n = 0; n < size.listingBackups; n++) {
    const time = backupTime(n % perClient);
    const folder = join(dest, `client${String(Math.floor(n / perClient)).padStart(2, '0')}`, imageFolderName(time, LETTER));
    await mkdir(folder, { recursive: true });
    const raw = join(folder, rawFileName(time, LETTER));
    await copyFile(img.raw, raw, constants.COPYFILE_FICLONE_FORCE);
    await copyFile(`${img.raw}.mbr`, `${raw}.mbr`);
    await writeFile(`${raw}.sync`, '');
  }
  await rm(template, { recursive: true, force: true });
}

export interface ScaleFixture {
  readonly fs: LoopFs;
  readonly scratch: string;
  readonly storage: string;
  readonly backups: number;
  readonly clients: number;
  /** A finished image folder to copy a new backup from. */
  readonly sample: { readonly client: string; readonly folder: string; readonly raw: string };
  cleanup(): Promise<void>;
}

/** A storage of `backups` small backups over `clients` clients on a btrfs loop filesystem of its own. */
export async function makeScaleFixture(backups: number, clients: number, log: (line: string) => void): Promise<ScaleFixture> {
  const work = await mkdtemp(join(tmpdir(), 'synthvhd-bench-scale-'));
  const fs = await makeLoopFs('btrfs', SCALE_FS_MIB);
  const cleanup = async (): Promise<void> => {
    await fs.cleanup();
    await rm(work, { recursive: true, force: true });
  };
  try {
    const scratch = join(fs.mountpoint, 'scratch');
    await mkdir(scratch);
    log(`fixture: storage of ${backups} backups over ${clients} clients`);
    const storage = join(fs.mountpoint, 'scale');
    await writeListing(storage, join(fs.mountpoint, 'template'), work, { listingBackups: backups, listingClients: clients });
    await run('sync', ['-f', storage]);
    const client = (await readdir(storage)).sort()[0]!;
    const folder = (await readdir(join(storage, client))).sort()[0]!;
    const raw = join(storage, client, folder, (await readdir(join(storage, client, folder))).find((n) => n.endsWith('.raw'))!);
    return { fs, scratch, storage, backups, clients, sample: { client, folder, raw }, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

export async function makeFixture(size: FixtureSize, log: (line: string) => void): Promise<BenchFixture> {
  const work = await mkdtemp(join(tmpdir(), 'synthvhd-bench-'));
  const fs = await makeLoopFs('btrfs', size.fsMiB);
  const cleanup = async (): Promise<void> => {
    await fs.cleanup();
    await rm(work, { recursive: true, force: true });
  };
  try {
    const storage = join(fs.mountpoint, 'storage');
    const scratch = join(fs.mountpoint, 'scratch');
    await mkdir(scratch);
    log(`fixture: GPT disk with a ${size.volumeMiB} MiB volume on btrfs (${fs.device})`);
    const disk = await buildDisk({ table: 'gpt', sizeMiB: size.volumeMiB + 2, partitions: [{ sizeMiB: size.volumeMiB, type: 'msr' }] }, work);
    const part = disk.partitions[0]!;
    const img = await writeImageBackup({ storage, client: CLIENT, time: FULL_TIME, letter: LETTER, disk, partition: 1, kind: 'plain', complete: false });
    await disk.cleanup();
    const dataBytes = await fillVolume(img.raw, size);
    await writeFile(`${img.raw}.sync`, '');

    log(`fixture: fragmented copy (${size.rewrites} rewritten blocks)`);
    const fragFolder = join(storage, CLIENT, imageFolderName(FRAG_TIME, LETTER));
    const fragRaw = join(fragFolder, rawFileName(FRAG_TIME, LETTER));
    await mkdir(fragFolder);
    await copyFile(img.raw, fragRaw, constants.COPYFILE_FICLONE_FORCE);
    await copyFile(`${img.raw}.mbr`, `${fragRaw}.mbr`);
    await fragment(fragRaw, size, dataBytes);
    await writeFile(`${fragRaw}.sync`, '');

    log(`fixture: listing storage of ${size.listingBackups} backups over ${size.listingClients} clients`);
    const listing = join(fs.mountpoint, 'listing');
    await writeListing(listing, join(fs.mountpoint, 'template'), work, size);
    await run('sync', ['-f', storage]);
    const names = await readdir(join(storage, CLIENT));
    if (names.length !== 2) throw new BenchFixtureError(`${storage}: expected 2 image folders, found ${names.join(', ')}`);
    return {
      fs,
      scratch,
      storage,
      folder: img.folder,
      raw: img.raw,
      fragFolder,
      fragRaw,
      fragExtents: await extentsOf(fragRaw),
      volumeOnDisk: part.startByte,
      volumeBytes: img.volumeBytes,
      dataBytes,
      vhdPath: `${CLIENT}/${imageFolderName(FULL_TIME, LETTER)}.vhd`,
      listing,
      listingBackups: size.listingBackups,
      listingClients: size.listingClients,
      cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
