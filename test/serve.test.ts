// `synthvhd serve` over an UrBackup storage on btrfs, in passthrough and reflink mode, read only
// from other processes: the disks equal `build` output and the restored disks, and the mount
// behaves as a read-only filesystem should.
import { createHash, randomInt } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { synthvhd } from './helpers/cli.js';
import { hashFilesOnDisk } from './helpers/disk-builder.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { run } from './helpers/run.js';
import * as sc from './helpers/scenarios.js';
import { type ServeProcess, ServeTracker, eventually } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';

let fs: LoopFs;
let work: string;
let storage: string;
let before: Record<string, string>;
let uefi: sc.Scenario;
let bios: sc.Scenario;
let kn: sc.Scenario;
const built = new Map<string, string>(); // "client/name" → built file
const tracker = new ServeTracker();
const mountpoint = (name: string): Promise<string> => tracker.mountpoint(work, name);
const serve = (args: string[]): Promise<ServeProcess> => tracker.serve(args);

function nameOf(s: sc.Scenario, letter: string, ext: string): string {
  return `${s.client}/${s.images[letter]!.folder.split('/').at(-1)}${ext.includes('.') ? '-' : '.'}${ext}`;
}

/** Finished builds in a cache dir: a disk file whose sidecar says it is complete. */
async function builtFiles(cache: string): Promise<string[]> {
  const names = await readdir(cache).catch(() => [] as string[]);
  const done: string[] = [];
  for (const n of names.filter((x) => x.endsWith('.sources.json'))) {
    const sidecar = JSON.parse(await readFile(join(cache, n), 'utf8').catch(() => '{}')) as { complete?: boolean };
    if (sidecar.complete) done.push(n.slice(0, -'.sources.json'.length));
  }
  return done;
}

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-serve-'));
  fs = await makeLoopFs('btrfs', 3072);
  storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  const ctx = { storage, workDir: work, kind: 'btrfs' as const };
  uefi = await sc.uefiGpt(ctx);
  bios = await sc.biosMbr(ctx);
  kn = await sc.gpt4Kn(ctx);
  // Every kind: ext is what follows the backup's folder name, format what build --format takes.
  const all = [['vhd', 'vhd'], ['vhdx', 'vhdx'], ['vhd-dynamic', 'dynamic.vhd'], ['vhdx-fixed', 'fixed.vhdx']] as const;
  for (const [s, letter, kinds] of [[uefi, 'C', all], [bios, 'C', all], [kn, 'C', [all[1], all[3]]]] as const) {
    for (const [format, ext] of kinds) {
      const out = join(work, nameOf(s, letter, ext).replace('/', '_'));
      const r = await synthvhd(['build', s.images[letter]!.folder, '-o', out, '--format', format]);
      if (r.code !== 0) throw new Error(r.stderr);
      built.set(nameOf(s, letter, ext), out);
    }
  }
  before = await treeFingerprint(storage);
});

guardStorage(() => ({ tracker, fs, work, storage, before }));

