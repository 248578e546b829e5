// Where `serve` keeps the overlays of read-write attaches (docs/overlays.md §2): the folder, the
// filesystem and free space it would have, and the limit serve would apply. Nothing is made: a
// folder serve will create is judged by the nearest existing folder above it, and the O_TMPFILE
// probe leaves no file behind.
import { lstat, statfs } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { type Bytes, formatBytes } from '../base/units.js';
import { defaultOverlayDir, defaultOverlayLimit, createUnlinked } from '../serve/overlay-store.js';
import { fsTypeName } from '../sys/reflink.js';
import { type Finding, fail, ok, warn } from './finding.js';

export interface OverlayOptions {
  readonly readOnly: boolean;
  readonly storage?: string | undefined;
  readonly cacheDir?: string | undefined;
  readonly overlayDir?: string | undefined;
  readonly overlayLimit?: Bytes | undefined;
}

/** The shipped unit runs serve as root, and serve takes only a folder of its own user. */
const SERVE_UID = 0;

/** `dir` itself when it exists, else the nearest folder above it (where serve's mkdir would start). */
async function nearestExisting(dir: string): Promise<string> {
  let path = resolve(dir);
  // Ends at '/' at the latest, which is its own dirname.
  while (path !== dirname(path) && !(await lstat(path).then(() => true, () => false))) path = dirname(path);
  return path;
}

/** Whether `child` is `parent` or below it, by their paths. */
const inside = (child: string, parent: string): boolean => {
  const r = relative(resolve(parent), resolve(child));
  return r !== '..' && !r.startsWith(`..${sep}`) && !isAbsolute(r);
};

/** What serve's overlay folder would be, whether it can be, and how much the overlays may take. */
export async function checkOverlays(o: OverlayOptions): Promise<Finding[]> {
  if (o.readOnly) return [ok('--read-only: every open for writing is refused (EROFS); Windows must attach read-only')];
  const dir = o.overlayDir ?? defaultOverlayDir(o.cacheDir);
  if (o.storage !== undefined && inside(dir, o.storage)) return [fail(`the overlay folder ${dir} is inside the storage ${o.storage}`, 'pass an --overlay-dir outside the storage, which is never written')];
  const at = await nearestExisting(dir);
  const exists = at === resolve(dir);
  const st = exists ? await lstat(dir) : undefined;
  if (st && !st.isDirectory()) return [fail(`the overlay folder ${dir} is not a folder`, 'pass an --overlay-dir that is a folder, or a path serve can create')];
  if (st && st.uid !== SERVE_UID) return [fail(`the overlay folder ${dir} is owned by uid ${st.uid}: serve (root) refuses it`, `chown root ${dir}, or pass another --overlay-dir`)];
  try {
    await (await createUnlinked(at)).close();
  } catch (e) {
    return [fail(`overlays cannot live in ${dir}: ${(e as Error).message}`, 'pass an --overlay-dir on ext4, XFS, btrfs or tmpfs, writable by root')];
  }
  const s = await statfs(at);
  const free = s.bavail * s.bsize;
  const limit = o.overlayLimit ?? defaultOverlayLimit(free);
  const type = fsTypeName(at);
  const where = `${dir} (${type}${exists ? '' : `, made 0700 at start under ${at}`})`;
  const out = [ok(`overlays of read-write attaches go to ${where}: ${formatBytes(free)} free, at most ${formatBytes(limit)} in all (${o.overlayLimit === undefined ? 'a quarter of the free space' : '--overlay-limit'}); past it writes fail with ENOSPC`)];
  if (limit > free) out.push(warn(`--overlay-limit ${formatBytes(limit)} is more than the ${formatBytes(free)} free in ${dir}: the filesystem fills before the limit`, 'lower --overlay-limit or free space there'));
  // In memory: overlays there take RAM.
  if (type === 'tmpfs') out.push(warn(`the overlay folder ${dir} is on ${type}: overlays take memory`, 'pass an --overlay-dir on a disk (the default /var/tmp/synthvhd-overlays, or one under --cache-dir)'));
  return out;
}
