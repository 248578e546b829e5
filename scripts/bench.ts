// `npm run bench [-- --quick] [--runs N] [--out FILE] [--only scale|dynamic|overlay|browse] [--backups N]`: synthvhd against xmount and direct reads
// (issue 6). Builds its own fixture on a btrfs loop filesystem, measures every target side by
// side in one run (alternating order, median of runs), prints a table and writes JSON.
import { createHash } from 'node:crypto';
import { cpus, release } from 'node:os';
import { constants } from 'node:fs';
import { copyFile, mkdir, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Bytes } from '../src/base/units.js';
import { run } from '../test/helpers/run.js';
import { type BenchFixture, FULL, QUICK, makeFixture, makeScaleFixture } from './bench-fixture.js';
import { type BenchResults, type Check, type PerTarget, type ScaleResults, type Series, TARGETS, type Target, checks, dynamicChecks, dynamicTable, overlayChecks, overlayTable, scaleChecks, scaleTable, series, table } from './bench-report.js';
import { dynamicSection } from './bench-dynamic.js';
import { overlaySection } from './bench-overlay.js';
import { browseSection } from './bench-browse.js';
import { BROWSE_FULL, BROWSE_QUICK, makeBrowseFixture } from './bench-browse-fixture.js';
import { type BrowseResults, browseChecks, browseTable } from './bench-browse-report.js';
import { startSamba } from './bench-samba.js';
import { BenchError, benchNode, CLI, type Served, cpuSeconds, exclusiveBytes, dropCaches, fio, peakRss, seconds, startServe, startXmount, timed, useShippedNode } from './bench-system.js';

/** Default runs per measurement (median taken); --quick uses one. */
const DEFAULT_RUNS = 3;
const RANDOM_SECONDS = { full: 4, quick: 1 };
/** At most this many runs of the slow listing step (each starts a server over the whole storage). */
const MAX_LISTING_RUNS = 3;
/** Bytes compared across targets to prove they read the same volume range. */
const PROBE_BYTES = 64 * 1024;
const READ_1M = 1024 * 1024;
const READ_4K = 4096;
/** smbd port: far from 445 and from other people's test servers. */
const SMB_PORT_BASE = 46000;

/** The scale rows' storage (issue 14): 10 000 backups over 50 clients; --quick: a small one. */
const SCALE = { full: { backups: 10_000, clients: 50 }, quick: { backups: 200, clients: 10 } };
/** How long the idle server's CPU is measured. */
const IDLE_SECONDS = { full: 30, quick: 5 };
/** How often the mount is looked at while waiting for a change to show. */
const CHANGE_POLL_MS = 50;
/** Longest wait for a change to show before the bench gives up on it. */
const CHANGE_WAIT_MS = 60_000;

const ONLY = ['scale', 'dynamic', 'overlay', 'browse'] as const;
type Only = (typeof ONLY)[number];

interface Options {
  readonly quick: boolean;
  /** Only these rows (`scale`; `dynamic`: section 7, `overlay`: section 8, on the bench backup; `browse`: section 9): no fixture or server for the others. */
  readonly only: Only | undefined;
  /** Backups of the scale rows' storage. */
  readonly backups: number;
  readonly runs: number;
  readonly out: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      out: { type: 'string', default: 'bench-results.json' },
      only: { type: 'string' },
      backups: { type: 'string' },
    },
  });
  if (values.only !== undefined && !(ONLY as readonly string[]).includes(values.only)) throw new BenchError(`--only: '${values.only}' is not one of: ${ONLY.join(', ')}`);
  const backups = values.backups === undefined ? SCALE[values.quick ? 'quick' : 'full'].backups : Number(values.backups);
  if (!Number.isInteger(backups) || backups < 1) throw new BenchError(`--backups: '${values.backups}' is not a positive whole number`);
  const runs = values.runs === undefined ? (values.quick ? 1 : DEFAULT_RUNS) : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new BenchError(`--runs: '${values.runs}' is not a positive whole number`);
  return { quick: values.quick!, runs, out: resolve(values.out!), only: values.only as Only | undefined, backups };
}

