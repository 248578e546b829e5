// `synthvhd doctor` on real filesystems and real smb.conf files, through the CLI.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPassthrough } from '../src/doctor/fuse-checks.js';
import { shareSection } from '../src/samba/share-section.js';
import { formatBytes } from '../src/base/units.js';
import { defaultOverlayLimit } from '../src/serve/overlay-store.js';
import { makeLoopFs, type LoopFs } from './helpers/loopfs.js';
import { makeNtfsImage, withNtfs3g } from './helpers/ntfs-volume.js';
import { requireTool, run } from './helpers/run.js';

const CLI = new URL('../src/cli/main.cjs', import.meta.url).pathname;
let btrfs: LoopFs | undefined;
let work = '';
let storage = '';

test.before(async () => {
  requireTool('testparm');
  btrfs = await makeLoopFs('btrfs', 256);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-doctor-'));
  storage = join(btrfs.mountpoint, 'urbackup');
  const folder = join(storage, 'pc1', '240101-1200_Image_C');
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'Image_C_240101-1200.raw'), randomBytes(1 << 20));
  await mkdir(join(btrfs.mountpoint, 'cache'));
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
  await btrfs?.cleanup();
});

function doctor(...args: string[]): { code: number | null; lines: string[] } {
  const r = spawnSync(process.execPath, [CLI, 'doctor', ...args], { encoding: 'utf8' });
  return { code: r.status, lines: r.stdout.trim().split('\n') };
}

const line = (lines: string[], re: RegExp): string => lines.find((l) => re.test(l)) ?? `(no line matches ${re}: ${lines.join(' | ')})`;

async function conf(name: string, section: string): Promise<string> {
  const path = join(work, name);
  await writeFile(path, `[global]\n   server role = standalone server\n\n${section}`);
  return path;
}

async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

test('a cache on the storage filesystem can reflink; one on another filesystem cannot; the storage is not written', async (t) => {
  const before = await tree(storage);
  const smbConf = await conf('ok.conf', shareSection({ name: 'backups', path: '/srv/x' }));
  const same = doctor('--storage', storage, '--cache-dir', join(btrfs!.mountpoint, 'cache'), '--mount', '/srv/x', '--smb-conf', smbConf);
  t.regex(line(same.lines, /cache .*clone/), /^ok +cache .* \(btrfs\) can clone from the storage/);
  t.regex(line(same.lines, /^\w+ +storage/), /^ok +storage .* is on btrfs/);
  const other = doctor('--storage', storage, '--cache-dir', work, '--mount', '/srv/x', '--smb-conf', smbConf);
  t.regex(line(other.lines, /cache .*clone/), /^warn +cache .* cannot clone from the storage \(btrfs\)/);
  t.deepEqual(await tree(storage), before);
  t.deepEqual(await readdir(join(btrfs!.mountpoint, 'cache')), []);
});

test('every finding is one ok/warn/fail line; FUSE and Samba tools are found', (t) => {
  const r = doctor('--mount', '/srv/x', '--smb-conf', '/nonexistent.conf');
  for (const l of r.lines) t.regex(l, /^(ok {2}|warn|fail) {2}\S/);
  t.regex(line(r.lines, /dev\/fuse/), /^ok/);
  t.regex(line(r.lines, /as root/), /^ok +running as root/);
  t.regex(line(r.lines, /passthrough/), /^(ok|warn) +kernel \S+ (has|predates) FUSE passthrough/);
  t.regex(line(r.lines, /smbd/), /^ok +smbd found/);
});

test('FUSE passthrough is expected from Linux 6.9 on', (t) => {
  t.is(checkPassthrough('6.8.12-amd64').level, 'warn');
  t.is(checkPassthrough('6.9.0').level, 'ok');
  t.is(checkPassthrough('6.18.44-fc-v595').level, 'ok');
  t.is(checkPassthrough('7.0.1').level, 'ok');
});

