// Benchmark section 8 (issue 23): what a read-write open of a served disk costs. Per mode, a
// server of its own on the bench storage, its overlay folder on the bench's btrfs: O_DIRECT writes
// through a read-write open of the `.vhd` against the same writes into a fresh file on that
// filesystem, and O_DIRECT reads of ranges nobody wrote through a read-write open against a
// read-only open of the same disk (docs/performance.md §2).
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Bytes } from '../src/base/units.js';
import { builtDisks } from '../test/helpers/built-disks.js';
import { run } from '../test/helpers/run.js';
import type { BenchFixture } from './bench-fixture.js';
import type { OverlayModeResults, OverlayResults, Series } from './bench-report.js';
import { type FioJob, type Served, fio, startServe } from './bench-system.js';

type SideBySide = <T extends string>(items: readonly T[], runs: number, measure: (item: T) => Promise<number>) => Promise<Record<T, Series>>;

const MiB: Bytes = 1024 * 1024;
const SEQ_BLOCK: Bytes = MiB;
const RANDOM_BLOCK: Bytes = 4096;
/** Bytes of each sequential run, from the volume's start: a few seconds per row. */
const SEQ_BYTES: Record<'full' | 'quick', Bytes> = { full: 256 * MiB, quick: 16 * MiB };
const RANDOM_SECONDS = { full: 3, quick: 1 };
/** How long reflink mode may take to build the bench's disk. */
const BUILD_WAIT_MS = 120_000;

export interface OverlayRun {
  readonly fx: BenchFixture;
  readonly quick: boolean;
  readonly runs: number;
  readonly sideBySide: SideBySide;
}

/** fio's figure for the row: MB/s for sequential runs, IOPS for random ones. */
async function figure(job: FioJob): Promise<number> {
  const r = await fio(job);
  return job.rw === 'read' || job.rw === 'write' ? r.bytesPerSecond / 1e6 : r.iops;
}

async function modeRows(o: OverlayRun, served: Served, plainFile: string, cacheDir: string | undefined): Promise<OverlayModeResults> {
  const { fx, runs, sideBySide } = o;
  const seqBytes = SEQ_BYTES[o.quick ? 'quick' : 'full'];
  const runtimeSeconds = RANDOM_SECONDS[o.quick ? 'quick' : 'full'];
  const disk = { file: join(served.mountpoint, fx.vhdPath), offset: fx.volumeOnDisk };
  const seq = { rw: 'write', blockSize: SEQ_BLOCK, length: seqBytes } as const;
  const rand = { rw: 'randwrite', blockSize: RANDOM_BLOCK, length: fx.volumeBytes, runtimeSeconds } as const;
  // Each run opens the disk anew, so its overlay starts empty; the plain file starts empty too.
  // The filesystem is synced first: the last run's freed overlay or plain file is not this one's cost.
  const write = (shape: typeof seq | typeof rand): Promise<Record<'served' | 'plain', Series>> =>
    sideBySide(['served', 'plain'] as const, runs, async (t) => {
      await rm(plainFile, { force: true });
      await run('sync', ['-f', dirname(plainFile)]);
      return figure({ ...shape, ...(t === 'served' ? disk : { file: plainFile, offset: 0 }), jobs: 1, direct: true });
    });
  const read = (shape: Omit<FioJob, 'file' | 'offset' | 'jobs'>): Promise<Record<'readWrite' | 'readOnly', Series>> =>
    sideBySide(['readWrite', 'readOnly'] as const, runs, (t) => figure({ ...shape, ...disk, jobs: 1, direct: true, readWriteOpen: t === 'readWrite' }));
  // Reflink mode's disk built (a first open starts the build) and on disk before anything else: a
  // writer opening while it is still being built writes over it through serve. Then the backing
  // bytes cached by one read of the volume, which in reflink mode goes to the built disk: read
  // during the build, it would fill the inode's own page cache, which the first passthrough open
  // then drops (fs/fuse/file.c fuse_finish_open, 2 GiB in ~80 ms of the first row).
  if (cacheDir) {
    await fio({ ...disk, rw: 'read', blockSize: SEQ_BLOCK, length: SEQ_BLOCK, jobs: 1 });
    await builtDisks(cacheDir, 1, BUILD_WAIT_MS);
    await run('sync', ['-f', cacheDir]);
  }
  await fio({ ...disk, rw: 'read', blockSize: SEQ_BLOCK, length: fx.volumeBytes, jobs: 1 });
  const result = {
    seqWrite: await write(seq),
    randWrite: await write(rand),
    seqRead: await read({ ...seq, rw: 'read' }),
    randRead: await read({ ...rand, rw: 'randread' }),
  };
  await rm(plainFile, { force: true });
  return result;
}

/** Section 8 in both modes; each server (and the plain file) is gone when it returns. */
export async function overlaySection(o: OverlayRun, log: (line: string) => void): Promise<OverlayResults> {
  const results: Partial<Record<'passthrough' | 'reflink', OverlayModeResults>> = {};
  for (const mode of ['passthrough', 'reflink'] as const) {
    log(`8. read-write opens, ${mode}`);
    const scratch = o.fx.scratch;
    // reflink: the overlays go to <cache-dir>/overlays, beside the built disks they clone, with a
    // limit that takes the whole disk: what the kernel's own writes need (docs/overlays.md §4).
    // The default, a quarter of the free space, is less than this small filesystem's disk.
    const cacheDir = mode === 'reflink' ? join(scratch, 'cache-overlay') : undefined;
    const served = await startServe({
      storage: o.fx.storage,
      mount: join(scratch, `mnt-overlay-${mode}`),
      mode,
      ...(cacheDir ? { cacheDir, overlayLimit: 2 * (o.fx.volumeOnDisk + o.fx.volumeBytes) } : { overlayDir: join(scratch, 'overlays') }),
    });
    try {
      results[mode] = await modeRows(o, served, join(scratch, `overlay-plain-${mode}`), cacheDir);
    } finally {
      await served.stop();
    }
  }
  return { seqBytes: SEQ_BYTES[o.quick ? 'quick' : 'full'], runtimeSeconds: RANDOM_SECONDS[o.quick ? 'quick' : 'full'], passthrough: results.passthrough!, reflink: results.reflink! };
}
