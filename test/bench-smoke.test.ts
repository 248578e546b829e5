// `npm run bench` is not a test (timings are noisy); this only proves the script still runs end
// to end on its tiny fixture and writes every section of its JSON.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowseResults } from '../scripts/bench-browse-report.js';
import { TARGETS } from '../scripts/bench-report.js';
import { requireTool, run } from './helpers/run.js';

const BENCH = fileURLToPath(new URL('../scripts/bench.js', import.meta.url));

interface Series {
  runs: number[];
  median: number;
}

const isSeries = (s: Series | undefined): boolean => Array.isArray(s?.runs) && s!.runs.length === 1 && Number.isFinite(s!.median) && s!.median >= 0;

/** Section 8 (issue 23): in both modes, writes beside the plain file and reads beside a read-only open, every figure above zero. */
function overlaySeries(overlay: Record<string, Record<string, Record<string, Series>>>): Series[] {
  return ['passthrough', 'reflink'].flatMap((mode) => [
    overlay[mode]!['seqWrite']!['served']!, overlay[mode]!['seqWrite']!['plain']!, overlay[mode]!['randWrite']!['served']!, overlay[mode]!['randWrite']!['plain']!,
    overlay[mode]!['seqRead']!['readWrite']!, overlay[mode]!['seqRead']!['readOnly']!, overlay[mode]!['randRead']!['readWrite']!, overlay[mode]!['randRead']!['readOnly']!,
  ]);
}
const overlayMeasured = (s: Series): boolean => isSeries(s) && s.median > 0;

test('bench --quick writes every section of its JSON, with one finite run per measurement', async (t) => {
  for (const tool of ['fio', 'xmount', 'smbd', 'smbclient', 'pdbedit', 'filefrag', 'btrfs']) requireTool(tool);
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-bench-smoke-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'results.json');
  const stdout = await run(process.execPath, [BENCH, '--quick', '--out', out]);
  t.regex(stdout, /Targets \(issues 6, 11, 12, 14 and 23\)/);
  const r = JSON.parse(await readFile(out, 'utf8'));

  t.true(r.meta.quick);
  t.true(r.meta.fragExtents > 100, `fragmented copy has ${r.meta.fragExtents} extents`);
  for (const table of [r.sequential.cold, r.sequential.warm, r.sequential.fusePath, r.random.jobs1, r.random.jobs4, r.random.cachedJobs1, r.random.cachedJobs4]) {
    for (const target of TARGETS) t.true(isSeries(table[target]), `${target}: ${JSON.stringify(table[target])}`);
  }
  t.true(r.sequential.cold.raw.median > 0);
  for (const s of [r.samba.passthrough, r.samba.reflink, r.samba.plain, r.build.synthvhdSeconds, r.build.cpSeconds, r.build.nodeStartSeconds, r.cpu.passthroughPerGiB, r.cpu.reflinkPerGiB]) t.true(isSeries(s), JSON.stringify(s));
  t.true(r.build.synthvhdExclusiveBytes >= 0 && r.build.cpExclusiveBytes >= 0);
  for (const s of [r.listing.startSeconds, r.listing.firstSeconds, r.listing.secondSeconds]) t.true(isSeries(s), JSON.stringify(s));
  t.true(r.listing.peakRssBytes > 0);
  t.true(isSeries(r.firstByte.passthroughMs) && isSeries(r.firstByte.reflinkMs));
  // Issue 14, with what a start costs before synthvhd's own work beside it.
  for (const k of ['startSeconds', 'nodeStartSeconds', 'storageListingSeconds', 'firstSeconds', 'secondSeconds']) t.true(Number.isFinite(r.scale[k]) && r.scale[k] > 0, `scale.${k}: ${r.scale[k]}`);
  // Issue 12: the bench backup and the four genuine ones, each with every kind's size.
  t.is(r.dynamic.sizes.length, 5);
  for (const d of r.dynamic.sizes) t.true(d.dataBytes > 0 && d.vhdx > 0 && d.vhdx < d.vhdxFixed && d.vhdDynamic > 0 && d.vhd > 0, JSON.stringify(d));
  for (const s of [r.dynamic.seqCold.fixed, r.dynamic.seqCold.dynamic, r.dynamic.smbSeconds.fixed, r.dynamic.smbSeconds.dynamic]) t.true(isSeries(s), JSON.stringify(s));
  for (const s of overlaySeries(r.overlay)) t.true(overlayMeasured(s), JSON.stringify(s));
  t.regex(stdout, /Targets \(issue 22\)/);
  assertBrowse(t, r.browse);

  t.true(r.checks.length >= 23);
  for (const c of r.checks) t.is(typeof c.pass, 'boolean', c.what);
});

