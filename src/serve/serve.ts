// `serve`: mount the virtual tree and keep it in step with the storage until closed.
import { DiskCache } from './disk-cache.js';
import { FdCache } from './fd-cache.js';
import { VirtualFs } from './filesystem.js';
import { ROOT_INO } from './namespace.js';
import { type Mounted, mount } from '../fuse/mount.js';
import { hasCachestat } from '../sys/cached-read.js';
import { FileOpener, type ServeMode } from './open-file.js';
import type { Catalog, VirtualFile } from '../catalog/virtual-file.js';
import { warmSourceData } from '../io/source-data-warmer.js';
import type { AccessPolicy } from './access.js';
import { StorageWatcher } from './storage-watcher.js';

/**
 * How often the storage is scanned when it cannot be watched (a catalog without folders to
 * watch, or a filesystem where inotify sees nothing): the issue asks for new backups within 5 s.
 */
export const DEFAULT_POLL_MS = 2000;
/** The safety net behind the watcher: a pass that stats every folder and reads those whose mtime moved. */
export const DEFAULT_SAFETY_SCAN_MS = 10 * 60 * 1000;

export class ServeError extends Error {
  override name = 'ServeError';
}

export interface ServeOptions {
  catalog: Catalog;
  mount: string;
  mode: ServeMode;
  /** Where reflink mode builds disk files; needed for 'reflink', optional for 'auto'. */
  cacheDir?: string;
  allowOther: boolean;
  /** Who may read what (default: as the storage allows; see access.ts). */
  access?: AccessPolicy;
  /** Interval of periodic scans when the storage cannot be watched. */
  rescanMs?: number;
  /** Interval of the safety-net scan while the storage is watched. */
  safetyScanMs?: number;
  log: (line: string) => void;
}

export interface Server {
  readonly mountpoint: string;
  /** Unmounts (lazily when files are still open) and stops rescanning. */
  close(): Promise<void>;
}

/** Mounts the catalog's files at opts.mount and rescans every rescanMs until close(). */
export async function serve(opts: ServeOptions): Promise<Server> {
  const { catalog, log } = opts;
  if (opts.mode === 'reflink' && !opts.cacheDir) throw new ServeError('reflink mode needs a cache directory (--cache-dir)');
  const fds = new FdCache();
  const cache = opts.cacheDir && opts.mode !== 'passthrough' ? await DiskCache.open(opts.cacheDir, fds) : undefined;
  if (opts.mode === 'auto' && !cache) log('auto mode without a cache directory: serving in passthrough');
  if (!hasCachestat()) log('the kernel has no cachestat (Linux 6.5 brought it): large cold reads go through the page cache instead of O_DIRECT');
  const vfs = new VirtualFs(new FileOpener(opts.mode, fds, cache, log), log, opts.access);

  let logged = new Set<string>();
  /** Logs what is new since the last scan, so an unchanged problem is one line, not one per scan. */
  const report = (lines: readonly string[]): void => {
    for (const line of lines) if (!logged.has(line)) log(line);
    logged = new Set(lines);
  };

  let mounted: Mounted | undefined;
  let shown: readonly VirtualFile[] = [];
  const rescan = async (changed?: ReadonlySet<string>, restat = false): Promise<void> => {
    const { files, warnings } = await catalog.scan(changed, restat);
    shown = files;
    const change = vfs.update(files);
    report([...warnings, ...change.warnings]);
    for (const s of change.stale) {
      if (s.changed) log(`${s.changed.key}: its contents changed (a new backup under the same name, or its SYSVOL/ESP regrouped); shown as a new file, open readers keep the old one`);
      mounted?.invalidateEntry(s.parent, s.name);
    }
    // Folders whose names or attributes changed (their mtime and nlink, and the root's), and files
    // whose owners and modes may have changed under the same inode (replaced by one of the same version).
    const dirs = new Set<number>(change.changedDirs.map((d) => d.ino));
    const attrs = new Set<number>();
    for (const { before, after } of change.replaced) if (before.ino === after.ino) attrs.add(after.ino);
    if (change.addedDirs.length || change.removedDirs.length || dirs.size || attrs.size) dirs.add(ROOT_INO);
    for (const ino of dirs) mounted?.invalidateDirectory(ino);
    for (const ino of attrs) mounted?.invalidateAttributes(ino);
    const { added, removed, replaced } = change;
    if (added.length || removed.length) log(`${vfs.fileCount} files (${added.length} new, ${removed.length} gone)`);
    // A path that comes back later may be a different file: do not reuse its old descriptor
    // (evicting one still in use by another file only costs that file a reopen).
    for (const n of [...removed, ...replaced.map((r) => r.before)]) for (const s of n.file.sources) fds.evict(s.path);
    if (cache && (removed.length > 0 || changed === undefined)) for (const key of await cache.prune(vfs.keys())) log(`${key}: removed its cache file (backup gone)`);
    if (watcher) await watcher.sync(catalog.watchedDirs!());
  };

  // One scan at a time; requests made meanwhile are merged into the next one. 'full' is a pass
  // of stats; 'restat' (the safety net) also stats every source for owners and modes.
  type Request = ReadonlySet<string> | 'full' | 'restat';
  let queued: Request | undefined;
  let scanning: Promise<void> | undefined;
  let closed = false;
  const merged = (a: Request | undefined, b: Request): Request =>
    a === 'restat' || b === 'restat' ? 'restat' : a === 'full' || b === 'full' ? 'full' : new Set([...(a ?? []), ...b]);
  const request = (what: Request): void => {
    queued = merged(queued, what);
    if (scanning || closed) return;
    const next = queued;
    queued = undefined;
    scanning = rescan(typeof next === 'string' ? undefined : next, next === 'restat')
      .catch((e: Error) => report([`rescan failed, keeping the previous tree: ${e.message}`]))
      .finally(() => {
        scanning = undefined;
        if (queued) request(queued);
      });
  };
  const timers = new Set<NodeJS.Timeout>();
  const every = (ms: number, what: Request): void => {
    const t = setInterval(() => request(what), ms);
    timers.add(t);
  };
  const pollMs = opts.rescanMs ?? DEFAULT_POLL_MS;
  const watcher = catalog.watchedDirs
    ? new StorageWatcher(
        (dirs) => request(dirs),
        (why) => {
          log(`${why}: scanning the storage every ${pollMs / 1000} s instead of watching it`);
          every(pollMs, 'full');
        },
      )
    : undefined;

  await rescan();
  mounted = await mount(opts.mount, vfs, { allowOther: opts.allowOther }, log);
  log(`serving ${vfs.fileCount} files at ${mounted.mountpoint} (${opts.mode}${cache ? `, cache ${cache.dir}` : ''})`);
  // The sizes of the dynamic disks, ahead of the first listing (io/source-data-warmer.ts).
  const t = Date.now();
  const warming = warmSourceData(shown.flatMap((f) => f.sizeSources ?? []));
  void warming.done.then((n) => n > 0 && log(`mapped the data of ${n} backing files in ${((Date.now() - t) / 1000).toFixed(1)} s (the sizes of the dynamic disks)`));
  if (watcher) {
    every(opts.safetyScanMs ?? DEFAULT_SAFETY_SCAN_MS, 'restat');
    // What changed between the first scan and its watches: a pass of stats.
    request('full');
  } else every(pollMs, 'full');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      closed = true;
      warming.stop();
      for (const t of timers) clearInterval(t);
      watcher?.close();
      await scanning;
      await mounted.unmount();
      vfs.releaseAll();
      fds.clear();
    })());
  return { mountpoint: mounted.mountpoint, close };
}
