// The FUSE request path of `serve` over a real storage: how it stops (also on a non-English
// system), that a failing read is an answer and not a hang, that the kernel's caches never show a
// mix of two disks after a backup changes, SEEK_DATA/SEEK_HOLE, and the fallbacks for kernels
// without FUSE passthrough (6.9) and cachestat (6.5).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { synthvhd } from './helpers/cli.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { run } from './helpers/run.js';
import * as sc from './helpers/scenarios.js';
import { dataRanges, dataRangesOf, merge, type Range } from './helpers/seek-map.js';
import { eventually, forceUnmount, ServeTracker } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';

const SLOW_MIRROR = fileURLToPath(new URL('./helpers/slow-mirror.js', import.meta.url));

let fs: LoopFs;
let work: string;
let storage: string;
let uefi: sc.Scenario;
let before: Record<string, string>;
const tracker = new ServeTracker();
let mirror: ChildProcess | undefined;
let mirrorMount = '';

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-reqpath-'));
  fs = await makeLoopFs('xfs', 1024);
  storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  uefi = await sc.uefiGpt({ storage, workDir: work, kind: 'plain' });
  before = await treeFingerprint(storage);
});

test.after.always(async () => {
  mirror?.kill('SIGTERM');
  if (mirrorMount) await forceUnmount(mirrorMount);
});

guardStorage(() => ({ tracker, fs, work, storage, before }));

const folderName = (letter: string): string => basename(uefi.images[letter]!.folder);
const vhdOf = (m: string, ext = 'vhd'): string => join(m, uefi.client, `${folderName('C')}.${ext}`);

async function build(args: string[], out: string): Promise<string> {
  const r = await synthvhd(['build', uefi.images.C!.folder, '-o', out, ...args]);
  if (r.code !== 0) throw new Error(r.stderr);
  return out;
}

/** The whole file read through one descriptor, from offset 0. */
function readAll(fd: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  for (let done = 0; done < size; ) {
    const n = readSync(fd, buf, done, size - done, done);
    if (n === 0) throw new Error(`end of file at ${done} of ${size}`);
    done += n;
  }
  return buf;
}