/** Section 9 (issue 22): both walks of both volumes on each side, the listing, the large file and extract, each with one run. */
function assertBrowse(t: ExecutionContext, b: BrowseResults): void {
  for (const v of [b.ntfs, b.ext4]) {
    t.true(v.files > 100, JSON.stringify(v));
    for (const w of [v.readSeconds, v.statSeconds]) for (const s of [w.running, w.fresh, w.other]) t.true(isSeries(s), JSON.stringify(s));
  }
  for (const s of [b.firstListingMs, b.largeFile.passthroughSeconds, b.largeFile.reflinkSeconds, b.largeFile.rawSeconds, b.extract.extractSeconds, b.extract.cpSeconds, b.extract.nodeStartSeconds]) t.true(isSeries(s), JSON.stringify(s));
  t.true(b.largeFile.extents >= 1 && b.largeFile.bytes > 0);
  t.true(b.walkPeakRssBytes > 0 && b.extract.extractExclusiveBytes >= 0);
}

test('bench --quick --only browse writes section 9 alone, with its targets', async (t) => {
  for (const tool of ['mkntfs', 'ntfs-3g', 'mkfs.ext4', 'losetup', 'btrfs']) requireTool(tool);
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-bench-smoke-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'results.json');
  const stdout = await run(process.execPath, [BENCH, '--quick', '--only', 'browse', '--out', out]);
  t.regex(stdout, /Targets \(issue 22\)/);
  const r = JSON.parse(await readFile(out, 'utf8'));
  assertBrowse(t, r.browse);
  t.is(r.checks.length, 10);
  t.is(r.sequential, undefined, 'no other section ran');
});

test('bench --quick --only dynamic writes section 7 alone, with its targets', async (t) => {
  for (const tool of ['fio', 'smbd', 'smbclient', 'pdbedit', 'filefrag', 'btrfs']) requireTool(tool);
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-bench-smoke-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'results.json');
  const stdout = await run(process.execPath, [BENCH, '--quick', '--only', 'dynamic', '--out', out]);
  t.regex(stdout, /Targets \(issue 12\)/);
  t.regex(stdout, /FUSE seq cold, whole file, s/);
  const r = JSON.parse(await readFile(out, 'utf8'));
  t.is(r.dynamic.sizes.length, 5);
  for (const s of [r.dynamic.seqCold.fixed, r.dynamic.seqCold.dynamic, r.dynamic.smbSeconds.fixed, r.dynamic.smbSeconds.dynamic]) t.true(isSeries(s), JSON.stringify(s));
  t.deepEqual(r.checks.map((c: { what: string }) => c.what), ['dynamic VHDX / (1.02 × data + 8 MiB)', 'FUSE seq cold, whole file, dynamic s / fixed VHDX s']);
  t.is(r.sequential, undefined, 'no other section ran');
});

test('bench --quick --only overlay writes section 8 alone, with its targets', async (t) => {
  for (const tool of ['fio', 'filefrag', 'btrfs']) requireTool(tool);
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-bench-smoke-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'results.json');
  const stdout = await run(process.execPath, [BENCH, '--quick', '--only', 'overlay', '--out', out]);
  t.regex(stdout, /Targets \(issue 23\)/);
  t.regex(stdout, /8\. Read-write opens/);
  const r = JSON.parse(await readFile(out, 'utf8'));
  for (const s of overlaySeries(r.overlay)) t.true(overlayMeasured(s), JSON.stringify(s));
  t.is(r.checks.length, 8);
  for (const c of r.checks) t.is(typeof c.pass, 'boolean', c.what);
  t.is(r.sequential, undefined, 'no other section ran');
});
