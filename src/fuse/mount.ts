// Mounting and unmounting the FUSE filesystem, with the checks that turn silence into clear errors.
import { closeSync, constants, openSync } from 'node:fs';
import { access, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { lastErrno, mount as mountRaw, umount2 } from '../sys/libc.js';
import type { FuseFs, OpenOffers } from './fuse-fs.js';
import type { Notifier } from './notifier.js';
import { startSession } from './session.js';

/**
 * Largest read request: 1 MiB, the kernel's limit (fs/fuse fuse_max_pages_limit, 256 pages).
 * Every request costs a trip through the main thread, so fewer, larger ones read faster.
 */
const MAX_READ = 1024 * 1024;
/**
 * Readahead requests the kernel keeps in flight for the whole mount (fuse_init_out
 * max_background; kernel default 12). Every disk of the mount shares them, so a storage slow to
 * answer fills a small pool with its own readahead and all other disks wait behind it
 * (docs/fuse-protocol.md §4).
 */
const MAX_BACKGROUND = 32;
/** The kernel's default ratio of congestion threshold to max_background (9 of 12). */
const CONGESTION_THRESHOLD = 24;
/**
 * Readahead window of the mount, in KiB: four requests of MAX_READ, enough to overlap a
 * sequential reader's round trips with the storage's own reads. The kernel starts a FUSE mount
 * at 128 KiB and fuse_init_out max_readahead can only lower it, so it is raised through the
 * mount's backing device in sysfs (needs root).
 */
const READ_AHEAD_KB = (4 * MAX_READ) / 1024;
/**
 * Threads reading /dev/fuse: one always, the rest only while requests queue up (see
 * request-worker.ts). A worker never waits on the storage, so more of them than cores cannot run
 * at once, and each costs memory (docs/fuse-protocol.md §6).
 */
const REQUEST_WORKERS = Math.max(2, availableParallelism());
/** How long mount() waits for the kernel's INIT to be answered. */
const INIT_WAIT_MS = 10_000;
/** umount2(2) flag MNT_DETACH, <sys/mount.h>: detach now, finish when the last file closes. */
const MNT_DETACH = 2;
/**
 * Seconds the kernel trusts a lookup (negative ones too) or attributes. A file's bytes never
 * change under one inode number (changed contents get a new one), and every rescan tells the
 * kernel which names and attributes changed (serve.ts), so these only bound how
 * long a lost notification could show an old tree: as long as serve's safety-net rescan period
 * (10 min), which would correct such a tree no sooner. Every request they save is a round trip
 * (docs/fuse-protocol.md §4).
 */
const ENTRY_TIMEOUT = 600;
const ATTR_TIMEOUT = 600;
/** Where the FUSE control filesystem lists connections (Documentation/filesystems/fuse.rst). */
const FUSECTL = '/sys/fs/fuse/connections';

/** mount(2) flags, <sys/mount.h>: nothing on the mount can be run or be a device (or, read-only, written). */
const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;
/** Octal S_IFDIR, for the rootmode= mount option (fs/fuse/inode.c parses it in octal). */
const ROOT_MODE = '40000';

export interface Mounted {
  readonly mountpoint: string;
  unmount(): Promise<void>;
  /** Tells the kernel which names, attributes and listings a change of the tree made stale. */
  readonly notifier: Notifier;
  /** Files the request workers may open themselves (FuseFs.adopt). */
  readonly offers: OpenOffers;
}

/** Mounts at a path in this mount namespace, from /proc/self/mountinfo (proc(5)): field 3 is the device, 5 the path, the type follows " - ". */
async function mountInfo(mountpoint: string): Promise<{ device: string; type: string }[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return info
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f.length > 5 && unescape(f[4]!) === mountpoint)
    .map((f) => ({ device: f[2]!, type: f[f.indexOf('-') + 1] ?? 'unknown' }));
}

async function mountsAt(mountpoint: string): Promise<string[]> {
  return (await mountInfo(mountpoint)).map((m) => m.type);
}

/** Resolves `value` after `ms`, without keeping the process alive. */
function delay<T>(ms: number, value: T): Promise<T> {
  return new Promise((done) => setTimeout(done, ms, value).unref());
}

/** umount2(2) itself (no umount(8) child process); throws with the errno name. */
function unmountNow(mountpoint: string, flags = 0): void {
  if (umount2(mountpoint, flags) === 0) return;
  const e = lastErrno();
  throw new Error(`umount ${mountpoint}: ${e.code} (${e.text})`);
}

function lazyUnmount(mountpoint: string): void {
  unmountNow(mountpoint, MNT_DETACH);
}

async function checkDevice(): Promise<void> {
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    throw new Error('/dev/fuse is missing or not usable: load the fuse module (modprobe fuse) or give the container --device /dev/fuse');
  }
}

/** Removes a mount left by a server that died (its FUSE connection answers ENOTCONN). */
async function cleanStale(mountpoint: string, log: (line: string) => void): Promise<void> {
  const types = await mountsAt(mountpoint);
  if (types.length === 0) return;
  const alive = await stat(mountpoint).then(
    () => true,
    (e: NodeJS.ErrnoException) => e.code !== 'ENOTCONN' && e.code !== 'ENXIO',
  );
  if (alive) throw new Error(`${mountpoint} is busy: already a mount point (${types.join(', ')}); is another server running there?`);
  for (let i = 0; i < types.length; i++) lazyUnmount(mountpoint);
  log(`${mountpoint}: cleaned a stale mount left by a server that died`);
}

