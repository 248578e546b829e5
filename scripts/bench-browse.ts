// Benchmark section 9 (issue 22): the files of a backup through the mount's image folders
// against ntfs-3g and the kernel's ext4 on a read-only loop device of the same `.raw`, the first
// listing of an image folder, a large file against the same bytes of the `.raw`, serve's peak
// RSS over a walk, and `extract --reflink always` against `cp --reflink=always`.
import { open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Bytes } from '../src/base/units.js';
import { openNtfs } from '../src/filesystem/ntfs/ntfs-filesystem.js';
import { nodeAt } from '../src/io/extract-tree.js';
import { openFileVolume } from '../src/io/file-volume.js';
import { RAW_VOLUME_OFFSET } from '../src/urbackup/raw-file.js';
import { mountReadOnly } from '../test/helpers/ext4-volume.js';
import { run } from '../test/helpers/run.js';
import { type BrowseFixture, type BrowseVolume, LARGE_FILE } from './bench-browse-fixture.js';
import type { BrowseResults, Walks } from './bench-browse-report.js';
import type { Series } from './bench-report.js';
import { BenchError, benchNode, CLI, dropCaches, exclusiveBytes, peakRss, seconds, startServe, timed } from './bench-system.js';

type SideBySide = <T extends string>(items: readonly T[], runs: number, measure: (item: T) => Promise<number>) => Promise<Record<T, Series>>;

const READ_CHUNK: Bytes = 1024 * 1024;
/** The walks, the same shell command on every side: every file read, or every name stat'ed. */
const WALKS = {
  read: (dir: string) => `find "${dir}" -type f -exec cat {} + > /dev/null`,
  stat: (dir: string) => `find "${dir}" -printf '%s %T@\\n' > /dev/null`,
} as const;
type Walk = keyof typeof WALKS;

/** A mounted view of a volume, made fresh for each run so that no side keeps what it read before. */
interface View {
  readonly dir: string;
  readonly pid?: number;
  stop(): Promise<void>;
}

async function synthvhdView(fx: BrowseFixture, v: BrowseVolume, n: number, cacheDir?: string): Promise<View> {
  const mode = cacheDir ? 'reflink' : 'passthrough';
  const served = await startServe({ storage: fx.storage, mount: join(fx.scratch, `mnt-browse-${n}`), mode, ...(cacheDir && { cacheDir }) });
  return { dir: join(served.mountpoint, v.mountPath), pid: served.pid, stop: served.stop };
}

/** ntfs-3g -o ro on a read-only loop device of the volume (the `.raw` from RAW_VOLUME_OFFSET). */
async function ntfs3gView(v: BrowseVolume, mount: string): Promise<View> {
  const device = (await run('losetup', ['-r', '--find', '--show', '--offset', String(RAW_VOLUME_OFFSET), '--sizelimit', String(v.volumeBytes), v.raw])).trim();
  try {
    await run('mkdir', ['-p', mount]);
    await run('ntfs-3g', ['-o', 'ro', device, mount]);
  } catch (e) {
    await run('losetup', ['-d', device]).catch(() => undefined);
    throw e;
  }
  return {
    dir: mount,
    async stop() {
      await run('umount', [mount]).catch(() => run('umount', ['-l', mount]));
      await run('losetup', ['-d', device]).catch(() => undefined);
    },
  };
}

async function kernelView(v: BrowseVolume): Promise<View> {
  const m = await mountReadOnly(v.raw, RAW_VOLUME_OFFSET, v.volumeBytes);
  return { dir: m.mountpoint, stop: m.cleanup };
}

async function fileCount(dir: string): Promise<number> {
  return Number((await run('bash', ['-c', `set -o pipefail; find "${dir}" -type f | wc -l`])).trim());
}

/**
 * A passthrough `serve` that walked `twin` (another backup of the same volume) with `walk` first:
 * a running server, its code compiled, that never opened `v` (docs/performance.md §2).
 */
async function runningView(fx: BrowseFixture, v: BrowseVolume, twin: BrowseVolume, n: number, walk: Walk): Promise<View> {
  const served = await startServe({ storage: fx.storage, mount: join(fx.scratch, `mnt-browse-${n}`), mode: 'passthrough' });
  try {
    await run('bash', ['-c', WALKS[walk](join(served.mountpoint, twin.mountPath))]);
  } catch (e) {
    await served.stop();
    throw e;
  }
  return { dir: join(served.mountpoint, v.mountPath), pid: served.pid, stop: served.stop };
}