const log = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

/** Rotates the order each round so no target always goes first (or right after a cache drop). */
function rotated<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Runs `measure` for every item, `runs` rounds, alternating; returns each item's series. */
async function sideBySide<T extends string>(items: readonly T[], runs: number, measure: (item: T) => Promise<number>): Promise<Record<T, Series>> {
  const got = new Map<T, number[]>(items.map((i) => [i, []]));
  for (let r = 0; r < runs; r++) for (const i of rotated(items, r)) got.get(i)!.push(await measure(i));
  return Object.fromEntries(items.map((i) => [i, series(got.get(i)!)])) as Record<T, Series>;
}

interface ReadTarget {
  readonly file: string;
  /** Where the volume starts in this file. */
  readonly offset: Bytes;
}

/** Cleanup steps, undone in reverse order however the run ends. */
class Stack {
  private readonly steps: (() => Promise<void>)[] = [];
  push(step: () => Promise<void>): void {
    this.steps.push(step);
  }
  async unwind(): Promise<void> {
    while (this.steps.length) await this.steps.pop()!().catch((e: Error) => log(`cleanup: ${e.message}`));
  }
}

async function readAt(file: string, pos: Bytes, len: Bytes): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(len);
    const { bytesRead } = await fh.read(buf, 0, len, pos);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Every target must show the same bytes at the same volume offsets, or the comparison is void. */
async function verifyTargets(targets: Record<Target, ReadTarget>, fx: BenchFixture): Promise<void> {
  for (const at of [0, Math.floor(fx.dataBytes / 3 / READ_4K) * READ_4K, fx.volumeBytes - PROBE_BYTES]) {
    const sums = await Promise.all(TARGETS.map(async (t) => createHash('sha256').update(await readAt(targets[t].file, targets[t].offset + at, PROBE_BYTES)).digest('hex')));
    if (new Set(sums).size !== 1) throw new BenchError(`targets differ at volume byte ${at}: ${TARGETS.map((t, i) => `${t}=${sums[i]!.slice(0, 12)}`).join(' ')}`);
  }
}

async function readSections(targets: Record<Target, ReadTarget>, pids: Record<'synthvhd-passthrough' | 'synthvhd-reflink', number>, fx: BenchFixture, o: Options): Promise<Pick<BenchResults, 'sequential' | 'random' | 'cpu'>> {
  const seq = (t: Target, invalidate = false): Promise<number> =>
    fio({ file: targets[t].file, offset: targets[t].offset, length: fx.volumeBytes, rw: 'read', blockSize: READ_1M, jobs: 1, invalidate }).then(
      (r) => r.bytesPerSecond / 1e6,
    );
  log('1. sequential reads, cold');
  const cpu: Record<keyof typeof pids, number[]> = { 'synthvhd-passthrough': [], 'synthvhd-reflink': [] };
  const cold = await sideBySide(TARGETS, o.runs, async (t) => {
    dropCaches();
    if (!(t in pids)) return seq(t);
    const pid = pids[t as keyof typeof pids];
    const before = await cpuSeconds(pid);
    const mbs = await seq(t);
    cpu[t as keyof typeof pids].push((await cpuSeconds(pid)) - before);
    return mbs;
  });
  const perGiB = (k: keyof typeof pids): Series => series(cpu[k].map((c) => c / (fx.volumeBytes / 2 ** 30)));
  log('1. sequential reads, warm');
  for (const t of TARGETS) await seq(t);
  const warm = await sideBySide(TARGETS, o.runs, (t) => seq(t));
  log('1. sequential reads, warm backing file, the virtual file\'s own cache dropped');
  const fusePath = await sideBySide(TARGETS, o.runs, (t) => seq(t, t !== 'raw'));
  const runtimeSeconds = o.quick ? RANDOM_SECONDS.quick : RANDOM_SECONDS.full;
  const random = async (jobs: number): Promise<PerTarget> => {
    log(`2. random 4 KiB reads, ${jobs} job(s)`);
    return sideBySide(TARGETS, o.runs, (t) => {
      dropCaches();
      return fio({ file: targets[t].file, offset: targets[t].offset, length: fx.volumeBytes, rw: 'randread', blockSize: READ_4K, jobs, runtimeSeconds }).then((r) => r.iops);
    });
  };
  // The backing files cached, each virtual file's own pages dropped before the run (fio's
  // default): every 4 KiB read is a FUSE request. The raw file's own pages are the backing ones.
  const backingCached = async (jobs: number): Promise<PerTarget> => {
    log(`2. random 4 KiB reads, backing files cached, ${jobs} job(s)`);
    for (const t of TARGETS) await seq(t);
    return sideBySide(TARGETS, o.runs, (t) =>
      fio({ file: targets[t].file, offset: targets[t].offset, length: fx.volumeBytes, rw: 'randread', blockSize: READ_4K, jobs, runtimeSeconds, invalidate: t !== 'raw' }).then((r) => r.iops),
    );
  };
  return {
    sequential: { cold, warm, fusePath },
    random: { runtimeSeconds, jobs1: await random(1), jobs4: await random(4), cachedJobs1: await backingCached(1), cachedJobs4: await backingCached(4) },
    cpu: { passthroughPerGiB: perGiB('synthvhd-passthrough'), reflinkPerGiB: perGiB('synthvhd-reflink') },
  };
}