async function checkEmpty(mountpoint: string): Promise<void> {
  await mkdir(mountpoint, { recursive: true });
  const entries = await readdir(mountpoint).catch((e: Error) => {
    throw new Error(`${mountpoint}: cannot use it as a mount point: ${e.message}`);
  });
  if (entries.length > 0) throw new Error(`${mountpoint} is busy: the folder is not empty`);
}

/**
 * Sets the mount's readahead (sysfs-class-bdi: /sys/class/bdi/<major>:<minor>/read_ahead_kb).
 * The device number comes from mountinfo, not stat(): a stat would ask our own filesystem and
 * leave the root's attributes cached in the kernel.
 */
async function raiseReadahead(mnt: string, device: string | undefined, log: (line: string) => void): Promise<void> {
  if (!device) return log(`${mnt}: not in /proc/self/mountinfo after mounting; readahead left at the kernel's default`);
  const path = `/sys/class/bdi/${device}/read_ahead_kb`;
  await writeFile(path, String(READ_AHEAD_KB)).catch((e: NodeJS.ErrnoException) =>
    log(`${path}: cannot raise readahead to ${READ_AHEAD_KB} KiB (${e.code ?? e.message}): sequential reads will be slower`),
  );
}

/**
 * Ends the connection through the FUSE control filesystem (fusectl: /sys/fs/fuse/connections/<dev>/abort),
 * for a mount that a lazy unmount left alive because files on it are still open: until the
 * connection ends, their readers would wait on a server that is going away.
 */
async function abortConnection(device: string, log: (line: string) => void): Promise<void> {
  const [major, minor] = device.split(':').map(Number) as [number, number];
  // The connection is named after the superblock's dev_t, in the kernel's encoding (major << 20 | minor).
  const path = `${FUSECTL}/${major * 2 ** 20 + minor}/abort`;
  // Debian mounts fusectl at boot (sys-fs-fuse-connections.mount); a container may not have.
  if ((await mountsAt(FUSECTL)).length === 0) mountRaw('fusectl', FUSECTL, 'fusectl', 0, '');
  await writeFile(path, '1').catch((e: NodeJS.ErrnoException) => log(`${path}: cannot abort the FUSE connection (${e.code ?? e.message})`));
}

/**
 * Opens /dev/fuse and mounts it (read-only with `readOnly`: the kernel refuses every write itself) at `mountpoint` (absolute, an empty folder) with
 * mount(2) (docs/fuse-protocol.md §2); returns the descriptor, for startSession. Needs
 * CAP_SYS_ADMIN.
 */
export function mountDevice(mountpoint: string, allowOther: boolean, readOnly: boolean): number {
  const dev = openSync('/dev/fuse', constants.O_RDWR);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const data = `fd=${dev},rootmode=${ROOT_MODE},user_id=${uid},group_id=${gid},default_permissions${allowOther ? ',allow_other' : ''}`;
  if (mountRaw('synthvhd', mountpoint, 'fuse.synthvhd', (readOnly ? MS_RDONLY : 0) | MS_NOSUID | MS_NODEV, data) === 0) return dev;
  const err = lastErrno();
  closeSync(dev);
  throw new Error(`${mountpoint}: cannot mount: ${err.code === 'EPERM' ? 'mounting needs root (CAP_SYS_ADMIN): run synthvhd serve as root' : `mount(2) failed: ${err.code} (${err.text})`}`);
}

/**
 * Mounts `fs` at `mountpoint`; without `readOnly` writes reach `fs`, which keeps them private
 * (docs/overlays.md). Needs root (mount(2) of FUSE, kernel passthrough).
 */
export async function mount(mountpoint: string, fs: FuseFs, opts: { allowOther: boolean; readOnly: boolean }, log: (line: string) => void): Promise<Mounted> {
  const mnt = resolve(mountpoint);
  await checkDevice();
  await cleanStale(mnt, log);
  await checkEmpty(mnt);
  const session = startSession(mountDevice(mnt, opts.allowOther, opts.readOnly), fs, {
    maxRead: MAX_READ,
    maxReadahead: READ_AHEAD_KB * 1024,
    workers: REQUEST_WORKERS,
    maxBackground: MAX_BACKGROUND,
    congestionThreshold: CONGESTION_THRESHOLD,
    entrySeconds: ENTRY_TIMEOUT,
    attrSeconds: ATTR_TIMEOUT,
    log,
  });
  // Mounted means served: the first request of a client must not wait for the request workers
  // to load (docs/fuse-protocol.md §6).
  const up = await Promise.race([session.initialized.then(() => 'up'), session.ended.then(() => 'ended'), delay(INIT_WAIT_MS, 'late')]);
  if (up === 'ended') throw new Error(`${mnt}: the kernel ended the FUSE connection before it was set up`);
  if (up === 'late') log(`${mnt}: the kernel has not started the FUSE session after ${INIT_WAIT_MS / 1000} s; serving anyway`);
  const device = (await mountInfo(mnt)).find((m) => m.type === 'fuse.synthvhd')?.device;
  await raiseReadahead(mnt, device, log);
  let unmounting: Promise<void> | undefined;
  return {
    mountpoint: mnt,
    unmount: () =>
      (unmounting ??= (async () => {
        // A busy mount (files open, over Samba say) is detached lazily instead.
        try {
          unmountNow(mnt);
        } catch {
          try {
            lazyUnmount(mnt);
          } catch (e) {
            log(`${mnt}: unmount failed: ${(e as Error).message}`);
          }
        }
        const ended = await Promise.race([session.ended.then(() => true), new Promise<boolean>((done) => setTimeout(done, 1000, false).unref())]);
        if (!ended && device) await abortConnection(device, log);
        await session.ended;
        session.close();
      })()),
    notifier: session.notifier,
    offers: session.offers,
  };
}