const SIDES = ['running', 'fresh', 'other'] as const;
type Side = (typeof SIDES)[number];

/**
 * Cold walks of one volume: synthvhd, on a running server and on one started for the walk,
 * against `other`, alternating, every cache dropped before each; every side must see the
 * volume's every file first. Also the highest VmHWM of the servers started for a walk.
 */
async function walks(fx: BrowseFixture, v: BrowseVolume, twin: BrowseVolume, other: (n: number) => Promise<View>, runs: number, sideBySide: SideBySide): Promise<Walks & { peakRssBytes: number }> {
  let n = 0;
  let rss = 0;
  const views: Record<Side, (k: number, walk: Walk) => Promise<View>> = {
    running: (k, walk) => runningView(fx, v, twin, k, walk),
    fresh: (k) => synthvhdView(fx, v, k),
    other,
  };
  for (const side of SIDES) {
    const view = await views[side](n++, 'stat');
    try {
      const files = await fileCount(view.dir);
      if (files !== v.files) throw new BenchError(`${view.dir}: ${files} files, expected ${v.files}`);
    } finally {
      await view.stop();
    }
  }
  const one = (walk: Walk) => async (side: Side): Promise<number> => {
    const view = await views[side](n++, walk);
    try {
      dropCaches();
      const s = await timed(() => run('bash', ['-c', WALKS[walk](view.dir)]));
      if (side === 'fresh') rss = Math.max(rss, await peakRss(view.pid!));
      return s;
    } finally {
      await view.stop();
    }
  };
  const read = await sideBySide(SIDES, runs, one('read'));
  const stat = await sideBySide(SIDES, runs, one('stat'));
  return { files: v.files, readSeconds: read, statSeconds: stat, peakRssBytes: rss };
}

/** The `.raw` byte ranges that hold the NTFS volume's `path`, from our own reader's Layout. */
async function rawRanges(v: BrowseVolume, path: string): Promise<{ offset: Bytes; length: Bytes }[]> {
  const volume = await openFileVolume(v.raw, RAW_VOLUME_OFFSET, v.volumeBytes);
  try {
    const fs = await openNtfs(volume);
    const data = await fs.data(await nodeAt(fs, path));
    if (data.kind !== 'layout') throw new BenchError(`${v.raw}: ${path} is not stored plainly`);
    return data.layout.segments.map((s) => {
      if (s.kind !== 'file') throw new BenchError(`${v.raw}: ${path} has a ${s.kind} segment at ${s.start} (the fixture writes random data only)`);
      return { offset: s.offset, length: s.length };
    });
  } finally {
    await volume.close();
  }
}

/** Seconds to read `ranges` of `file` with 1 MiB buffered reads. */
async function readRanges(file: string, ranges: readonly { offset: Bytes; length: Bytes }[]): Promise<number> {
  const buf = Buffer.alloc(READ_CHUNK);
  const t = process.hrtime.bigint();
  const fh = await open(file, 'r');
  try {
    for (const r of ranges) {
      for (let done = 0; done < r.length; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, r.length - done), r.offset + done);
        if (bytesRead === 0) throw new BenchError(`${file}: ends before byte ${r.offset + done}`);
        done += bytesRead;
      }
    }
  } finally {
    await fh.close();
  }
  return seconds(t);
}

/** First READDIR of an image folder on a server that never opened it, caches dropped (ms). */
async function firstListing(fx: BrowseFixture, runs: number, sideBySide: SideBySide): Promise<Series> {
  let n = 0;
  const r = await sideBySide(['synthvhd'] as const, runs, async () => {
    const view = await synthvhdView(fx, fx.ntfs, 100 + n++);
    try {
      dropCaches();
      const t = process.hrtime.bigint();
      const names = await readdir(view.dir);
      const ms = seconds(t) * 1000;
      if (names.length === 0) throw new BenchError(`${view.dir}: empty`);
      return ms;
    } finally {
      await view.stop();
    }
  });
  return r.synthvhd;
}

/** Runs of the large-file row beyond the others' (not with --quick's one): on this VM a cold GiB's read swings by a third from run to run with what freed memory before it (docs/performance.md §1). */
const LARGE_FILE_EXTRA_RUNS = 2;