async function sambaSection(served: Record<'passthrough' | 'reflink', Served>, fx: BenchFixture, o: Options, stack: Stack): Promise<Pick<BenchResults, 'samba' | 'dynamic'>> {
  log('3. Samba downloads');
  const smb = await startSamba(
    [
      { name: 'passthrough', path: served.passthrough.mountpoint },
      { name: 'reflink', path: served.reflink.mountpoint },
      { name: 'plain', path: dirname(fx.raw) },
    ],
    SMB_PORT_BASE + (process.pid % 1000),
  );
  stack.push(smb.stop);
  const files = { passthrough: fx.vhdPath, reflink: fx.vhdPath, plain: basename(fx.raw) };
  const sizes = {
    passthrough: (await stat(join(served.passthrough.mountpoint, fx.vhdPath))).size,
    reflink: (await stat(join(served.reflink.mountpoint, fx.vhdPath))).size,
    plain: (await stat(fx.raw)).size,
  };
  const samba = await sideBySide(['passthrough', 'reflink', 'plain'] as const, o.runs, async (s) => {
    dropCaches();
    return sizes[s] / (await smb.download(s, files[s])) / 1e6;
  });
  log('7. dynamic against fixed VHDX: sizes, FUSE reads, Samba downloads');
  return { samba, dynamic: await dynamicSection(fx, served.passthrough, smb, 'passthrough', o.runs, sideBySide) };
}

async function buildSection(fx: BenchFixture, o: Options): Promise<BenchResults['build']> {
  log('4. reflink build of the fragmented backup');
  const out = { synthvhd: join(fx.scratch, 'built.vhd'), cp: join(fx.scratch, 'copied.raw') };
  // build fsyncs its output (a crash never leaves a half-built file under the final name); cp
  // does not, so it is timed with the sync that makes its copy as durable.
  const build = {
    synthvhd: () => run(benchNode(), [CLI, 'build', fx.fragFolder, '-o', out.synthvhd, '--reflink', 'always']),
    cp: async () => {
      await run('cp', ['--reflink=always', fx.fragRaw, out.cp]);
      await run('sync', ['-f', out.cp]);
    },
    node: () => run(benchNode(), ['-e', '0']),
  };
  const times = await sideBySide(['synthvhd', 'cp', 'node'] as const, o.runs, async (k) => {
    if (k !== 'node') await rm(out[k], { force: true });
    await run('sync', ['-f', fx.scratch]);
    dropCaches();
    return timed(build[k]);
  });
  const result = {
    extents: fx.fragExtents,
    synthvhdSeconds: times.synthvhd,
    cpSeconds: times.cp,
    nodeStartSeconds: times.node,
    synthvhdExclusiveBytes: await exclusiveBytes(out.synthvhd),
    cpExclusiveBytes: await exclusiveBytes(out.cp),
  };
  await rm(out.synthvhd);
  await rm(out.cp);
  return result;
}