test.serial('SIGTERM under a German locale unmounts and exits 0 within 5 s; serve runs no child process', async (t) => {
  // systemd hands a service the system's locale; error texts of every tool are German then.
  await run('localedef', ['-i', 'de_DE', '-f', 'UTF-8', 'de_DE.UTF-8']);
  const m = await tracker.mountpoint(work, 'mnt-de');
  const env = { ...process.env, LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8', LANGUAGE: 'de' };
  const srv = await tracker.serve(['--storage', storage, '--mount', m, '--mode', 'passthrough'], undefined, env);
  const fd = openSync(vhdOf(m), 'r');
  t.is(readSync(fd, Buffer.alloc(1 << 20), 0, 1 << 20, 0), 1 << 20);
  closeSync(fd);
  const pid = srv.proc.pid!;
  const children: string[] = [];
  // Threads come and go while we look (the data-map thread ends by itself): a task gone between
  // readdir and open had no children then either.
  const childrenOf = (tid: string): Promise<string> =>
    readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ESRCH') return '';
      throw e;
    });
  for (const tid of await readdir(`/proc/${pid}/task`)) children.push(...(await childrenOf(tid)).split(' ').filter(Boolean));
  t.deepEqual(children, [], 'serve has no child processes');
  const start = Date.now();
  t.is(await srv.stop(), 0);
  t.true(Date.now() - start < 5000, `stopped after ${Date.now() - start} ms`);
  t.false((await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${m} `), 'the mount is gone');
});

test.serial('a disk whose partner completes later: new reads show it, a reader that kept the file open still reads one consistent disk', async (t) => {
  // The ESP image is not complete yet (no .raw.sync): C: is served alone, its ESP region zero.
  // (Moved aside and back by rename, which keeps the file as it was, for the storage check.)
  const sync = `${uefi.images.ESP!.raw}.sync`;
  await rename(sync, `${sync}-later`);
  const alone = await readFile(await build(['--no-partners'], join(work, 'alone.vhd')));
  const m = await tracker.mountpoint(work, 'mnt-change');
  const srv = await tracker.serve(['--storage', storage, '--mount', m, '--mode', 'passthrough']);
  const held = openSync(vhdOf(m), 'r');
  t.true(readAll(held, alone.length).equals(alone), 'served alone while the ESP is incomplete');

  // UrBackup finishes the ESP image.
  await rename(`${sync}-later`, sync);
  const whole = await readFile(await build([], join(work, 'whole.vhd')));
  t.false(whole.equals(alone));
  const shown = await eventually(async () => (await readFile(vhdOf(m))).equals(whole), 15_000);
  t.true(shown, 'a new open after the rescan reads the disk with its ESP, not cached pages of the old one');
  t.regex(srv.log(), /its contents changed/);
  t.true(readAll(held, alone.length).equals(alone), 'the reader that held the file open still reads the disk it opened');
  closeSync(held);
  t.is(await srv.stop(), 0);
});

test.serial('SEEK_DATA/SEEK_HOLE through the mount follow the layout; cp --sparse=always gives a sparse file with the same bytes', async (t) => {
  const m = await tracker.mountpoint(work, 'mnt-seek');
  const srv = await tracker.serve(['--storage', storage, '--mount', m, '--mode', 'passthrough']);
  const disk = vhdOf(m);
  const size = (await stat(disk)).size;
  // What the layout says: `bytes` are data, `zero` holes, `file` segments the data of their .raw.
  const inspect = JSON.parse((await synthvhd(['inspect', '--json', uefi.images.C!.folder])).stdout) as {
    segments: { kind: 'bytes' | 'file' | 'zero'; start: number; length: number; source?: string; offset?: number }[];
  };
  const want: Range[] = [[size - 512, size]]; // the fixed VHD footer follows the disk
  for (const s of inspect.segments) {
    if (s.kind === 'bytes') want.push([s.start, s.start + s.length]);
    if (s.kind === 'file') {
      const fd = openSync(s.source!, 'r');
      for (const [a, b] of dataRangesOf(fd, s.offset!, s.offset! + s.length)) want.push([s.start + a - s.offset!, s.start + b - s.offset!]);
      closeSync(fd);
    }
  }
  const got = dataRanges(disk, size);
  t.deepEqual(got, merge(want));
  t.true(got.reduce((n, [a, b]) => n + b - a, 0) < size / 2, 'most of the disk is holes');

  const copy = join(work, 'sparse-copy.vhd');
  await run('cp', ['--sparse=always', disk, copy]);
  await run('cmp', [copy, await build([], join(work, 'seek-built.vhd'))]);
  const st = await stat(copy);
  t.true(st.blocks * 512 < size / 2, `the copy allocates ${st.blocks * 512} of ${size} bytes`);
  t.is(await srv.stop(), 0);
});

test.serial('a read the storage fails is answered EIO and the server keeps serving the other disks', async (t) => {
  // A second storage whose one backup lies behind a FUSE mirror that fails every read past 2 MiB.
  const staging = join(fs.mountpoint, 'staging');
  const failing = join(fs.mountpoint, 'failing-storage');
  await mkdir(staging);
  const grub = await sc.grubMbr({ storage: staging, workDir: work, kind: 'plain' });
  mirrorMount = join(work, 'failing');
  await mkdir(mirrorMount);
  const proc = spawn(process.execPath, [SLOW_MIRROR, grub.images._dev_sda1!.folder, mirrorMount, '0', String(2 << 20)], { stdio: ['ignore', 'pipe', 'inherit'] });
  mirror = proc;
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.once('data', () => resolve());
    proc.once('exit', (code) => reject(new Error(`mirror exited (${code})`)));
  });
  await mkdir(join(failing, grub.client), { recursive: true });
  await symlink(mirrorMount, join(failing, grub.client, basename(grub.images._dev_sda1!.folder)));
  await symlink(join(storage, uefi.client), join(failing, uefi.client));

  const m = await tracker.mountpoint(work, 'mnt-fail');
  const srv = await tracker.serve(['--storage', failing, '--mount', m, '--mode', 'passthrough']);
  const bad = join(m, grub.client, `${basename(grub.images._dev_sda1!.folder)}.vhd`);
  const fd = openSync(bad, 'r');
  const e = t.throws(() => readSync(fd, Buffer.alloc(1 << 20), 0, 1 << 20, 16 << 20)) as NodeJS.ErrnoException;
  t.is(e.code, 'EIO');
  closeSync(fd);
  const good = await build([], join(work, 'good.vhd'));
  await run('cmp', [vhdOf(m), good]);
  t.is(srv.proc.exitCode, null, 'the server still runs');
  t.is(await srv.stop(), 0);
  mirror.kill('SIGTERM');
  await forceUnmount(mirrorMount);
  mirror = undefined;
});

test.serial('kernels without FUSE passthrough or cachestat: one log line each, and reads are the same bytes in both modes', async (t) => {
  const env = { ...process.env, SYNTHVHD_KERNEL_WITHOUT: 'passthrough,cachestat' };
  const whole = await build([], join(work, 'fallback-built.vhd'));
  for (const mode of ['passthrough', 'reflink'] as const) {
    const m = await tracker.mountpoint(work, `mnt-old-${mode}`);
    const cache = join(fs.mountpoint, `cache-${mode}`);
    const srv = await tracker.serve(['--storage', storage, '--mount', m, '--mode', mode, ...(mode === 'reflink' ? ['--cache-dir', cache] : [])], undefined, env);
    await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
    await run('cmp', [vhdOf(m), whole]);
    if (mode === 'reflink') {
      t.true(await eventually(async () => /reflinked copy ready/.test(srv.log()), 15_000), srv.log());
      // Built, but with no kernel passthrough it is read through the server.
      await run('cmp', [vhdOf(m), whole]);
    }
    const log = srv.log();
    t.is(log.match(/the kernel has no FUSE passthrough/g)?.length, 1, log);
    t.is(log.match(/the kernel has no cachestat/g)?.length, 1, log);
    t.is(await srv.stop(), 0);
  }
});
