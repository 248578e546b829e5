import test from 'ava';
import type { ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Layout, paint } from '../src/disk/layout.js';
import type { Bytes } from '../src/base/units.js';
import { readLayout } from '../src/io/layout-reader.js';
import { AbortError, type MaterializeResult, materialize } from '../src/io/materialize.js';
import { ReflinkError, canReflink, fsTypeName } from '../src/sys/reflink.js';
import { dataRanges } from '../src/sys/sparse.js';
import { type LoopFs, type LoopFsType, makeLoopFs } from './helpers/loopfs.js';
import { requireTool, run } from './helpers/run.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SOURCE_SIZE = 256 * MiB;
/** Where the source holds data; everything else is a hole. All 4 KiB-aligned. */
const SOURCE_DATA: readonly [Bytes, Bytes][] = [
  [0, 1 * MiB],
  [8 * MiB, 8 * MiB + 64 * KiB],
  [100 * MiB, 104 * MiB],
  [200 * MiB + 4 * KiB, 200 * MiB + 12 * KiB],
  [SOURCE_SIZE - 4 * KiB, SOURCE_SIZE],
];
const SOURCE_DATA_BYTES = SOURCE_DATA.reduce((n, [a, b]) => n + b - a, 0);

interface Fixture {
  readonly fs: LoopFs;
  readonly source: string;
  readonly sha256: string;
  readonly mtimeMs: number;
}

const fixtures = new Map<LoopFsType, Fixture>();

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 8 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function makeSource(path: string): Promise<void> {
  const f = await open(path, 'wx');
  try {
    await f.truncate(SOURCE_SIZE);
    for (const [a, b] of SOURCE_DATA) await f.write(randomBytes(b - a), 0, b - a, a);
    await f.sync();
  } finally {
    await f.close();
  }
}

test.before(async () => {
  for (const tool of ['mkfs.btrfs', 'mkfs.xfs', 'mkfs.ext4', 'losetup', 'btrfs', 'df']) requireTool(tool);
  for (const type of ['btrfs', 'xfs', 'ext4'] as const) {
    const fs = await makeLoopFs(type, 640);
    const source = join(fs.mountpoint, 'storage', 'disk.raw');
    fixtures.set(type, { fs, source, sha256: '', mtimeMs: 0 }); // registered now so that after.always cleans it up
    await mkdir(join(fs.mountpoint, 'storage'));
    await mkdir(join(fs.mountpoint, 'out'));
    await makeSource(source);
    fixtures.set(type, { fs, source, sha256: await sha256(source), mtimeMs: (await stat(source)).mtimeMs });
  }
});

test.after.always(async () => {
  for (const f of fixtures.values()) await f.fs.cleanup();
});

function fixture(type: LoopFsType): Fixture {
  const f = fixtures.get(type);
  if (!f) throw new Error(`no ${type} fixture`);
  return f;
}

function outDir(type: LoopFsType): string {
  return join(fixture(type).fs.mountpoint, 'out');
}

/** Header bytes, file segments at block-aligned places (one with a sub-block tail), a zero gap, a footer. */
function alignedLayout(source: string): Layout {
  const size = 280 * MiB;
  return paint(size, [
    { kind: 'bytes', start: 0, data: randomBytes(4096 + 100) },
    { kind: 'file', start: 1 * MiB, length: SOURCE_SIZE, source: { path: source }, offset: 0 },
    { kind: 'file', start: 260 * MiB, length: 8 * MiB, source: { path: source }, offset: 100 * MiB },
    { kind: 'file', start: 270 * MiB, length: 10000, source: { path: source }, offset: 8 * MiB },
    { kind: 'bytes', start: size - 512, data: randomBytes(512) },
  ]);
}

/** The whole source at sector 63, as old MBR disks place their first partition. */
function unalignedLayout(source: string): Layout {
  const start = 63 * 512;
  return paint(start + SOURCE_SIZE + 512, [
    { kind: 'bytes', start: 0, data: randomBytes(512) },
    { kind: 'file', start, length: SOURCE_SIZE, source: { path: source }, offset: 0 },
    { kind: 'bytes', start: start + SOURCE_SIZE, data: randomBytes(512) },
  ]);
}

/** The materialized file reads exactly as the layout does through readLayout. */
async function assertMatchesLayout(t: ExecutionContext, layout: Layout, path: string): Promise<void> {
  const fds = new Map<string, number>();
  const out = await open(path, 'r');
  const handles = [out];
  try {
    t.is((await out.stat()).size, layout.size);
    const want = Buffer.alloc(8 * MiB);
    const got = Buffer.alloc(8 * MiB);
    for (let pos = 0; pos < layout.size; pos += want.length) {
      const n = await readLayout(layout, pos, want, want.length, async (s) => {
        let fd = fds.get(s.path);
        if (fd === undefined) {
          const h = await open(s.path, 'r');
          handles.push(h);
          fd = h.fd;
          fds.set(s.path, fd);
        }
        return { fd };
      });
      const { bytesRead } = await out.read(got, 0, n, pos);
      if (bytesRead !== n || !got.subarray(0, n).equals(want.subarray(0, n))) {
        t.fail(`${path} differs from the layout in [${pos}, ${pos + n})`);
        return;
      }
    }
    t.pass();
  } finally {
    for (const h of handles) await h.close();
  }
}