/**
 * Seconds of an `ls -l` of a mount and every client folder in it (`ls -lR` down to the disks: the
 * image folders beside them are listed, not entered, docs/browsing.md §3), which must list at
 * least `backups` disk files.
 */
async function timedListing(mountpoint: string, backups: number): Promise<number> {
  let out = '';
  const s = await timed(async () => (out = await run('sh', ['-c', 'ls -l "$1" "$1"/*', 'ls', mountpoint])));
  const files = (out.match(/\.vhdx?$/gm) ?? []).length;
  if (files < backups) throw new BenchError(`ls -l ${mountpoint} ${mountpoint}/*: ${files} files, expected at least ${backups}`);
  return s;
}

async function listingSection(fx: BenchFixture, o: Options): Promise<BenchResults['listing']> {
  log(`5. listing ${fx.listingBackups} backups`);
  const start: number[] = [];
  const first: number[] = [];
  const second: number[] = [];
  let rss = 0;
  for (let r = 0; r < Math.min(o.runs, MAX_LISTING_RUNS); r++) {
    const served = await startServe({ storage: fx.listing, mount: join(fx.scratch, `mnt-list-${r}`), mode: 'passthrough' });
    try {
      start.push(served.startSeconds);
      first.push(await timedListing(served.mountpoint, fx.listingBackups));
      second.push(await timedListing(served.mountpoint, fx.listingBackups));
      rss = Math.max(rss, await peakRss(served.pid));
    } finally {
      await served.stop();
    }
  }
  return { backups: fx.listingBackups, clients: fx.listingClients, startSeconds: series(start), firstSeconds: series(first), secondSeconds: series(second), peakRssBytes: rss };
}