for (const mode of ['passthrough', 'reflink'] as const) {
  test.serial(`${mode}: every disk in every kind equals build output and the restored disk; partners are not listed on their own`, async (t) => {
    const m = await mountpoint(`mnt-${mode}`);
    const cache = join(fs.mountpoint, `cache-${mode}`);
    const srv = await serve(['--storage', storage, '--mount', m, '--mode', mode, '--cache-dir', cache, '--formats', 'vhd,vhdx,vhd-dynamic,vhdx-fixed']);
    const listing = (await run('ls', ['-R', m])).split('\n');
    t.false(listing.some((l) => /_Image_(ESP|SYSVOL)\./.test(l)), 'SYSVOL/ESP are inside their disks');
    t.true(listing.includes(`${kn.images.C!.folder.split('/').at(-1)}.vhdx`));
    t.false(listing.includes(`${kn.images.C!.folder.split('/').at(-1)}.vhd`), '4Kn disk has no .vhd');
    t.false(listing.includes(`${kn.images.C!.folder.split('/').at(-1)}-dynamic.vhd`), '4Kn disk has no dynamic .vhd');
    t.true(listing.includes(`${kn.images.C!.folder.split('/').at(-1)}-fixed.vhdx`));
    for (const [name, file] of built) await run('cmp', [join(m, name), file]);
    t.regex(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'vpc', uefi.expected['C+ESP']!.path, join(m, nameOf(uefi, 'C', 'vhd'))]), /identical/);
    t.regex(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', bios.expected['C+SYSVOL']!.path, join(m, nameOf(bios, 'C', 'vhdx'))]), /identical/);
    t.regex(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'vpc', bios.expected['C+SYSVOL']!.path, join(m, nameOf(bios, 'C', 'dynamic.vhd'))]), /identical/);
    t.regex(await run('vhdiinfo', [join(m, nameOf(kn, 'C', 'vhdx'))]), /Bytes per sector\s*: 4096/);
    if (mode === 'reflink') {
      // First opens are served in passthrough while the copies are built; then reads come from them.
      t.true(await eventually(async () => (await builtFiles(cache)).length === built.size, 20_000), (await readdir(cache)).join(' '));
      // A copy is renamed into place before its line is logged.
      t.true(await eventually(async () => /reflinked copy ready/.test(srv.log()), 5_000), srv.log());
      for (const [name, file] of built) await run('cmp', [join(m, name), file]);
      const cached = await builtFiles(cache);
      // The cache shares the storage's extents.
      await run('sync', []);
      for (const f of cached.filter((x) => !x.endsWith('.json'))) {
        const du = await run('btrfs', ['filesystem', 'du', '--raw', '-s', join(cache, f)]);
        const exclusive = Number(du.trim().split('\n').at(-1)!.trim().split(/\s+/)[1]);
        t.true(exclusive < 1 << 20, `${f}: ${exclusive} exclusive bytes`);
      }
    }
    t.is(await srv.stop(), 0);
    t.false((await run('cat', ['/proc/self/mounts'])).includes(m), 'unmounted on SIGTERM');
  });
}

test.serial('reflink: built on first open only, reused across a restart', async (t) => {
  const m = await mountpoint('mnt-reuse');
  const cache = join(fs.mountpoint, 'cache-reuse');
  const args = ['--storage', storage, '--mount', m, '--mode', 'reflink', '--cache-dir', cache];
  let srv = await serve(args);
  // Only the writers' overlay folder (docs/overlays.md §2), which never holds names: overlays are unlinked files.
  t.deepEqual(await readdir(cache).catch(() => []), ['overlays'], 'nothing is built before an open');
  t.deepEqual(await readdir(join(cache, 'overlays')), []);
  const name = nameOf(bios, 'C', 'vhdx');
  await run('head', ['-c', '4096', join(m, name)]);
  t.true(await eventually(async () => (await builtFiles(cache)).length === 1, 20_000));
  const files = await builtFiles(cache);
  const st1 = await stat(join(cache, files[0]!));
  t.is((await stat(cache)).mode & 0o777, 0o700);
  await run('cmp', [join(m, name), built.get(name)!]);
  t.is(await srv.stop(), 0);
  srv = await serve(args);
  await run('cmp', [join(m, name), built.get(name)!]);
  const st2 = await stat(join(cache, files[0]!));
  t.is(st2.ino, st1.ino);
  t.is(st2.mtimeMs, st1.mtimeMs);
  await srv.stop();
});

test.serial('a .vhd in the mount attaches as a loop device and its NTFS partitions mount with every file', async (t) => {
  const m = await mountpoint('mnt-loop');
  const srv = await serve(['--storage', storage, '--mount', m, '--mode', 'passthrough']);
  const vhd = join(m, nameOf(uefi, 'C', 'vhd'));
  for (const index of [3, 1]) {
    const files = uefi.files[index]!;
    t.deepEqual(await hashFilesOnDisk(vhd, 512, uefi.disk.partitions[index - 1]!, Object.keys(files), work), files);
  }
  await srv.stop();
});