/** The large file read through a passthrough-mode and a reflink-mode mount (which clones it at open, docs/browsing.md §3), against its extents in the `.raw`. */
async function largeFile(fx: BrowseFixture, runs: number, sideBySide: SideBySide): Promise<BrowseResults['largeFile']> {
  const ranges = await rawRanges(fx.large, LARGE_FILE);
  const cacheDir = join(fx.scratch, 'cache');
  const views = { passthrough: await synthvhdView(fx, fx.large, 200), reflink: await synthvhdView(fx, fx.large, 201, cacheDir) };
  try {
    const whole = [{ offset: 0, length: fx.largeBytes }];
    const sides = ['passthrough', 'reflink', 'raw'] as const;
    const coldRead = (side: (typeof sides)[number]): Promise<number> => {
      dropCaches();
      return side === 'raw' ? readRanges(fx.large.raw, ranges) : readRanges(join(views[side].dir, LARGE_FILE), whole);
    };
    // One untimed round first: each server compiles its read path, and the memory the walks before
    // freed is touched again on every side alike (docs/performance.md §1, memory the VM gave back).
    for (const side of sides) await coldRead(side);
    const got = await sideBySide(sides, runs === 1 ? 1 : runs + LARGE_FILE_EXTRA_RUNS, coldRead);
    return { bytes: fx.largeBytes, extents: ranges.length, passthroughSeconds: got.passthrough, reflinkSeconds: got.reflink, rawSeconds: got.raw };
  } finally {
    for (const v of Object.values(views)) await v.stop();
    await rm(cacheDir, { recursive: true, force: true });
  }
}

async function extract(fx: BrowseFixture, runs: number, sideBySide: SideBySide): Promise<BrowseResults['extract']> {
  const out = { extract: join(fx.scratch, 'extracted.bin'), cp: join(fx.scratch, 'copied.bin') };
  const extractTo = (dest: string) => run(benchNode(), [CLI, 'extract', fx.large.folder, LARGE_FILE, '-o', dest, '--reflink', 'always']);
  // cp copies the same extents: a first extract, which shares the `.raw`'s.
  const source = join(fx.scratch, 'large.bin');
  await extractTo(source);
  // extract does not fsync: each side is timed with the sync that makes its copy durable.
  const steps = {
    extract: async () => {
      await extractTo(out.extract);
      await run('sync', ['-f', out.extract]);
    },
    cp: async () => {
      await run('cp', ['--reflink=always', source, out.cp]);
      await run('sync', ['-f', out.cp]);
    },
    node: () => run(benchNode(), ['-e', '0']),
  };
  const times = await sideBySide(['extract', 'cp', 'node'] as const, runs, async (k) => {
    if (k !== 'node') await rm(out[k], { force: true });
    await run('sync', ['-f', fx.scratch]);
    dropCaches();
    return timed(steps[k]);
  });
  const result = { bytes: fx.largeBytes, extractSeconds: times.extract, cpSeconds: times.cp, nodeStartSeconds: times.node, extractExclusiveBytes: await exclusiveBytes(out.extract) };
  for (const f of [...Object.values(out), source]) await rm(f, { force: true });
  return result;
}

export async function browseSection(fx: BrowseFixture, runs: number, sideBySide: SideBySide, log: (line: string) => void): Promise<BrowseResults> {
  log(`9. browse: NTFS walks, ${fx.ntfs.files} files, synthvhd against ntfs-3g`);
  const ntfs = await walks(fx, fx.ntfs, fx.twins.ntfs, (n) => ntfs3gView(fx.ntfs, join(fx.scratch, `mnt-ntfs3g-${n}`)), runs, sideBySide);
  log(`9. browse: ext4 walks, ${fx.ext4.files} files, synthvhd against the kernel`);
  const ext4 = await walks(fx, fx.ext4, fx.twins.ext4, () => kernelView(fx.ext4), runs, sideBySide);
  log('9. browse: first listing of an image folder, cold');
  const firstListingMs = await firstListing(fx, runs, sideBySide);
  log(`9. browse: a ${fx.largeBytes / 2 ** 20} MiB file cold, against its bytes in the .raw`);
  const large = await largeFile(fx, runs, sideBySide);
  log('9. browse: extract --reflink always of the large file');
  const ex = await extract(fx, runs, sideBySide);
  return {
    ntfs: { files: ntfs.files, readSeconds: ntfs.readSeconds, statSeconds: ntfs.statSeconds },
    ext4: { files: ext4.files, readSeconds: ext4.readSeconds, statSeconds: ext4.statSeconds },
    walkPeakRssBytes: ext4.peakRssBytes,
    walkPeakRssFiles: ext4.files,
    firstListingMs,
    largeFile: large,
    extract: ex,
  };
}