async function assertSourceUnchanged(t: ExecutionContext, type: LoopFsType): Promise<void> {
  const f = fixture(type);
  t.is((await stat(f.source)).mtimeMs, f.mtimeMs, 'source mtime unchanged');
  t.is(await sha256(f.source), f.sha256, 'source bytes unchanged');
}

async function assertNoTempFiles(t: ExecutionContext, dir: string): Promise<void> {
  t.deepEqual((await readdir(dir)).filter((n) => n.includes('.tmp-')), [], `no temp file left in ${dir}`);
}

async function usedBytes(mountpoint: string): Promise<Bytes> {
  await run('sync', ['-f', mountpoint]);
  const out = await run('df', ['-B1', '--output=used', mountpoint]);
  return Number(out.trim().split('\n')[1]);
}

/**
 * Space that `dest` holds on its own: on btrfs its exclusive extents; on XFS, which has no
 * per-file count, how much the filesystem's used space grew since `usedBefore`.
 */
async function ownBytes(type: LoopFsType, dest: string, usedBefore: Bytes): Promise<Bytes> {
  if (type !== 'btrfs') return (await usedBytes(fixture(type).fs.mountpoint)) - usedBefore;
  await run('sync', ['-f', dest]);
  const lines = (await run('btrfs', ['filesystem', 'du', '--raw', '-s', dest])).trim().split('\n');
  return Number(lines[lines.length - 1]!.trim().split(/\s+/)[1]); // Total Exclusive Set-shared Filename
}

async function materializeWithProgress(layout: Layout, dest: string, reflink: 'auto' | 'always' | 'never'): Promise<{ result: MaterializeResult; calls: [Bytes, Bytes][] }> {
  const calls: [Bytes, Bytes][] = [];
  const result = await materialize(layout, dest, { reflink, onProgress: (done, total) => calls.push([done, total]) });
  return { result, calls };
}

function assertProgress(t: ExecutionContext, calls: [Bytes, Bytes][], total: Bytes): void {
  t.true(calls.length > 1);
  t.true(calls.every(([, tot]) => tot === total));
  t.true(calls.every(([done], i) => i === 0 || done >= calls[i - 1]![0]), 'progress never goes back');
  t.deepEqual(calls[calls.length - 1], [total, total]);
}

test.serial('dataRanges finds the data of a sparse file', async (t) => {
  const f = await open(fixture('xfs').source, 'r');
  try {
    t.deepEqual([...dataRanges(f.fd, 0, SOURCE_SIZE)], SOURCE_DATA);
    t.deepEqual([...dataRanges(f.fd, 100 * MiB + 5, 150 * MiB)], [[100 * MiB + 5, 104 * MiB]]);
    t.deepEqual([...dataRanges(f.fd, 1 * MiB, 8 * MiB)], []);
  } finally {
    await f.close();
  }
});

test.serial('fsTypeName names the filesystems', (t) => {
  for (const type of ['btrfs', 'xfs', 'ext4'] as const) t.is(fsTypeName(fixture(type).fs.mountpoint), type);
});

test.serial('canReflink: same btrfs or XFS yes; across filesystems and on ext4 no', async (t) => {
  t.true(await canReflink(fixture('btrfs').source, outDir('btrfs')));
  t.true(await canReflink(fixture('xfs').source, outDir('xfs')));
  t.false(await canReflink(fixture('btrfs').source, outDir('xfs')));
  t.false(await canReflink(fixture('ext4').source, outDir('ext4')));
  for (const type of ['btrfs', 'xfs', 'ext4'] as const) await assertNoTempFiles(t, outDir(type));
  await assertSourceUnchanged(t, 'btrfs');
});