test('a share at the mount with the synthvhd settings is ok; drifted settings warn; guests and a missing share fail', async (t) => {
  const good = doctor('--mount', '/srv/x', '--smb-conf', await conf('good.conf', shareSection({ name: 'vhds', path: '/srv/x/' })));
  t.regex(line(good.lines, /share|testparm rejects/), /^ok +share \[vhds\] .* exports \/srv\/x with the synthvhd settings/);
  const drifted = doctor('--mount', '/srv/x', '--smb-conf', await conf('drift.conf', '[vhds]\n   path = /srv/x\n   read only = yes\n   vfs objects = btrfs\n'));
  t.regex(line(drifted.lines, /share/), /^warn +share \[vhds\].*: read only = Yes \(want no\).*ea support = Yes \(want no\).*vfs objects = btrfs \(want empty\)/);
  // Over a `serve --read-only` mount a read-only share is fine.
  const readOnlyConf = await conf('read-only.conf', shareSection({ name: 'vhds', path: '/srv/x' }).replace('read only = no', 'read only = yes'));
  t.regex(line(doctor('--mount', '/srv/x', '--smb-conf', readOnlyConf, '--read-only').lines, /share/), /^ok +share \[vhds\] .* with the synthvhd settings/);
  t.regex(line(doctor('--mount', '/srv/x', '--smb-conf', readOnlyConf).lines, /share/), /^warn +share \[vhds\].*: read only = Yes \(want no\) — /);
  const guests = doctor('--mount', '/srv/x', '--smb-conf', await conf('guest.conf', shareSection({ name: 'vhds', path: '/srv/x' }).replace('guest ok = no', 'guest ok = yes')));
  t.regex(line(guests.lines, /share/), /^fail +share \[vhds\] allows guests/);
  t.is(guests.code, 1);
  const none = doctor('--mount', '/srv/x', '--smb-conf', await conf('none.conf', shareSection({ name: 'vhds', path: '/srv/elsewhere' })));
  t.regex(line(none.lines, /share/), /^fail +no share .* has path = \/srv\/x — add the output of 'synthvhd samba-conf --mount \/srv\/x'/);
  t.is(none.code, 1);
});

test('doctor reports the overlay folder serve would use, its free space and the limit, and makes nothing', async (t) => {
  // A tmpfs of its own: its free space is exactly its size, whatever the other tests write.
  const cache = join(work, 'tmpfs-cache');
  await mkdir(cache);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0755', 'tmpfs', cache]);
  t.teardown(() => run('umount', [cache]));
  const s = await statfs(cache);
  const free = s.bavail * s.bsize;
  const byDefault = doctor('--storage', storage, '--cache-dir', cache, '--mount', '/srv/x');
  const line0 = line(byDefault.lines, /overlays of/);
  t.is(line0, `ok    overlays of read-write attaches go to ${cache}/overlays (tmpfs, made 0700 at start under ${cache}): ${formatBytes(free)} free, at most ${formatBytes(defaultOverlayLimit(free))} in all (a quarter of the free space); past it writes fail with ENOSPC`);
  t.regex(line(byDefault.lines, /on tmpfs/), /^warn +the overlay folder .* is on tmpfs: overlays take memory/);
  t.deepEqual(await readdir(cache), []);
  const own = join(work, 'overlays');
  await mkdir(own);
  const given = doctor('--mount', '/srv/x', '--overlay-dir', own, '--overlay-limit', '1G');
  t.regex(line(given.lines, /overlay/), new RegExp(`^ok +overlays of read-write attaches go to ${own} \\(\\w+\\): .* free, at most 1\\.0 GiB in all \\(--overlay-limit\\)`));
  t.deepEqual(await readdir(own), [], 'the probe leaves no file');
  const tooMuch = doctor('--mount', '/srv/x', '--overlay-dir', own, '--overlay-limit', '1000T');
  t.regex(line(tooMuch.lines, /overlay-limit .* more than/), /^warn +--overlay-limit 1000\.0 TiB is more than the .* free in /);
  t.regex(line(doctor('--read-only').lines, /read-only/), /^ok +--read-only: every open for writing is refused/);
});

test('an overlay folder in the storage, a file, or on a filesystem without O_TMPFILE fails', async (t) => {
  const inStorage = doctor('--storage', storage, '--mount', '/srv/x', '--overlay-dir', join(storage, 'overlays'));
  t.regex(line(inStorage.lines, /overlay/), /^fail +the overlay folder .* is inside the storage/);
  t.is(inStorage.code, 1);
  const file = join(work, 'not-a-folder');
  await writeFile(file, '');
  t.regex(line(doctor('--mount', '/srv/x', '--overlay-dir', file).lines, /overlay/), /^fail +the overlay folder .* is not a folder/);
  // ntfs-3g (FUSE) makes no unlinked files.
  const image = join(work, 'ntfs.img');
  await makeNtfsImage(image, 16);
  await withNtfs3g(image, join(work, 'ntfs'), [], async (mnt) => {
    const before = await readdir(mnt);
    const ntfs = doctor('--mount', '/srv/x', '--overlay-dir', join(mnt, 'overlays'));
    t.regex(line(ntfs.lines, /overlay/), /^fail +overlays cannot live in .*: .*O_TMPFILE/);
    t.is(ntfs.code, 1);
    t.deepEqual(await readdir(mnt), before);
  });
  t.is(doctor('--mount', '/srv/x', '--overlay-limit', 'lots').code, 2);
});