test.serial('8 parallel readers of random ranges get the right bytes (and serve runs with small semi-spaces where Node can re-exec)', async (t) => {
  const m = await mountpoint('mnt-parallel');
  const srv = await serve(['--storage', storage, '--mount', m, '--mode', 'passthrough']);
  // src/cli/main.cts: the same process, replaced with the heap flag, under the packaged runtime
  // (package.test.ts runs this test there); Node before 23.11 has no process.execve and runs on.
  const cmdline = (await readFile(`/proc/${srv.proc.pid}/cmdline`, 'utf8')).split('\0');
  t.is(cmdline.includes('--max-semi-space-size=8'), typeof (process as { execve?: unknown }).execve === 'function', cmdline.join(' '));
  const name = nameOf(uefi, 'C', 'vhdx');
  const ref = await open(built.get(name)!, 'r');
  const size = (await ref.stat()).size;
  const reader = async (): Promise<void> => {
    for (let i = 0; i < 6; i++) {
      const count = randomInt(1, 64);
      const skip = randomInt(0, Math.floor(size / 4096) - count);
      const got = await run('sh', ['-c', `dd if='${join(m, name)}' bs=4096 skip=${skip} count=${count} status=none | sha256sum`]);
      const want = Buffer.alloc(count * 4096);
      await ref.read(want, 0, want.length, skip * 4096);
      t.is(got.split(' ')[0], createHash('sha256').update(want).digest('hex'), `range ${skip}+${count}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, reader));
  await ref.close();
  await srv.stop();
});

test.serial('writes that change the tree are refused with EROFS; with --read-only, writes of any kind', async (t) => {
  for (const extra of [[], ['--read-only']]) {
    const m = await mountpoint(`mnt-ro${extra.length}`);
    const srv = await serve(['--storage', storage, '--mount', m, '--mode', 'passthrough', ...extra]);
    const f = join(m, nameOf(uefi, 'C', 'vhd'));
    const cmds = [`echo x >> '${f}'`, `touch '${m}/${uefi.client}/new'`, `rm -f '${f}'`, `mkdir '${m}/x'`, `mv '${f}' '${f}.old'`, ...(extra.length ? [`truncate -s 0 '${f}'`, `echo x > '${f}'`] : [])];
    for (const cmd of cmds) {
      const r = await run('sh', ['-c', `{ LC_ALL=C; ${cmd}; } 2>&1; echo rc=$?`]);
      t.regex(r, /Read-only file system/, cmd);
    }
    await run('cmp', [f, built.get(nameOf(uefi, 'C', 'vhd'))!]);
    await srv.stop();
  }
});

test.serial('a backup added after mount shows up, a deleted one disappears, an open file keeps reading correctly', async (t) => {
  // A storage of its own: this test writes to it.
  const live = join(fs.mountpoint, 'live');
  await mkdir(live);
  const m = await mountpoint('mnt-live');
  const srv = await serve(['--storage', live, '--mount', m, '--mode', 'passthrough']);
  t.deepEqual(await readdir(m), []);
  const grub = await sc.grubMbr({ storage: live, workDir: work, kind: 'btrfs' });
  const name = nameOf(grub, '_dev_sda1', 'vhd');
  t.true(await eventually(async () => (await run('ls', [join(m, grub.client)]).catch(() => '')).includes(name.split('/')[1]!), 5000), 'appears within 5 s');
  const ref = join(work, 'grub.vhd');
  t.is((await synthvhd(['build', grub.images._dev_sda1!.folder, '-o', ref])).code, 0);
  const want = createHash('sha256').update(await readFile(ref)).digest('hex');
  // A reader opens the file, then the backup is deleted (as UrBackup's cleanup does), then it reads.
  const reader = run('bash', ['-c', `exec 3<'${join(m, name)}'; echo opened; sleep 4; sha256sum <&3`]);
  await new Promise((r) => setTimeout(r, 1000));
  await run('btrfs', ['property', 'set', '-ts', grub.images._dev_sda1!.folder, 'ro', 'false']);
  await run('btrfs', ['subvolume', 'delete', grub.images._dev_sda1!.folder]);
  t.is((await reader).split('\n')[1]!.split(' ')[0], want);
  t.true(await eventually(async () => !(await run('ls', ['-R', m])).includes('.vhd'), 5000), 'disappears within 5 s');
  await srv.stop();
});

test.serial('kill -9 then a restart on the same mount point works', async (t) => {
  const m = await mountpoint('mnt-kill');
  const args = ['--storage', storage, '--mount', m, '--mode', 'passthrough'];
  const first = await serve(args);
  first.proc.kill('SIGKILL');
  await new Promise((r) => first.proc.once('exit', r));
  const second = await serve(args);
  await run('cmp', [join(m, nameOf(bios, 'C', 'vhd')), built.get(nameOf(bios, 'C', 'vhd'))!]);
  t.is(await second.stop(), 0);
});
