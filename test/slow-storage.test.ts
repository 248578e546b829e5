// A storage slow to answer must not hold up the other disks: one backup's files sit on a FUSE
// mirror whose every read takes seconds, and a fast disk is read while readers wait on the slow one.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { run } from './helpers/run.js';
import * as sc from './helpers/scenarios.js';
import { CLI } from './helpers/cli.js';
import { ServeTracker, eventually, forceUnmount } from './helpers/serve-process.js';

const SLOW_MIRROR = fileURLToPath(new URL('./helpers/slow-mirror.js', import.meta.url));
/** Every read of the slow storage answers after this long. */
const DELAY_MS = 3000;

let fs: LoopFs | undefined;
let work = '';
let mirror: ChildProcess | undefined;
let mirrorMount = '';
/** The slow backup's image folder name. */
let slowFolder = '';
const tracker = new ServeTracker();

test.after.always(async () => {
  await tracker.cleanup();
  mirror?.kill('SIGTERM');
  if (mirrorMount) await forceUnmount(mirrorMount);
  await fs?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

test.serial('a cold read of one disk finishes while 16 readers of a stalled disk wait', async (t) => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-slow-'));
  fs = await makeLoopFs('btrfs', 1024);
  const storage = join(fs.mountpoint, 'storage');
  const staging = join(fs.mountpoint, 'staging');
  await mkdir(storage);
  await mkdir(staging);
  const fast = await sc.biosMbr({ storage, workDir: work, kind: 'btrfs' });
  const slow = await sc.grubMbr({ storage: staging, workDir: work, kind: 'btrfs' });
  // The slow backup's image folder is a (ZFS-style) folder link to the slow mirror of its files.
  mirrorMount = join(work, 'slow');
  await mkdir(mirrorMount);
  const proc = spawn(process.execPath, [SLOW_MIRROR, slow.images._dev_sda1!.folder, mirrorMount, String(DELAY_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  mirror = proc;
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.once('data', () => resolve());
    proc.once('exit', (code) => reject(new Error(`slow mirror exited (${code})`)));
  });
  await mkdir(join(storage, slow.client));
  slowFolder = basename(slow.images._dev_sda1!.folder);
  await symlink(mirrorMount, join(storage, slow.client, slowFolder));

  const m = await tracker.mountpoint(work, 'mnt');
  await tracker.serve(['--storage', storage, '--mount', m, '--mode', 'passthrough'], 60_000);
  const slowDisk = join(m, slow.client, `${slowFolder}.vhd`);
  const fastDisk = join(m, fast.client, `${basename(fast.images.C!.folder)}.vhd`);
  await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);

  // 16 readers of the slow disk's partition (1 MiB in): each request waits DELAY_MS.
  let slowDone = 0;
  const slowReaders = Array.from({ length: 16 }, (_, i) =>
    run('dd', [`if=${slowDisk}`, 'of=/dev/null', 'bs=128k', `skip=${8 + i * 16}`, 'count=2', 'status=none']).then(() => slowDone++),
  );
  await new Promise((r) => setTimeout(r, 1000));
  t.is(slowDone, 0, 'the slow readers are waiting');
  // Meanwhile 16 MiB of the other disk, cold: it must not queue behind them.
  await run('dd', [`if=${fastDisk}`, 'of=/dev/null', 'bs=1M', 'skip=51', 'count=16', 'status=none']);
  t.is(slowDone, 0, 'the fast disk was read while every slow reader still waited');
  await Promise.all(slowReaders);
  t.is(slowDone, 16);
});

test.serial('SIGTERM while the first scan waits on the slow storage: serve mounts, unmounts and exits 0', async (t) => {
  // A storage whose one backup is the slow mirror of the test above: its .raw.mbr takes DELAY_MS to read.
  const storage = join(fs!.mountpoint, 'storage-slow-scan');
  await mkdir(join(storage, 'slowpc'), { recursive: true });
  await symlink(mirrorMount, join(storage, 'slowpc', slowFolder));
  await run('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
  const m = await tracker.mountpoint(work, 'mnt-stop');
  const proc = spawn(process.execPath, [CLI, 'serve', '--storage', storage, '--mount', m, '--mode', 'passthrough'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  // Logged once serve handles signals, just before the scan.
  t.true(await eventually(async () => /scanning /.test(log), 10_000), log);
  t.notRegex(log, /serving \d+ files/, 'the signal comes during the first scan');
  proc.kill('SIGTERM');
  t.is(await exited, 0, log);
  t.regex(log, /SIGTERM: stopping once the first scan is done/);
  t.regex(log, /serving \d+ files at[^]*SIGTERM: unmounting/);
  t.false((await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === m), 'nothing left mounted');
});
