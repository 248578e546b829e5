// A clean Debian 12 (bookworm) minbase system made with debootstrap from the Debian mirror this
// machine's apt uses, and commands run inside copies of it (chroot in a private mount namespace,
// so /proc, /dev and any FUSE mount made inside vanish with the command).
import { readFile, readdir, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { cachedDir } from './debian-cache.js';
import { type RunResult, run, runToEnd } from './run.js';

export const SUITE = 'bookworm';
/** kmod loads fuse, btrfs and virtio in the booted guest; a server always has it. */
const INCLUDE = ['kmod'];

/** The first non-security URI for `suite` in apt's sources (deb822 .sources files, then sources.list). */
export function mirrorOf(sources: readonly string[], suite: string): string | undefined {
  for (const text of sources) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (name: string): string[] => (new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(stanza)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
      if (field('Types').includes('deb') && field('Suites').includes(suite)) return field('URIs')[0];
    }
    for (const line of text.split('\n')) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
      if (m && m[2] === suite) return m[1];
    }
  }
  return undefined;
}

export async function debianMirror(): Promise<string> {
  const dir = '/etc/apt/sources.list.d';
  const files = [...(await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.sources') || f.endsWith('.list')).map((f) => join(dir, f)), '/etc/apt/sources.list'];
  const texts = await Promise.all(files.map((f) => readFile(f, 'utf8').catch(() => '')));
  const mirror = mirrorOf(texts, SUITE);
  if (!mirror) throw new Error(`no apt source for ${SUITE} in ${files.join(', ')}: the package tests need the Debian mirror`);
  return mirror;
}

/** The cached minbase tree (keyed by suite, mirror, included packages and debootstrap's version). */
export async function bookwormMinbase(): Promise<string> {
  const mirror = await debianMirror();
  const debootstrap = (await run('dpkg-query', ['-W', '-f=${Version}', 'debootstrap'])).trim();
  return cachedDir('bookworm-minbase', [SUITE, mirror, INCLUDE.join(','), debootstrap], async (dir) => {
    await run('debootstrap', ['--variant=minbase', `--include=${INCLUDE.join(',')}`, SUITE, dir, mirror]);
    // Daemons installed into the tree (samba) must not start on this machine.
    await writeFile(join(dir, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n');
    await chmod(join(dir, 'usr/sbin/policy-rc.d'), 0o755);
  });
}

/**
 * Runs `script` with /bin/sh inside the tree `root` as root, in a mount namespace of its own
 * with /proc, /sys and /dev (for /dev/fuse) mounted; `binds` and `readOnly` map folders of the
 * tree to host folders bound there.
 */
export function inChroot(root: string, script: string, binds: Readonly<Record<string, string>> = {}, readOnly: Readonly<Record<string, string>> = {}): Promise<RunResult> {
  const setup = [
    'set -e',
    `mount -t proc proc "${root}/proc"`,
    `mount -t sysfs sys "${root}/sys"`,
    `mount --rbind /dev "${root}/dev"`,
    ...Object.entries({ ...binds, ...readOnly }).map(([inside, host]) => `mkdir -p "${root}${inside}" && mount --bind "${host}" "${root}${inside}"`),
    ...Object.keys(readOnly).map((inside) => `mount -o remount,bind,ro "${root}${inside}"`),
    `exec chroot "${root}" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive /bin/sh -c "$0"`,
  ].join('\n');
  return runToEnd('unshare', ['--mount', '--propagation', 'private', '--fork', 'sh', '-c', setup, script]);
}

/** A private copy of a cached tree (cp --reflink where the filesystem can). */
export async function copyTree(from: string, to: string): Promise<void> {
  await run('cp', ['-a', '--reflink=auto', `${from}/.`, to]);
}