for (const type of ['btrfs', 'xfs'] as const) {
  test.serial(`${type}: always clones an aligned layout and shares the extents`, async (t) => {
    const { fs, source } = fixture(type);
    const layout = alignedLayout(source);
    const dest = join(outDir(type), 'aligned-always.vhd');
    const before = await usedBytes(fs.mountpoint);
    const { result, calls } = await materializeWithProgress(layout, dest, 'always');
    t.is(result.size, layout.size);
    t.is(result.clonedBytes, SOURCE_SIZE + 8 * MiB + 8192);
    t.is(result.copiedBytes, 10000 - 8192);
    t.is(result.bytesWritten, 4096 + 100 + 512);
    t.is(result.reason, undefined);
    const added = await ownBytes(type, dest, before);
    t.log(`output holds ${added} bytes of its own`);
    t.true(added < 1 * MiB, `reflinked output added ${added} bytes of its own`);
    await assertMatchesLayout(t, layout, dest);
    assertProgress(t, calls, layout.size);
    await assertNoTempFiles(t, outDir(type));
    await assertSourceUnchanged(t, type);
  });

  test.serial(`${type}: never copies, data only, holes stay holes`, async (t) => {
    const { fs, source } = fixture(type);
    const layout = alignedLayout(source);
    const dest = join(outDir(type), 'aligned-never.vhd');
    const before = await usedBytes(fs.mountpoint);
    const { result, calls } = await materializeWithProgress(layout, dest, 'never');
    t.is(result.clonedBytes, 0);
    t.is(result.copiedBytes, SOURCE_SIZE + 8 * MiB + 10000);
    t.regex(result.reason ?? '', /never/);
    const added = await ownBytes(type, dest, before);
    t.log(`output holds ${added} bytes of its own`);
    // The copy owns its data (the source's plus the 4 MiB range copied twice), not its holes.
    t.true(added >= SOURCE_DATA_BYTES + 4 * MiB, `copy added only ${added} bytes`);
    t.true(added < SOURCE_DATA_BYTES + 8 * MiB, `copy added ${added} bytes: holes were filled`);
    await assertMatchesLayout(t, layout, dest);
    assertProgress(t, calls, layout.size);
    await assertSourceUnchanged(t, type);
  });

  test.serial(`${type}: an unaligned layout fails in always mode and copies in auto`, async (t) => {
    const { source } = fixture(type);
    const layout = unalignedLayout(source);
    const dest = join(outDir(type), 'unaligned.vhd');
    const err = await t.throwsAsync(materialize(layout, dest, { reflink: 'always' }), { instanceOf: ReflinkError });
    t.regex(err?.message ?? '', /disk\.raw.*offsets differ/);
    await assertNoTempFiles(t, outDir(type));
    await t.throwsAsync(stat(dest), { code: 'ENOENT' });

    const result = await materialize(layout, dest, { reflink: 'auto' });
    t.is(result.clonedBytes, 0);
    t.is(result.copiedBytes, SOURCE_SIZE);
    t.regex(result.reason ?? '', /offsets differ modulo the 4096-byte block/);
    await assertMatchesLayout(t, layout, dest);
    await assertSourceUnchanged(t, type);
  });
}

test.serial('ext4: auto copies (no reflink) and the output stays sparse', async (t) => {
  const { source } = fixture('ext4');
  const layout = alignedLayout(source);
  const dest = join(outDir('ext4'), 'auto.vhd');
  const { result, calls } = await materializeWithProgress(layout, dest, 'auto');
  t.is(result.clonedBytes, 0);
  t.regex(result.reason ?? '', /EOPNOTSUPP/);
  const st = await stat(dest);
  t.is(st.size, layout.size);
  t.true(st.blocks * 512 < 16 * MiB, `output uses ${st.blocks * 512} bytes of ${st.size}`);
  await assertMatchesLayout(t, layout, dest);
  assertProgress(t, calls, layout.size);
  await assertSourceUnchanged(t, 'ext4');
});

test.serial('across filesystems (btrfs → XFS): auto falls back to copying, always fails', async (t) => {
  const { source } = fixture('btrfs');
  const layout = alignedLayout(source);
  const dest = join(outDir('xfs'), 'cross.vhd');
  const err = await t.throwsAsync(materialize(layout, dest, { reflink: 'always' }), { instanceOf: ReflinkError });
  t.regex(err?.message ?? '', /disk\.raw: cannot clone into .*cross\.vhd: EXDEV/);
  await assertNoTempFiles(t, outDir('xfs'));
  await t.throwsAsync(stat(dest), { code: 'ENOENT' });

  const result = await materialize(layout, dest, { reflink: 'auto' });
  t.is(result.clonedBytes, 0);
  t.is(result.copiedBytes, SOURCE_SIZE + 8 * MiB + 10000);
  t.regex(result.reason ?? '', /EXDEV/);
  await assertMatchesLayout(t, layout, dest);
  await assertSourceUnchanged(t, 'btrfs');
});

test.serial('an aborted build leaves neither the temp file nor dest', async (t) => {
  const { source } = fixture('btrfs');
  const layout = alignedLayout(source);
  const dest = join(outDir('btrfs'), 'aborted.vhd');
  const ac = new AbortController();
  const onProgress = (done: Bytes): void => {
    if (done > 0) ac.abort();
  };
  await t.throwsAsync(materialize(layout, dest, { reflink: 'never', onProgress, signal: ac.signal }), { instanceOf: AbortError, message: /aborted\.vhd: build aborted/ });
  await assertNoTempFiles(t, outDir('btrfs'));
  await t.throwsAsync(stat(dest), { code: 'ENOENT' });
});

test.serial('a source shorter than its segment is an error naming the file', async (t) => {
  const { source } = fixture('xfs');
  const layout = paint(SOURCE_SIZE + MiB, [{ kind: 'file', start: 0, length: SOURCE_SIZE + MiB, source: { path: source }, offset: 0 }]);
  const dest = join(outDir('xfs'), 'short.vhd');
  await t.throwsAsync(materialize(layout, dest, { reflink: 'auto' }), { message: /disk\.raw: short read/ });
  await assertNoTempFiles(t, outDir('xfs'));
});