/** Polls the mount's client folder until `done(names)` holds; returns the seconds it took. */
async function until(dir: string, done: (names: string[]) => boolean, what: string): Promise<number> {
  const t = process.hrtime.bigint();
  for (;;) {
    if (done(await readdir(dir).catch(() => []))) return seconds(t);
    if (seconds(t) * 1000 > CHANGE_WAIT_MS) throw new BenchError(`${dir}: ${what} did not show within ${CHANGE_WAIT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, CHANGE_POLL_MS));
  }
}

async function scaleSection(o: Options, stack: Stack): Promise<ScaleResults> {
  const clients = Math.min(o.backups, SCALE[o.quick ? 'quick' : 'full'].clients);
  const fx = await makeScaleFixture(o.backups, clients, log);
  stack.push(fx.cleanup);
  log(`7. scale: ${fx.backups} backups`);
  // What a start costs before any of synthvhd's own work, from the same dropped caches: Node's
  // start-up, and a listing of the storage itself (its folders' entries and every file's stat).
  dropCaches();
  const nodeStartSeconds = await timed(() => run(benchNode(), ['-e', '0']));
  dropCaches();
  const storageListingSeconds = await timed(() => run('ls', ['-lR', fx.storage]));
  dropCaches();
  const served = await startServe({ storage: fx.storage, mount: join(fx.scratch, 'mnt-scale'), mode: 'passthrough' });
  try {
    const ls = (): Promise<number> => timedListing(served.mountpoint, fx.backups);
    // First: the kernel knows no name of the mount (drop_caches drops its dentries); second: right after.
    // The first run's first listing is also the first stat of every dynamic disk (its size).
    const first: number[] = [];
    const second: number[] = [];
    for (let r = 0; r < o.runs; r++) {
      dropCaches();
      first.push(await ls());
      second.push(await ls());
    }
    const firstSeconds = series(first).median;
    const secondSeconds = series(second).median;
    const idleSeconds = IDLE_SECONDS[o.quick ? 'quick' : 'full'];
    const cpu0 = await cpuSeconds(served.pid);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleCpuPercent = ((await cpuSeconds(served.pid)) - cpu0) / idleSeconds * 100;

    // A new backup as UrBackup writes it: the folder and its files, the .raw.sync last.
    const { client, folder, raw } = fx.sample;
    const time = '991231-2359';
    const name = `${time}_Image_C`;
    const dir = join(fx.storage, client, name);
    const newRaw = join(dir, `Image_C_${time}.raw`);
    await mkdir(dir);
    await copyFile(raw, newRaw, constants.COPYFILE_FICLONE_FORCE);
    await copyFile(`${raw}.mbr`, `${newRaw}.mbr`);
    await new Promise((r) => setTimeout(r, 1000));
    const mounted = join(served.mountpoint, client);
    if ((await readdir(mounted)).some((n) => n.startsWith(name))) throw new BenchError(`${dir}: shown before its .raw.sync`);
    await writeFile(`${newRaw}.sync`, '');
    const newVisibleSeconds = await until(mounted, (n) => n.includes(`${name}.vhd`), 'a new backup');
    await rm(dir, { recursive: true });
    const deletedGoneSeconds = await until(mounted, (n) => !n.includes(`${name}.vhd`), 'a deleted backup');
    if (!(await readdir(mounted)).includes(`${folder}.vhd`)) throw new BenchError(`${mounted}: ${folder}.vhd went away too`);
    return {
      backups: fx.backups,
      clients,
      startSeconds: served.startSeconds,
      nodeStartSeconds,
      storageListingSeconds,
      firstSeconds,
      firstAfterStartSeconds: first[0]!,
      secondSeconds,
      idleCpuPercent,
      idleSeconds,
      peakRssBytes: await peakRss(served.pid),
      newVisibleSeconds,
      deletedGoneSeconds,
    };
  } finally {
    await served.stop();
  }
}

async function firstByteSection(fx: BenchFixture, o: Options): Promise<BenchResults['firstByte']> {
  log('6. first byte of a disk never opened before');
  let n = 0;
  const ms = await sideBySide(['passthrough', 'reflink'] as const, o.runs, async (mode) => {
    const id = `${mode}-${n++}`;
    const cacheDir = join(fx.scratch, `cache-${id}`);
    const served = await startServe({ storage: fx.storage, mount: join(fx.scratch, `mnt-${id}`), mode, cacheDir });
    try {
      dropCaches();
      const buf = Buffer.alloc(READ_4K);
      const t = process.hrtime.bigint();
      const fh = await open(join(served.mountpoint, fx.vhdPath), 'r');
      const { bytesRead } = await fh.read(buf, 0, READ_4K, fx.volumeOnDisk);
      const elapsed = seconds(t) * 1000;
      await fh.close();
      if (bytesRead !== READ_4K) throw new BenchError(`${fx.vhdPath}: short first read (${bytesRead} bytes)`);
      return elapsed;
    } finally {
      await served.stop();
      await rm(cacheDir, { recursive: true, force: true });
    }
  });
  return { passthroughMs: ms.passthrough, reflinkMs: ms.reflink };
}

/** `--only`: the section's table on stdout, and its JSON (the run's facts, the section, its checks) in --out. */
async function writeAlone(o: Options, section: Record<string, unknown>, cs: readonly Check[], text: string): Promise<void> {
  process.stdout.write(text);
  const meta = { quick: o.quick, runs: o.runs, date: new Date().toISOString(), kernel: release(), cpus: cpus().length };
  await writeFile(o.out, JSON.stringify({ meta, ...section, checks: cs }, null, 2) + '\n');
  log(`results written to ${o.out}`);
}

/** Section 9 (issue 22) on its own fixture. */
async function browseRows(o: Options, stack: Stack): Promise<BrowseResults> {
  const fx = await makeBrowseFixture(o.quick ? BROWSE_QUICK : BROWSE_FULL, log);
  stack.push(fx.cleanup);
  return browseSection(fx, o.runs, sideBySide, log);
}

async function main(): Promise<void> {
  const o = options();
  if (process.getuid?.() !== 0) throw new BenchError('the benchmark needs root (loop devices, mounts, drop_caches)');
  const stack = new Stack();
  const interrupt = (): void => void stack.unwind().finally(() => process.exit(130));
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
  try {
    await useShippedNode(log);
    if (o.only === 'scale') {
      const scale = await scaleSection(o, stack);
      const cs = scaleChecks(scale);
      return await writeAlone(o, { scale }, cs, scaleTable(scale, cs));
    }
    if (o.only === 'browse') {
      const browse = await browseRows(o, stack);
      const cs = browseChecks(browse);
      return await writeAlone(o, { browse }, cs, browseTable(browse, cs));
    }
    const fx = await makeFixture(o.quick ? QUICK : FULL, log);
    stack.push(fx.cleanup);
    if (o.only === 'overlay') {
      const overlay = await overlaySection({ fx, quick: o.quick, runs: o.runs, sideBySide }, log);
      const cs = overlayChecks(overlay);
      return await writeAlone(o, { overlay }, cs, overlayTable(overlay, cs));
    }
    const passthrough = await startServe({ storage: fx.storage, mount: join(fx.scratch, 'mnt-passthrough'), mode: 'passthrough', formats: 'vhd,vhdx,vhdx-fixed' });
    stack.push(passthrough.stop);
    if (o.only === 'dynamic') {
      const smb = await startSamba([{ name: 'passthrough', path: passthrough.mountpoint }], SMB_PORT_BASE + (process.pid % 1000));
      stack.push(smb.stop);
      log('7. dynamic against fixed VHDX: sizes, FUSE reads, Samba downloads');
      const dynamic = await dynamicSection(fx, passthrough, smb, 'passthrough', o.runs, sideBySide);
      const cs = dynamicChecks(dynamic);
      return await writeAlone(o, { dynamic }, cs, dynamicTable(dynamic, cs));
    }
    const reflink = await startServe({ storage: fx.storage, mount: join(fx.scratch, 'mnt-reflink'), mode: 'reflink', cacheDir: join(fx.scratch, 'cache') });
    stack.push(reflink.stop);
    const xmount = await startXmount(fx.raw, join(fx.scratch, 'mnt-xmount'));
    stack.push(xmount.stop);
    // xmount shows the .raw as it is (plus a footer): the volume sits where it does in the .raw.
    const rawOffset = (await stat(fx.raw)).size - fx.volumeBytes;
    const targets: Record<Target, ReadTarget> = {
      'synthvhd-passthrough': { file: join(passthrough.mountpoint, fx.vhdPath), offset: fx.volumeOnDisk },
      'synthvhd-reflink': { file: join(reflink.mountpoint, fx.vhdPath), offset: fx.volumeOnDisk },
      xmount: { file: xmount.vhd, offset: rawOffset },
      raw: { file: fx.raw, offset: rawOffset },
    };
    // Also builds reflink mode's disk, so that the read sections do not time the build.
    await verifyTargets(targets, fx);

    const reads = await readSections(targets, { 'synthvhd-passthrough': passthrough.pid, 'synthvhd-reflink': reflink.pid }, fx, o);
    const { samba, dynamic } = await sambaSection({ passthrough, reflink }, fx, o, stack);
    const overlay = await overlaySection({ fx, quick: o.quick, runs: o.runs, sideBySide }, log);
    const build = await buildSection(fx, o);
    const listing = await listingSection(fx, o);
    const firstByte = await firstByteSection(fx, o);
    const scale = await scaleSection(o, stack);
    const browse = await browseRows(o, stack);
    const results: BenchResults = {
      meta: {
        quick: o.quick,
        runs: o.runs,
        date: new Date().toISOString(),
        kernel: release(),
        cpus: cpus().length,
        volumeBytes: fx.volumeBytes,
        dataBytes: fx.dataBytes,
        fragExtents: fx.fragExtents,
      },
      ...reads,
      samba,
      ...(dynamic && { dynamic }),
      overlay,
      build,
      listing,
      firstByte,
      scale,
    };
    const cs = checks(results);
    const bcs = browseChecks(browse);
    process.stdout.write(table(results, cs) + '\n' + browseTable(browse, bcs));
    await writeFile(o.out, JSON.stringify({ ...results, browse, checks: [...cs, ...bcs] }, null, 2) + '\n');
    log(`results written to ${o.out}`);
  } finally {
    await stack.unwind();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
