// Mounting and unmounting the FUSE filesystem, with the checks that turn libfuse's silence into clear errors.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import Fuse, { type FuseOps } from 'fuse-native';

const execFileP = promisify(execFile);

/** libfuse 2 reads at most 32 pages per request (FUSE_MAX_PAGES_PER_REQ); asking for more gains nothing. */
const MAX_READ = 128 * 1024;
/**
 * Readahead requests the kernel keeps in flight for the whole mount (libfuse 2 -o max_background;
 * kernel default 12). Every disk of the mount shares them, so a storage slow to answer fills a
 * small pool with its own readahead and all other disks wait behind it (with 16 readers of a
 * stalled disk, 8 or 16 stalled a 16 MiB read of another disk for 18 s; 32 let it through in
 * 0.2 s). No more than that: under load libfuse 2 starts more workers and ends them when more
 * than 10 are idle, and fuse-native never frees the wake-up handle of an ended worker, which
 * every later request pays for (64 cut random reads several times in `npm run bench`).
 */
const MAX_BACKGROUND = 32;
/** The kernel's default ratio of congestion threshold to max_background (9 of 12). */
const CONGESTION_THRESHOLD = 24;
/**
 * Readahead window of the mount, in KiB: eight requests of MAX_READ, enough to overlap a
 * sequential reader's round trips. The kernel starts a FUSE mount at 128 KiB (one request at a
 * time) and libfuse's max_readahead can only lower it, so it is raised through the mount's
 * backing device in sysfs (needs root).
 */
const READ_AHEAD_KB = (8 * MAX_READ) / 1024;
/**
 * Seconds the kernel trusts a lookup or attributes. libfuse 2's high-level API has one value
 * for files and directories; 1 s lets a deleted backup's name go quickly, while file contents
 * stay in the page cache regardless (kernel_cache: the files never change).
 */
const ENTRY_TIMEOUT = 1;
const ATTR_TIMEOUT = 1;

export class MountError extends Error {
  override name = 'MountError';
}

export interface Mounted {
  readonly mountpoint: string;
  unmount(): Promise<void>;
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

async function lazyUnmount(mountpoint: string): Promise<void> {
  try {
    await execFileP('fusermount', ['-u', '-z', mountpoint]);
  } catch {
    await execFileP('umount', ['-l', mountpoint]);
  }
}

async function checkDevice(): Promise<void> {
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    throw new MountError('/dev/fuse is missing or not usable: load the fuse module (modprobe fuse) or give the container --device /dev/fuse');
  }
}

async function checkAllowOther(): Promise<void> {
  if (process.getuid?.() === 0) return;
  const conf = await readFile('/etc/fuse.conf', 'utf8').catch(() => '');
  if (!/^\s*user_allow_other\s*$/m.test(conf)) {
    throw new MountError("--allow-other needs 'user_allow_other' in /etc/fuse.conf when not running as root");
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
  for (let i = 0; i < types.length; i++) await lazyUnmount(mountpoint);
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
async function raiseReadahead(mnt: string, log: (line: string) => void): Promise<void> {
  const device = (await mountInfo(mnt)).find((m) => m.type === 'fuse.synthvhd')?.device;
  if (!device) return log(`${mnt}: not in /proc/self/mountinfo after mounting; readahead left at the kernel's default`);
  const path = `/sys/class/bdi/${device}/read_ahead_kb`;
  await writeFile(path, String(READ_AHEAD_KB)).catch((e: NodeJS.ErrnoException) =>
    log(`${path}: cannot raise readahead to ${READ_AHEAD_KB} KiB (${e.code ?? e.message}): sequential reads will be slower`),
  );
}

export async function mount(mountpoint: string, ops: FuseOps, opts: { allowOther: boolean }, log: (line: string) => void): Promise<Mounted> {
  const mnt = resolve(mountpoint);
  await checkDevice();
  if (opts.allowOther) await checkAllowOther();
  await cleanStale(mnt, log);
  await checkEmpty(mnt);
  const fuse = new Fuse(mnt, ops, {
    allowOther: opts.allowOther,
    kernelCache: true,
    maxRead: MAX_READ,
    entryTimeout: ENTRY_TIMEOUT,
    attrTimeout: ATTR_TIMEOUT,
    // use_ino: st_ino reaches the kernel (Samba keys its locks on it); fuse-native has no option
    // for it or for the background limits, and joins everything into one -o list.
    fsname: `synthvhd,use_ino,max_background=${MAX_BACKGROUND},congestion_threshold=${CONGESTION_THRESHOLD}`,
    subtype: 'synthvhd',
    // A reflink build can outlast any fixed limit, and a timed-out read would leave a pread
    // writing into a buffer FUSE has already taken back.
    timeout: false,
  });
  await new Promise<void>((done, fail) => {
    fuse.mount((err) => (err ? fail(new MountError(`${mnt}: cannot mount: ${err.message}`)) : done()));
  });
  await raiseReadahead(mnt, log);
  return {
    mountpoint: mnt,
    unmount: () =>
      new Promise<void>((done) => {
        fuse.unmount((err) => {
          if (!err) return done();
          // fusermount failed (not ours to unmount, or busy): detach it lazily instead.
          lazyUnmount(mnt).then(done, (e: Error) => {
            log(`${mnt}: unmount failed: ${e.message}`);
            done();
          });
        });
      }),
  };
}
