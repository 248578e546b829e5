// Mounting and unmounting the FUSE filesystem, with the checks that turn silence into clear errors.
import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { lastErrno, mount as mountRaw, umount2 } from '../sys/libc.js';
import { type FuseFs, mountSession, MountSyscallError, type Session } from './session.js';

/**
 * Largest read request: 1 MiB, the kernel's limit (fs/fuse fuse_max_pages_limit, 256 pages).
 * Every request costs a trip through the main thread, so fewer, larger ones read faster.
 */
const MAX_READ = 1024 * 1024;
/**
 * Readahead requests the kernel keeps in flight for the whole mount (fuse_init_out
 * max_background; kernel default 12). Every disk of the mount shares them, so a storage slow to
 * answer fills a small pool with its own readahead and all other disks wait behind it (with 16
 * readers of a stalled disk, 8 or 16 stalled a 16 MiB read of another disk for 18 s; 32 let it
 * through in 0.2 s).
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
 * at once: on 2 cores, 4 fio jobs of 4 KiB reads got 25 967 IOPS with four and 24 740 with two
 * (medians of 11, side by side), one 20 031; each costs about 10 MiB (idle RSS 114 → 93 MiB).
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
 * (10 min), which would correct such a tree no sooner. Every request they save is a round trip:
 * with 60 s, an `ls -lR` of 10 000 backups a minute after the last one looked up all 20 000
 * names again (2.5-5 s here).
 */
const ENTRY_TIMEOUT = 600;
const ATTR_TIMEOUT = 600;
/** Where the FUSE control filesystem lists connections (Documentation/filesystems/fuse.rst). */
const FUSECTL = '/sys/fs/fuse/connections';

export class MountError extends Error {
  override name = 'MountError';
}

export interface Mounted {
  readonly mountpoint: string;
  unmount(): Promise<void>;
  /** Makes the kernel forget the attributes it cached of an inode (its pages stay: an inode's bytes never change). */
  invalidateAttributes(ino: number): void;
  /** Makes the kernel forget the attributes and the cached listing of a directory. */
  invalidateDirectory(ino: number): void;
  /** Makes the kernel look `name` up again (it appeared, went, or names another inode now). */
  invalidateEntry(parent: number, name: string): void;
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

class UnmountError extends Error {
  override name = 'UnmountError';
}

/** umount2(2) itself (no umount(8) child process); throws with the errno name. */
function unmountNow(mountpoint: string, flags = 0): void {
  if (umount2(mountpoint, flags) === 0) return;
  const e = lastErrno();
  throw new UnmountError(`umount ${mountpoint}: ${e.code} (${e.text})`);
}

function lazyUnmount(mountpoint: string): void {
  unmountNow(mountpoint, MNT_DETACH);
}

async function checkDevice(): Promise<void> {
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    throw new MountError('/dev/fuse is missing or not usable: load the fuse module (modprobe fuse) or give the container --device /dev/fuse');
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
  if (alive) throw new MountError(`${mountpoint} is busy: already a mount point (${types.join(', ')}); is another server running there?`);
  for (let i = 0; i < types.length; i++) lazyUnmount(mountpoint);
  log(`${mountpoint}: cleaned a stale mount left by a server that died`);
}

async function checkEmpty(mountpoint: string): Promise<void> {
  await mkdir(mountpoint, { recursive: true });
  const entries = await readdir(mountpoint).catch((e: Error) => {
    throw new MountError(`${mountpoint}: cannot use it as a mount point: ${e.message}`);
  });
  if (entries.length > 0) throw new MountError(`${mountpoint} is busy: the folder is not empty`);
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

/** Mounts `fs` read-only at `mountpoint`. Needs root (mount(2) of FUSE, kernel passthrough). */
export async function mount(mountpoint: string, fs: FuseFs, opts: { allowOther: boolean }, log: (line: string) => void): Promise<Mounted> {
  const mnt = resolve(mountpoint);
  await checkDevice();
  await cleanStale(mnt, log);
  await checkEmpty(mnt);
  let session: Session;
  try {
    session = mountSession(mnt, fs, {
      allowOther: opts.allowOther,
      maxRead: MAX_READ,
      maxReadahead: READ_AHEAD_KB * 1024,
      workers: REQUEST_WORKERS,
      maxBackground: MAX_BACKGROUND,
      congestionThreshold: CONGESTION_THRESHOLD,
      entrySeconds: ENTRY_TIMEOUT,
      attrSeconds: ATTR_TIMEOUT,
      log,
    });
  } catch (e) {
    if (e instanceof MountSyscallError) throw new MountError(`${mnt}: cannot mount: ${e.message}`);
    throw e;
  }
  // Mounted means served: the first request of a client must not wait for the request workers
  // to load (with cold caches that took 70 ms, the whole of a first read).
  const up = await Promise.race([session.initialized.then(() => 'up'), session.ended.then(() => 'ended'), delay(INIT_WAIT_MS, 'late')]);
  if (up === 'ended') throw new MountError(`${mnt}: the kernel ended the FUSE connection before it was set up`);
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
    invalidateAttributes: (ino) => session.invalidateAttributes(ino),
    invalidateDirectory: (ino) => session.invalidateDirectory(ino),
    invalidateEntry: (parent, name) => session.invalidateEntry(parent, name),
  };
}
